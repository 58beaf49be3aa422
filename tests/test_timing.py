"""Time limits from the reference's own grading time, and the lanes a submission's notebooks are
autograded in (the nbgrader runs themselves are exercised by test_grader.py and test_hostile.py)."""

import json
import os

import nbformat
import pytest

from autograder import grade as grading
from autograder import timing

TIMES = timing.Limits({"a": 10.0, "b": 1.0, "c": 9.0, "d": 2.0}, accuracy_ref=20.0, test_seconds_ref=100.0,
                      feedback_ref=4.0, factor=10.0)


def test_limits_are_multiples_of_the_reference_plus_start_up():
    assert TIMES.autograde(["a", "b"]) == round(10 * 11 + 2 * timing.PER_NOTEBOOK + timing.ALLOWANCE)
    assert TIMES.autograde(["unknown"]) == round(10 * timing.FALLBACK_NOTEBOOK + timing.PER_NOTEBOOK + timing.ALLOWANCE)
    assert TIMES.accuracy(50.0) == 10 * 20 + timing.ALLOWANCE, "a smaller test set keeps the reference's limit"
    assert TIMES.accuracy(300.0) == 10 * 20 * 3 + timing.ALLOWANCE, "three times the test audio, three times the time"
    assert TIMES.feedback() == 10 * 4 + timing.ALLOWANCE


def test_the_shipped_timing_file_knows_every_notebook():
    raw = json.loads(timing.FILE.read_text())
    notebooks = {nb for nb, _, _ in grading.grade_cells()}
    assert set(raw["notebooks"]) == notebooks, "run make timing after adding a notebook"
    limits = timing.load()
    assert limits.accuracy_ref == raw["accuracy"] > 0 and limits.test_seconds_ref > 0


@pytest.mark.parametrize("text", [None, "", "{", '{"notebooks": 3}', '{"notebooks": {}, "accuracy": "x"}'])
def test_a_missing_or_broken_timing_file_falls_back_to_fixed_limits(tmp_path, text):
    path = tmp_path / "timing.json"
    if text is not None:
        path.write_text(text)
    limits = timing.load(path=path)
    assert limits.notebooks == {} and limits.accuracy_ref == timing.FALLBACK_ACCURACY


def test_record_keeps_the_median_of_each_figure(tmp_path):
    runs = [{"notebooks": {"a": s, "b": 2 * s}, "accuracy": 10 + s, "feedback": 3.0} for s in (1.0, 5.0, 2.0)]
    table = timing.record(runs, 120.0, "synthetic:default", path=tmp_path / "t.json")
    assert table["notebooks"] == {"a": 2.0, "b": 4.0} and table["accuracy"] == 12.0 and table["runs"] == 3
    assert timing.load(path=tmp_path / "t.json").notebooks == {"a": 2.0, "b": 4.0}


def test_cell_seconds_spans_the_first_cell_start_to_the_last_cell_end(tmp_path):
    nb = nbformat.v4.new_notebook()
    for start, end in (("10:00:00.0", "10:00:01.5"), ("10:00:02.0", "10:00:04.25")):
        cell = nbformat.v4.new_code_cell("1")
        cell.metadata["execution"] = {"iopub.execute_input": f"2026-01-01T{start}Z",
                                      "shell.execute_reply": f"2026-01-01T{end}Z"}
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_markdown_cell("text"))
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert timing.cell_seconds(tmp_path / "x.ipynb") == pytest.approx(4.25)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "empty.ipynb")
    assert timing.cell_seconds(tmp_path / "empty.ipynb") == 0.0


def test_lanes_balance_the_reference_time_and_keep_notebook_order():
    lanes = grading.notebook_lanes(["a", "b", "c", "d"], 2, TIMES)
    assert sorted(map(tuple, lanes)) == [("a", "b"), ("c", "d")]
    assert grading.notebook_lanes(["a", "b", "c"], 1, TIMES) == [["a", "b", "c"]]
    assert grading.notebook_lanes(["b"], 4, TIMES) == [["b"]], "no empty lane"
    assert grading.notebook_lanes([], 2, TIMES) == []


def test_a_lane_sees_its_notebooks_and_the_students_files_as_links(tmp_path):
    sub = tmp_path / "submission"
    (sub / "genre").mkdir(parents=True)
    (sub / "genre" / "features.py").write_text("x = 1\n")
    for nb in ("1_a", "2_b"):
        (sub / f"{nb}.ipynb").write_text("{}")
    view = tmp_path / "lane" / "view"
    grading.link_view(sub, view, ["2_b"])
    assert sorted(p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file()) == \
        ["2_b.ipynb", "genre/features.py"]
    assert os.path.samefile(view / "genre" / "features.py", sub / "genre" / "features.py"), "a link, not a copy"


# --- the held-out verdict (grade --heldout) ----------------------------------------------------------

LIM = {"pass": 0.6, "floor": 0.35, "heldout_gap": 0.15}


def _verdict(held_acc, public_acc):
    held, public = {"accuracy": held_acc}, {"accuracy": public_acc}
    result = grading.Result("s")
    pts, comment = grading.score_accuracy({**held, "dataset": "d", "n": 10}, LIM, 5.0)
    pts, comment = grading.heldout_verdict(held, public, LIM, pts, comment, result)
    return held, pts, comment, result


def test_points_come_from_the_held_out_set_with_the_public_accuracy_beside_it():
    held, pts, comment, result = _verdict(0.70, 0.75)
    assert pts == 5.0 and "Public test accuracy 0.750 (held-out set 0.700)" in comment
    assert held["public_accuracy"] == 0.75 and "flag" not in held and not result.problems
    _, pts, _, _ = _verdict(0.40, 0.50)  # a weak model: the held-out accuracy sets the points
    assert pts == 1.0


def test_a_gap_beyond_the_spread_is_flagged_for_the_instructor():
    held, pts, _, result = _verdict(0.45, 0.95)   # memorised the public test set
    assert pts == 2.0, "points still from the held-out accuracy"
    assert "trained on the test set?" in held["flag"] and result.problems[0].startswith("instructor: public test")
