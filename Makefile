# Every target creates the virtual environment (.venv) when it is missing or out of date.
# Variables: PYTHON (interpreter for the venv), TORCH_INDEX (optional pip index for torch, e.g.
# https://download.pytorch.org/whl/cpu for a CPU-only build elsewhere), DATA (dataset spec or folder),
# SUBMISSIONS / OUT (grading), SOURCE (local GTZAN copy).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_INDEX ?=
DATA ?= synthetic
OUT ?= out/grades
JOBS ?= 1
SEEDS ?= 3

export GENREKIT_DATA_DIR ?= $(CURDIR)/data
export GENREKIT_CACHE_DIR ?= $(CURDIR)/data/cache
export PYTHONWARNINGS := ignore
# OpenMP busy-waiting makes torch 6-60x slower whenever another process is busy (measured): wait passively
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: sandbox gradescope venv reference test release grade calibrate gains timing data data-gtzan bench musicnn-check clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (nbgrader 0.9.6); set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install -q torch==2.13.0 --index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	touch $(STAMP)

# bubblewrap runs student code in a sandbox when grading: installed here when missing and possible (root)
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || \
	  { echo "bubblewrap is missing: install it (apt-get install -y bubblewrap as root), or grade with --no-sandbox" >&2; exit 1; }

# Gradescope autograder bundle (setup.sh, run_autograder, the grader): autograder.zip
gradescope: $(STAMP)
	$(PY) -m autograder.gradescope.bundle --out autograder.zip

data: $(STAMP)
	$(PY) -m genrekit info synthetic

reference: $(STAMP) sandbox
	$(PY) -m autograder reference --data $(DATA)

release: $(STAMP)
	$(PY) -m autograder release

grade: $(STAMP) sandbox
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=DIR_OR_ZIP [OUT=DIR] [DATA=...] [JOBS=N]" >&2; exit 2; }
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) --data $(DATA) --jobs $(JOBS)

calibrate: $(STAMP)
	$(PY) -m autograder calibrate --data $(DATA) --seeds $(SEEDS) $(if $(PARTS),--parts $(PARTS)) $(if $(filter 1,$(REUSE)),--reuse)

# each part's gain over the parts it builds on, on the seed folders make calibrate left (gains.json)
gains: $(STAMP)
	$(PY) -m autograder gains --data $(DATA)

# the reference's own grading time (after make reference): autograder/timing.json, the time limits' base
timing: $(STAMP) sandbox
	$(PY) -m autograder timing --data $(DATA)

test: $(STAMP) sandbox
	$(PY) -m pytest

# Real GTZAN (issue: data): DATA=folder to write (default $(GENREKIT_DATA_DIR)/gtzan8), SOURCE=local copy
data-gtzan: $(STAMP)
	$(PY) -m data_scripts.prepare_gtzan --out $(if $(filter synthetic,$(DATA)),$(GENREKIT_DATA_DIR)/gtzan8,$(DATA)) $(if $(SOURCE),--source $(SOURCE))

bench: $(STAMP)
	$(PY) -m bench

# genrekit.musicnn (PyTorch) against live TensorFlow, in a separate venv with requirements-tf.txt
# (not part of `make test`: the committed golden fixture stands in for TensorFlow there)
TF_VENV := .venv-tf
TF_STAMP := $(TF_VENV)/.installed

$(TF_STAMP): requirements.txt requirements-nodeps.txt requirements-tf.txt pyproject.toml
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(TF_VENV)/bin/python -m pip install -q torch==2.13.0 --index-url $(TORCH_INDEX))
	$(TF_VENV)/bin/python -m pip install -q -r requirements.txt -r requirements-tf.txt
	$(TF_VENV)/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(TF_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(TF_STAMP)

musicnn-check: $(TF_STAMP)
	$(TF_VENV)/bin/python -m data_scripts.musicnn_golden --live

clean:
	rm -rf out build .pytest_cache
