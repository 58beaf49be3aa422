#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image (Ubuntu, as root): bubblewrap for the
# sandbox, Python 3.11 and the pinned environment, the grader installed from /autograder/source.
set -euo pipefail
apt-get update -qq
apt-get install -y -qq bubblewrap python3.11 python3.11-venv >/dev/null
cd /autograder/source
python3.11 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
GENREKIT_DATA_DIR=/autograder/source/data .venv/bin/python -m genrekit info synthetic >/dev/null
