"""autograder.gains: each part's gain over the parts it builds on, measured on a calibration's seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autograder import gains
from autograder.course import ASSIGNMENT, GradingError
from autograder.parts import BY_ID, PARTS


def _onehot(rows, n=8, p=0.9):
    out = np.full((len(rows), n), (1 - p) / (n - 1))
    out[np.arange(len(rows)), rows] = p
    return out


def test_gain_per_seed_spread_and_either_right():
    labels = np.array([0, 1, 2, 3])
    part = [_onehot([0, 1, 2, 0]), _onehot([0, 1, 2, 3])]   # 0.75, 1.00
    base = [_onehot([0, 1, 0, 3]), _onehot([0, 0, 0, 3])]   # 0.75, 0.50
    r = gains.pair(part, base, labels)
    assert r["per_seed"] == pytest.approx([0.0, 0.5])
    assert r["gain"] == pytest.approx(0.25)
    assert r["part_mean"] == pytest.approx(0.875) and r["base_mean"] == pytest.approx(0.625)
    assert r["spread"] == pytest.approx(np.std([0.75, 0.5], ddof=1))     # the larger sample stdev of the two
    assert r["shown"] is (0.25 > r["spread"])
    assert r["either_right"] == pytest.approx(1.0)                       # seed 0: 3 and 2 differ; seed 1: all right
    assert r["blend"]["0.0"] == pytest.approx(0.625) and r["blend"]["1.0"] == pytest.approx(0.875)


def test_a_gain_within_the_spread_is_not_shown():
    labels = np.array([0, 1, 2, 3])
    part = [_onehot([0, 1, 2, 3]), _onehot([0, 0, 0, 3])]   # 1.00, 0.50
    base = [_onehot([0, 1, 2, 0]), _onehot([0, 1, 0, 0])]   # 0.75, 0.50
    r = gains.pair(part, base, labels)
    assert r["gain"] == pytest.approx(0.125) and r["spread"] > 0.125 and not r["shown"]


def test_the_blend_finds_what_each_model_alone_misses():
    labels = np.array([0, 0])
    part = [np.array([[0.6, 0.4], [0.45, 0.55]])]   # right on clip 0 (barely), wrong on clip 1 (barely)
    base = [np.array([[0.45, 0.55], [0.9, 0.1]])]   # wrong on clip 0 (barely), right on clip 1 (surely)
    r = gains.pair(part, base, labels)
    assert r["part_mean"] == 0.5 and r["base_mean"] == 0.5 and r["either_right"] == 1.0
    assert r["blend"]["0.5"] == 1.0 and r["best_blend"] == 1.0
    assert r["best_blend_weight"] == 0.5   # among equally good weights, the one nearest an even blend


def test_scores_that_only_rank_are_blended_as_probabilities():
    labels = np.array([1])
    r = gains.pair([np.array([[2.0, 6.0]])], [np.array([[0.0, 3.0]])], labels)   # not normalised, a zero
    assert all(np.isfinite(list(r["blend"].values()))) and r["best_blend"] == 1.0


def test_pairs_follow_the_declared_parts():
    labels = np.arange(8)
    probs = {p: [_onehot(labels)] for p in ("part3_augmented", "part4_mlp", "part4_fusion")}
    rows = gains.report(probs, labels)
    assert [(r["part"], r["base"]) for r in rows] == [("part4_mlp", "part3_augmented"),
                                                       ("part4_fusion", "part3_augmented"),
                                                       ("part4_fusion", "part4_mlp")]
    text = gains.lines(rows, 1)
    assert len(text) == 2 + len(rows) and all("NO" in line for line in text[2:])   # equal: no gain
    for part in PARTS:   # every base is a declared part that comes before it
        assert all(b in BY_ID and PARTS.index(BY_ID[b]) < PARTS.index(part) for b in part.builds_on), part.id


def test_a_report_of_some_parts_keeps_the_other_parts_pairs(tmp_path):
    labels = np.arange(8)
    first = gains.report({p: [_onehot(labels)] * 2 for p in ("part1_baseline", "part2_segments", "part3_augmented")},
                         labels)
    gains.write(first, tmp_path, "synthetic:default", 2)
    again = gains.report({p: [_onehot(labels)] * 2 for p in ("part2_segments", "part3_augmented")}, labels)
    again[0]["gain"] = 0.5   # a new measurement of part 3
    saved = json.loads(gains.write(again, tmp_path, "synthetic:default", 2).read_text())
    assert [(r["part"], r["gain"]) for r in saved["pairs"]] == [("part2_segments", 0.0), ("part3_augmented", 0.5)]
    assert saved["made"]["date"] and "commit" in saved["made"]   # what made the report
    saved = json.loads(gains.write(again, tmp_path, "synthetic:default", 3).read_text())   # other seeds: replaced
    assert [r["part"] for r in saved["pairs"]] == ["part3_augmented"]


def test_without_seed_folders_it_is_a_one_line_error(tmp_path, tiny_synth):
    with pytest.raises(GradingError, match="no calibration seed folders") as err:
        gains.run(str(tiny_synth), tmp_path)
    assert "\n" not in str(err.value)


def test_the_reference_seed_is_measured_as_the_grader_measures_it(reference_run, tmp_path):
    """The shared reference run as seed 0 of a calibration: every pair is reported from the grader's
    own measurement, and the blend's ends are the two parts' own accuracies."""
    from autograder.reference import slug
    from genrekit import data
    from tests.conftest import TEST_DATA
    root = tmp_path / slug(data.open_dataset(TEST_DATA).spec)
    (root / "seed0").mkdir(parents=True)
    (root / "seed0" / ASSIGNMENT).symlink_to(reference_run, target_is_directory=True)
    assert gains.run(TEST_DATA, tmp_path) == 0
    saved = json.loads((root / "gains.json").read_text())
    assert saved["seeds"] == 1
    assert len(saved["pairs"]) == sum(len(p.builds_on) for p in PARTS)
    for r in saved["pairs"]:
        assert r["spread"] == 0.0 and r["gain"] == pytest.approx(r["part_mean"] - r["base_mean"])
        assert r["blend"]["1.0"] == pytest.approx(r["part_mean"]) and r["blend"]["0.0"] == pytest.approx(r["base_mean"])
        assert max(r["part_mean"], r["base_mean"]) <= r["either_right"] <= 1.0
