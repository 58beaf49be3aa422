"""The part registry (autograder/parts.py) agrees with the notebooks, the student package, the
thresholds and the measurement pipelines: everything that reads it can rely on it."""

import importlib
import sys

import nbformat
import pytest

from autograder import grade, measure, thresholds
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, SOLUTIONS
from autograder.parts import PARTS, get


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.id)
def test_each_part_is_complete(part):
    for root in (SOLUTIONS, ASSIGNMENT_DIR):
        assert (root / ASSIGNMENT / f"{part.notebook}.ipynb").is_file(), f"{part.notebook} missing in {root.name}"
    assert grade.cell_points(part.notebook, part.cell) > 0, f"{part.cell} must be a graded cell with points"
    assert part.pipeline in measure.PIPELINES
    assert part.checkpoint.startswith("checkpoints/") and part.checkpoint.endswith(".pt")
    for dataset in ("synthetic:default", "synthetic-small:default"):  # the course's, and the tests'
        entry = thresholds.entry(part.id, dataset)
        assert entry["calibrated"] and entry["floor"] < entry["pass"], f"{part.id} is not calibrated on {dataset}"
    nb = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{part.notebook}.ipynb", as_version=4)
    assert any(part.checkpoint in cell.source for cell in nb.cells), "the notebook saves the checkpoint the grader reads"


def test_the_student_code_each_part_names_exists_in_the_reference():
    sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))
    try:
        for part in PARTS:
            for role, path in part.code.items():
                module, _, name = path.rpartition(".")
                assert hasattr(importlib.import_module(module), name), f"{part.id}: {role} {path} not found"
    finally:
        sys.path.pop(0)
        for name in [m for m in sys.modules if m == "genre" or m.startswith("genre.")]:
            del sys.modules[name]


def test_ids_are_unique_across_the_assignment():
    """grades.csv and the results key scores by grade id: two notebooks may not share one."""
    ids = [gid for _, gid, _ in grade.grade_cells()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len({p.id for p in PARTS}) == len(PARTS) and len({p.checkpoint for p in PARTS}) == len(PARTS)


def test_unknown_part_is_a_one_line_error():
    with pytest.raises(KeyError, match="unknown part 'part9'"):
        get("part9")


def test_every_released_notebook_is_a_declared_part():
    """A notebook in the release whose accuracy cell no part declares would hand out its points
    unmeasured: drafts stay in solutions/drafts until their part is declared."""
    declared = {p.notebook for p in PARTS}
    released = {nb.stem for nb in (SOLUTIONS / ASSIGNMENT).glob("*.ipynb")}
    assert released == declared, f"not declared: {sorted(released - declared)}; missing: {sorted(declared - released)}"


def test_part5_thresholds_follow_the_start_weights():
    """Part 5 is graded against the entry of the weights its finetuning started from, and says which."""
    imagenet = thresholds.entry("part5_resnet", "synthetic:default", start="imagenet")
    random = thresholds.entry("part5_resnet", "synthetic:default", start="random")
    assert imagenet["key"] == "synthetic:default@imagenet" and not imagenet["calibrated"]
    assert random["key"] == "synthetic:default" and random["calibrated"] and random["start_weights"] == "random"
    assert thresholds.entry("part5_resnet", "synthetic:default", start="other")["key"] == "synthetic:default"
    assert thresholds.key_for("gtzan8:filtered", "imagenet") == "gtzan8:filtered@imagenet"
    assert thresholds.key_for("gtzan8:filtered", "random") == thresholds.key_for("gtzan8:filtered", None) == "gtzan8:filtered"
    measured = {"accuracy": 0.9, "dataset": "synthetic:default", "n": 104, "start_weights": "imagenet"}
    pts, comment = grade.score_accuracy(measured, imagenet, 5)
    assert pts == 5 and "finetuning from imagenet weights (synthetic:default@imagenet)" in comment


def test_an_estimate_that_follows_an_entry_takes_its_current_marks():
    """``"follows": key`` entries hold no marks of their own: they are read from the entry they follow, so a
    recalibrated random start moves the ImageNet estimate with it (no copies to go stale)."""
    table = thresholds.load()
    followers = [(part, key) for part, spec in table.items() for key, e in spec["datasets"].items() if "follows" in e]
    assert ("part5_final", "synthetic:default@imagenet") in followers and len(followers) >= 4
    for part, key in followers:
        dataset, start = key.split("@")
        got, base = thresholds.entry(part, dataset, table, start=start), table[part]["datasets"][table[part]["datasets"][key]["follows"]]
        assert (got["pass"], got["floor"], got["key"]) == (base["pass"], base["floor"], key) and not got["calibrated"]
    toy = {"p": {"datasets": {"d": {"pass": 0.7, "floor": 0.4, "calibrated": True},
                              "d@imagenet": {"follows": "d", "calibrated": False, "note": "estimate"},
                              "d@loop": {"follows": "d@imagenet", "calibrated": False},
                              "d@lost": {"follows": "nowhere", "calibrated": False}}}}
    got = thresholds.entry("p", "d", toy, start="imagenet")
    assert (got["pass"], got["floor"], got["key"], got["note"]) == (0.7, 0.4, "d@imagenet", "estimate")
    toy["p"]["datasets"]["d"]["pass"] = 0.75
    assert thresholds.entry("p", "d", toy, start="imagenet")["pass"] == 0.75
    for start in ("loop", "lost"):
        with pytest.raises(KeyError, match="which is not an entry with marks"):
            thresholds.entry("p", "d", toy, start=start)
