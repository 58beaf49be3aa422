"""Hostile submissions graded in one batch beside honest ones (issue 13).

The batch completes; each hostile row says what happened; the honest grades equal those of a batch
without the hostile ones; the grader's own tree (its venv included) is unchanged afterwards; no
process outlives the batch; the feedback carries neither a script nor the hidden checks' source.
Resource bombs run with small limits so the file stays within a few minutes.
"""

import csv
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder import grade as grading
from autograder import measure
from autograder import sandbox as sandboxing
from autograder import thresholds
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, ROOT, SOLUTIONS
from autograder.parts import PARTS
from conftest import TEST_DATA

pytestmark = pytest.mark.skipif(sandboxing.bwrap_path() is None, reason=sandboxing.INSTALL_HINT)

LIMITS = sandboxing.Limits(memory_mb=3072, processes=160, file_mb=64, disk_mb=400, tmp_mb=256, cpu_s=600)
AUTOGRADE_TIMEOUT = 150
ACCURACY_TIMEOUT = 80
PACKAGE = SOLUTIONS / ASSIGNMENT / "genre"
EXIT_AFTER = "test_segment"   # h_exit ends its kernel right after this test cell of 2_segments
SECRET_WORDS = ("_reference_log_mel", "### BEGIN SOLUTION")

# code added at the top of the solved genre/features.py: runs at every import in every kernel
HOSTILE = {
    "h_memory": "import numpy as _np\n_hog = _np.ones(8 * 2**30 // 8)\n",
    "h_fork": ("import os as _os, time as _t\n"
               "for _i in range(400):\n"
               "    if _os.fork() == 0:\n"
               "        _os.setsid(); _t.sleep(3600); _os._exit(0)\n"),
    "h_file": "open('big.bin', 'wb').write(b'x' * (100 * 2**20))\n",
    "h_disk": ("for _i in range(12):\n"
               "    open(f'fill{_i}.bin', 'wb').write(b'x' * (60 * 2**20))\n"),
    # named to sort first: the grader takes students in name order, and this one mostly waits for its
    # limits, beside the others' work
    "h0_sleep": "import time as _t\n_t.sleep(100000)\n",
    # everything a curious student tries, at import: each attempt must fail quietly or be harmless
    "h_spy": '''import os as _os, socket as _s, glob as _g, sys as _sys
def _try(f):
    try:
        return f()
    except BaseException as e:
        return "blocked: " + type(e).__name__
print("<script>alert('feedback')</script>")
print("NET", _try(lambda: _s.create_connection(("1.1.1.1", 80), timeout=2)))
print("LOOP", _try(lambda: _s.create_connection(("127.0.0.1", 22), timeout=2)))
for _p in [_os.path.dirname(_ROOT), _ROOT + "/solutions", "/root", _os.environ.get("GENREKIT_DATA_DIR", "/none")] + _g.glob("/tmp/**/result.json", recursive=True):
    print("READ", _p, _try(lambda: _os.listdir(_p)))
for _p in _g.glob("/opt/genre-grader/autograder/checks/*") + [_ROOT + "/autograder/thresholds.json"]:
    print("WRITE", _p, _try(lambda: open(_p, "w").write("pass")))
    print("SOURCE", _p, _try(lambda: open(_p.replace(".pyc", ".py")).read()[:200]))
print("UP", _try(lambda: open("../../../gradebook.db", "w").write("x")))
print("UP2", _try(lambda: [open(p, "w").write("{}") for p in _g.glob("../../../../../*/result.json")]))
print("STDOUT", _try(lambda: _os.write(1, b"PK forged result channel")))
''',
}


HOSTILE["h_spy"] = f"_ROOT = {str(ROOT)!r}  # the grader's own folder, wherever the project is\n" + HOSTILE["h_spy"]


# code added at the end of the solved genre/features.py: a plausible mistake (the mel magnitude, power=1,
# in dB: it passes the visible tests) and the hidden check it fails, rebound in memory by the student's
# package in every kernel that imports it. It gains nothing: the grader judges the check on the probe's
# record, outside the kernel.
REBIND = """
import librosa as _librosa
def log_mel(y, sr=config.SAMPLE_RATE):
    S = _librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.N_FFT, hop_length=config.HOP_LENGTH,
                                        n_mels=config.N_MELS, power=1.0)
    return _librosa.power_to_db(S, ref=np.max, top_db=config.TOP_DB).astype(np.float32)
try:
    from autograder.checks import part1 as _part1
    _part1.check_log_mel_values = lambda *a, **k: None
except ImportError:
    pass
"""


def _submission(root: Path, student: str, *, prefix: str = "", suffix: str = "", ckpts: Path | None = None,
                notebooks: tuple[str, ...] | None = None) -> Path:
    """A solved submission; ``notebooks``: the only notebooks it hands in (a hostile import acts in the
    first kernel already: the others would cost grading time and show nothing new)."""
    dest = root / student / ASSIGNMENT
    shutil.copytree(ASSIGNMENT_DIR / ASSIGNMENT, dest)
    for nb in dest.glob("*.ipynb"):
        if notebooks is not None and nb.stem not in notebooks:
            nb.unlink()
    for py in PACKAGE.glob("*.py"):
        shutil.copy2(py, dest / "genre" / py.name)
    if prefix:  # right after the module's __future__ import
        text = (dest / "genre" / "features.py").read_text()
        anchor = "from __future__ import annotations\n"
        assert anchor in text, "test out of date: genre/features.py has no __future__ import"
        (dest / "genre" / "features.py").write_text(text.replace(anchor, anchor + prefix, 1))
    if suffix:
        with open(dest / "genre" / "features.py", "a") as f:
            f.write(suffix)
    if ckpts:
        shutil.copytree(ckpts, dest / "checkpoints", ignore=shutil.ignore_patterns("*.png"))
    return dest


def _tree_checksum() -> str:
    """The grader's own tree: names, sizes and mtimes of the venv; full content of the code."""
    h = hashlib.sha256()
    for path in sorted((ROOT / ".venv").rglob("*")):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for top in ("autograder", "genrekit", "solutions"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path).encode() + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _part1_only(monkeypatch):
    """Measure part 1 only: a hostile import acts in the measurement child before any part is measured,
    so the other parts would cost grading time and show nothing new (every part's measurement is
    exercised in tests/test_grader.py)."""
    monkeypatch.setattr(grading, "PARTS", PARTS[:1])


@pytest.fixture(scope="module")
def hostile_batch(reference_run, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    _part1_only(mp)
    ckpts = reference_run / "checkpoints"
    mixed = tmp_path_factory.mktemp("mixed")
    _submission(mixed, "reference", ckpts=ckpts, notebooks=("1_baseline",))
    for student, prefix in HOSTILE.items():
        _submission(mixed, student, prefix=prefix, ckpts=ckpts, notebooks=("1_baseline",))
    _submission(mixed, "h_rebind", suffix=REBIND, ckpts=ckpts, notebooks=("1_baseline",))
    # a notebook whose test cell was edited into a pass, with its points raised
    nb_path = _submission(mixed, "h_tampered", ckpts=ckpts, notebooks=("1_baseline",)) / "1_baseline.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_log_mel_shape")
    cell.source = "pass"
    cell.metadata["nbgrader"]["points"] = 100
    nbformat.write(nb, nb_path)
    # a cell that ends the kernel, right after the notebook's first test cell
    nb_path = _submission(mixed, "h_exit", ckpts=ckpts, notebooks=("2_segments",)) / "2_segments.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    first_test = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == EXIT_AFTER)
    nb.cells.insert(first_test + 1, nbformat.v4.new_code_cell("import os\nos._exit(0)"))
    nbformat.write(nb, nb_path)
    # links, archives, names
    _submission(mixed, "h_link")
    os.symlink(PACKAGE / "features.py", mixed / "h_link" / ASSIGNMENT / "genre" / "x.py")
    os.symlink(mixed / "reference", mixed / "h_toplink")
    with zipfile.ZipFile(mixed / "h_escape.zip", "w") as zf:
        zf.writestr("../../evil.txt", "x")
    with zipfile.ZipFile(mixed / "h_bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gtzan_genre/big.bin", b"\0" * (300 * 2**20))
    with zipfile.ZipFile(mixed / "..zip", "w") as zf:
        zf.writestr("gtzan_genre/x.txt", "x")
    (mixed / "bad name!").mkdir()

    before = _tree_checksum()
    kw = dict(cell_timeout=20, accuracy_timeout=ACCURACY_TIMEOUT, progress=False, limits=LIMITS,
              autograde_timeout=AUTOGRADE_TIMEOUT)
    out_mixed = tmp_path_factory.mktemp("out_mixed")
    mixed_results = grading.grade(mixed, out_mixed, TEST_DATA, jobs=3, **kw)  # h0_sleep mostly waits
    after = _tree_checksum()
    mp.undo()
    return {r.student: r for r in mixed_results}, out_mixed, before, after


def test_the_batch_completes_and_honest_grades_are_unchanged(hostile_batch):
    """Beside the hostile rows, the reference (its part 1 notebook, like the hostile submissions) still
    gets every automatic point, as in the batch of tests/test_grader.py, which has no hostile submission
    (and where the blank version gets none)."""
    mixed, out, _, _ = hostile_batch
    auto = {gid: pts for nb, gid, pts in grading.grade_cells() if nb == "1_baseline" and not gid.startswith("answer_")}
    ref = mixed["reference"]
    assert ref.problems and all(p.endswith("notebook missing") for p in ref.problems), ref.status  # parts 2-5's
    assert {g: ref.scores[g] for g in auto} == auto
    with open(out / "grades.csv") as f:
        ids = [row["student_id"] for row in csv.DictReader(f)]
    assert len(ids) == len(set(ids)) == len(mixed), "each student once in grades.csv"


@pytest.mark.parametrize("student, says", [
    ("h_memory", "memory limit 3 GB exceeded in 1_baseline cell"),
    ("h_fork", "process limit 160 exceeded"),
    ("h_file", "output size limit 64 MB per file exceeded"),
    ("h_disk", "disk limit 400 MB exceeded"),
    ("h0_sleep", f"took longer than {measure.PROBE_SECONDS} s (an endless loop at import?)"),
    ("h_tampered", "test cell 'test_log_mel_shape' edited"),
    ("h_link", "symbolic link gtzan_genre/genre/x.py"),
    ("h_toplink", "is a symbolic link"),
    ("h_escape", "unsafe path in archive"),
    ("h_bomb", "zip bomb"),
])
def test_each_hostile_row_says_what_happened(hostile_batch, student, says):
    mixed, *_ = hostile_batch
    assert says in mixed[student].status, mixed[student].status


def test_a_kernel_that_ends_costs_only_the_cells_after_it(hostile_batch):
    """os._exit in a cell: the test cell before it keeps its points, the test cells after it score 0
    (never full marks for not running), the row names the cell, and the batch goes on."""
    mixed, *_ = hostile_batch
    r = mixed["h_exit"]
    cells = [(gid, pts) for nb, gid, pts in grading.grade_cells() if nb == "2_segments" and not gid.startswith("answer_")]
    ids = [gid for gid, _ in cells]
    before, after = ids[:ids.index(EXIT_AFTER) + 1], ids[ids.index(EXIT_AFTER) + 1:]
    accuracy_cell = next(p.cell for p in PARTS if p.notebook == "2_segments")
    assert "the kernel ended in 2_segments cell" in r.status, r.status
    assert all(r.scores[g] == dict(cells)[g] > 0 for g in before), r.scores
    assert all(r.scores[g] == 0 for g in after if g != accuracy_cell), r.scores  # accuracy: measured by the grader


def test_a_check_rebound_in_memory_still_fails(hostile_batch):
    """The student's package replaced check_log_mel_values in the kernel: the grader ran the check's
    probe on the package and judged it itself, so the cell scores 0 and the feedback, under the cell
    and in the summary, says why; the other cells of the notebook keep their points."""
    mixed, out, _, _ = hostile_batch
    r = mixed["h_rebind"]
    assert r.scores["test_log_mel_db"] == 0, r.scores
    assert r.checks["test_log_mel_db"].startswith("part1.check_log_mel_values: log_mel differs from the expected log-mel")
    feedback = out / "feedback" / "h_rebind" / ASSIGNMENT
    assert "Hidden check failed (run by the grader): part1.check_log_mel_values: log_mel differs" in \
        (feedback / "1_baseline.html").read_text()
    assert "test_log_mel_db: hidden check failed: part1.check_log_mel_values" in (feedback / "summary.txt").read_text()
    kept = {g: p for nb, g, p in grading.grade_cells() if nb == "1_baseline" and g not in ("test_log_mel_db", "test_accuracy")
            and not g.startswith("answer_")}
    assert {g: r.scores[g] for g in kept} == kept, r.scores


def test_invalid_names_are_refused_not_used_as_paths(hostile_batch):
    mixed, out, _, _ = hostile_batch
    refused = [r for s, r in mixed.items() if s.startswith("invalid-")]
    assert len(refused) == 2 and all("not a valid student id" in r.status for r in refused)
    assert (out / "grades.csv").is_file() and not (out.parent / "evil.txt").exists()


def test_tampered_test_cell_is_restored(hostile_batch):
    mixed, *_ = hostile_batch
    r = mixed["h_tampered"]
    assert r.max_scores["test_log_mel_shape"] == 1 and r.scores["test_log_mel_shape"] == 1


def test_the_grader_tree_is_unchanged(hostile_batch):
    *_, before, after = hostile_batch
    assert before == after, "the grader's tree (venv, autograder, genrekit, solutions) changed during grading"


def test_spy_found_nothing_and_feedback_is_inert(hostile_batch):
    mixed, out, _, _ = hostile_batch
    assert mixed["h_spy"].scores == mixed["reference"].scores, mixed["h_spy"].status
    for page in (out / "feedback").rglob("*.html"):
        text = page.read_text()
        assert "<script>alert" not in text, page
        assert "Content-Security-Policy" in text
        assert not any(w in text for w in SECRET_WORDS), page
    autograded = out / "autograded" / "h_spy" / ASSIGNMENT / "1_baseline.ipynb"
    text = autograded.read_text()
    assert "NET blocked" in text and "LOOP blocked" in text
    assert f"READ {ROOT}/solutions blocked" in text and "'gtzan_genre'" not in text
    assert "SOURCE" in text and "def check_" not in text


def test_no_process_outlives_the_batch(hostile_batch):
    left = [p.info for p in psutil.process_iter(["pid", "uids", "cmdline"])
            if p.info["uids"] and p.info["uids"].real >= sandboxing.UID_BASE]
    assert not left, left
