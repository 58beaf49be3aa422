"""The Gradescope bundle: results.json follows the autograder specification's fields; every failure
still writes one; autograder.zip has setup.sh and run_autograder at its root and no local data; and
run_autograder grades in Gradescope's own layout (/autograder/source, /autograder/submission,
/autograder/results, reproduced with bubblewrap) the reference, the blank release and a broken upload
(the package without its notebooks)."""

import json
import os
import shutil
import subprocess
import zipfile

import pytest

from autograder import sandbox as sandboxing
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, ROOT, SOLUTIONS
from autograder.gradescope import bundle, results
from autograder.grade import Result, grade_cells
from autograder.parts import PARTS
from conftest import TEST_DATA

CELLS = (("1_baseline", "test_log_mel_shape", 1.0), ("1_baseline", PARTS[0].cell, 5.0), ("1_baseline", "answer", 2.0))
TEST_KEYS = {"name", "score", "max_score", "output", "visibility"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


def _valid(doc):
    assert isinstance(doc["score"], float) and doc["visibility"] in VISIBILITIES
    for t in doc["tests"]:
        assert TEST_KEYS <= set(t) and t["visibility"] in VISIBILITIES
        assert 0 <= t["score"] <= t["max_score"] and isinstance(t["output"], str)
    for row in doc.get("leaderboard", []):
        assert set(row) == {"name", "value", "order"} and row["order"] in ("asc", "desc")


def test_results_json_has_one_test_per_graded_cell_and_accuracy_on_the_leaderboard():
    r = Result("s", scores={"test_log_mel_shape": 1.0, PARTS[0].cell: 2.5, "answer": None},
               accuracy={PARTS[0].id: {"accuracy": 0.61, "comment": "Test accuracy measured by the grader: 0.610"}})
    doc = results.results_json(r, CELLS, PARTS)
    _valid(doc)
    assert [t["name"] for t in doc["tests"]] == [f"{nb}: {gid}" for nb, gid, _ in CELLS]
    assert doc["score"] == 3.5 and "0.610" in doc["tests"][1]["output"]
    assert doc["leaderboard"] == [{"name": PARTS[0].title, "value": 0.61, "order": "desc"}]


def test_a_failure_still_writes_results_json(tmp_path):
    (tmp_path / "submission").mkdir()
    assert results.main(["--root", str(tmp_path), "--data", "no-such-dataset"]) == 0
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    _valid(doc)
    assert doc["score"] == 0 and "could not grade" in doc["output"]


def test_bundle_layout(tmp_path):
    out = bundle.write(tmp_path / "autograder.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {"setup.sh", "run_autograder", "pyproject.toml", "autograder/grade.py"} <= names
        assert (zf.getinfo("run_autograder").external_attr >> 16) & 0o111
    assert not any(n.endswith((".pt", ".wav", ".db")) for n in names)


# --- run_autograder in Gradescope's layout ---------------------------------------------------------

def _upload(kind: str, reference_run, dest):
    """What a student uploads to Gradescope: the assignment folder's content at the top (the released
    notebooks; for the reference, the solved package and the trained checkpoints)."""
    if kind == "broken":  # the wrong upload: the package without its notebooks
        shutil.copytree(ASSIGNMENT_DIR / ASSIGNMENT / "genre", dest / "genre")
        return dest
    shutil.copytree(ASSIGNMENT_DIR / ASSIGNMENT, dest)
    if kind != "reference":
        return dest
    for py in (SOLUTIONS / ASSIGNMENT / "genre").glob("*.py"):
        shutil.copy2(py, dest / "genre" / py.name)
    shutil.copytree(reference_run / "checkpoints", dest / "checkpoints", ignore=shutil.ignore_patterns("*.png"))
    return dest


@pytest.fixture(scope="module")
def gradescope_runs(reference_run, tmp_path_factory):
    """run_autograder for three submissions, each in a bubblewrap namespace with Gradescope's layout:
    the project read-only at /autograder/source, the upload at /autograder/submission, results.json
    written to /autograder/results."""
    bwrap = sandboxing.bwrap_path()
    if bwrap is None:
        pytest.skip(sandboxing.INSTALL_HINT)
    runs = {}
    for kind in ("reference", "blank", "broken"):  # three uploads graded at once, as Gradescope would
        base = tmp_path_factory.mktemp(f"gradescope-{kind}")
        upload = _upload(kind, reference_run, base / "submission")
        (base / "results").mkdir()
        cmd = [bwrap, "--dev-bind", "/", "/", "--tmpfs", "/autograder", "--ro-bind", str(ROOT), "/autograder/source",
               "--bind", str(upload), "/autograder/submission", "--bind", str(base / "results"), "/autograder/results",
               "--die-with-parent", "--", "/autograder/source/autograder/gradescope/run_autograder"]
        runs[kind] = (base, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                             env={**os.environ, "GRADESCOPE_DATA": TEST_DATA}))
    docs = {}
    for kind, (base, proc) in runs.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        docs[kind] = json.loads((base / "results" / "results.json").read_text())
    return docs


def test_run_autograder_grades_in_gradescopes_layout(gradescope_runs):
    auto = sum(pts for _, gid, pts in grade_cells() if not gid.startswith("answer_"))
    for doc in gradescope_runs.values():
        _valid(doc)
        assert [t["name"] for t in doc["tests"]] == [f"{nb}: {gid}" for nb, gid, _ in grade_cells()]
    ref = gradescope_runs["reference"]
    assert ref["score"] == auto and "status: ok" in ref["output"], ref["output"]
    assert {row["name"] for row in ref["leaderboard"]} == {p.title for p in PARTS}
    assert gradescope_runs["blank"]["score"] == 0 and not gradescope_runs["blank"]["leaderboard"]
    broken = gradescope_runs["broken"]
    assert "no notebook found" in broken["output"] and broken["score"] == 0, broken["output"]
