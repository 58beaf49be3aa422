"""The Gradescope bundle: results.json follows the autograder specification's fields; every failure
still writes one; autograder.zip has setup.sh and run_autograder at its root and no local data."""

import json
import zipfile

from autograder.gradescope import bundle, results
from autograder.grade import Result
from autograder.parts import PARTS

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
