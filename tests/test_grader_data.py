"""Grading and calibration take any dataset by name: the accuracy path on a prepared gtzan8 folder."""

import json
import shutil
import subprocess
import sys

import pytest

from autograder import measure, thresholds
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, SOLUTIONS
from autograder.measure import MeasureError
from genrekit import data


@pytest.fixture
def fake_gtzan8(tmp_path, tiny_synth, monkeypatch):
    """A prepared-gtzan8-shaped folder (clips borrowed from the tiny synthetic set) in GENREKIT_DATA_DIR."""
    root = tmp_path / "datasets" / "gtzan8"
    shutil.copytree(tiny_synth, root, ignore=shutil.ignore_patterns("splits", "dataset.json"))
    synth = data.Dataset(tiny_synth)
    lists = {s: [c.rel for c in synth.clips(s)] for s in data.SPLITS}
    data.write_split_lists(root, "filtered", lists)
    data.write_split_lists(root, "580", {"train": lists["train"] + lists["test"], "test": lists["valid"]})
    (root / "dataset.json").write_text(json.dumps({"name": "gtzan8", "default_split": "filtered"}))
    monkeypatch.setenv("GENREKIT_DATA_DIR", str(tmp_path / "datasets"))
    return root


def test_accuracy_is_measured_on_the_named_gtzan_split(tmp_path, fake_gtzan8):
    submission = tmp_path / "sub"
    shutil.copytree(SOLUTIONS / ASSIGNMENT, submission, ignore=shutil.ignore_patterns("checkpoints", "__pycache__"))
    make_ckpt = ("import torch; from genre.models import BaselineCNN; from genrekit import checkpoint;"
                 "torch.manual_seed(0); checkpoint.save('checkpoints/part1_baseline.pt', BaselineCNN(),"
                 " dataset='gtzan8:580', seed=0)")
    res = subprocess.run([sys.executable, "-c", make_ckpt], cwd=submission, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(submission)}, timeout=120)
    assert res.returncode == 0, res.stderr[-400:]
    for spec, n_test in (("gtzan8", 16), ("gtzan8:580", 8), ("gtzan8:filtered", 16)):
        tests = measure.test_set(spec, workdir=tmp_path)
        measured = measure.measure(submission, ["part1_baseline"], tests, timeout=120)["part1_baseline"]
        assert "error" not in measured, measured
        assert measured["dataset"] == (spec if ":" in spec else "gtzan8:filtered") and measured["n"] == n_test
        assert measured["checkpoint_dataset"] == "gtzan8:580"
        assert thresholds.entry("part1_baseline", measured["dataset"])["pass"] > 0


def test_unknown_dataset_or_split_is_a_clear_error(tmp_path, fake_gtzan8):
    with pytest.raises(data.DatasetError, match="no split set 'nope'"):
        measure.test_set("gtzan8:nope", workdir=tmp_path)
    with pytest.raises(KeyError, match="no thresholds for part1_baseline on dataset 'gtzan8:nope'"):
        thresholds.entry("part1_baseline", "gtzan8:nope")


def test_a_corrupt_test_clip_is_left_out_for_everyone(tmp_path, fake_gtzan8):
    first = data.open_dataset("gtzan8").clips("test")[0]
    first.path.write_bytes(b"not audio")
    tests = measure.test_set("gtzan8", workdir=tmp_path)
    assert tests.n == 15 and len(tests.skipped) == 1 and first.path.name in tests.skipped[0]
    assert isinstance(MeasureError("x"), Exception)


def test_thresholds_file_is_sane():
    table = thresholds.load()
    for part, spec in table.items():
        for name in spec["datasets"]:
            dataset, _, start = name.partition("@")
            entry = thresholds.entry(part, dataset, table, start=start or None)   # "follows" resolved
            assert 0.125 < entry["floor"] < entry["pass"] <= 1, f"{part} {name}: floor/pass out of order"
            if entry.get("calibrated"):
                assert entry["reference"]["mean"] >= entry["pass"], f"{part} {name}: reference below its pass mark"


def test_heldout_points_come_from_the_heldout_set(reference_run, tmp_path):
    """``grade --heldout`` on the synthetic dataset: the accuracy points come from the held-out set rendered
    from the grader's own seed, the public test accuracy is shown beside it, and the reference (trained
    on the public training split only) is not flagged."""
    from autograder import grade as grading
    from autograder import sandbox as sandboxing
    from autograder.parts import PARTS
    from conftest import TEST_DATA
    sub = tmp_path / "subs" / "reference" / ASSIGNMENT
    shutil.copytree(SOLUTIONS / ASSIGNMENT / "genre", sub / "genre", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(reference_run / "checkpoints", sub / "checkpoints", ignore=shutil.ignore_patterns("*.png"))
    shutil.copy2(ASSIGNMENT_DIR / ASSIGNMENT / "2_segments.ipynb", sub)  # a submission has a notebook (a quick one)
    [r] = grading.grade(tmp_path / "subs", tmp_path / "out", TEST_DATA, heldout=True, progress=False,
                        sandbox=sandboxing.bwrap_path() is not None)
    n_public = measure.test_set(TEST_DATA, workdir=tmp_path).n
    for part in PARTS:
        m = r.accuracy[part.id]
        assert "error" not in m, (part.id, m)
        assert m["dataset"] == f"{TEST_DATA}:default (held-out set)", m["dataset"]  # never the secret seed
        assert "seed" not in m["comment"] and "trained on" not in m["comment"], m["comment"]
        assert 0 <= m["public_accuracy"] <= 1 and f"Public test accuracy {m['public_accuracy']:.3f}" in m["comment"]
        assert m["n"] == n_public, "the held-out set has the public test set's size"
        assert r.scores[part.cell] == m["points"] > 0, (part.id, m)
    assert not [p for p in r.problems if p.startswith("instructor:")], r.problems
