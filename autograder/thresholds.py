"""Accuracy thresholds per part and dataset (``autograder/thresholds.json``) and the points they give.

Each entry: ``pass`` (full points at or above), ``floor`` (0 points at or below; linear in between),
and how it was calibrated (the reference accuracies over seeds it came from, or a note when it is an
estimate). An estimate may instead name the entry whose marks it takes, ``"follows": "<key>"`` (e.g.
an ImageNet start that is graded like the calibrated random start until it is calibrated itself).
``make calibrate`` rewrites the entry of a dataset from fresh reference runs.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

FILE = Path(__file__).with_name("thresholds.json")


def load(path: Path = FILE) -> dict:
    return json.loads(Path(path).read_text())


def entry(part: str, dataset: str, table: dict | None = None, start: str | None = None) -> dict:
    """The threshold entry of ``part`` on ``dataset`` (e.g. 'synthetic:default'); KeyError says what exists.

    ``start``: the weights a finetuned model started from, as its checkpoint records them (part 5:
    ``"random"``, ``"imagenet"``, ...). An entry ``dataset@start`` is used when there is one, else the
    dataset's own entry (calibrated from the start the reference had). ``key`` says which was used.
    """
    table = table or load()
    if part not in table:
        raise KeyError(f"no thresholds for part '{part}' (have {', '.join(sorted(table))})")
    per_data = table[part]["datasets"]
    key = f"{dataset}@{start}" if start and f"{dataset}@{start}" in per_data else dataset
    if key not in per_data:
        raise KeyError(f"no thresholds for {part} on dataset '{dataset}' (have {', '.join(sorted(per_data))})")
    chosen = per_data[key]
    follows = chosen.get("follows")
    if follows is not None:  # an estimate that takes another entry's marks, whatever they are now
        base = per_data.get(follows)
        if base is None or "follows" in base:
            raise KeyError(f"thresholds of {part} on '{key}' follow '{follows}', which is not an entry with marks")
        chosen = {**chosen, "pass": base["pass"], "floor": base["floor"]}
    return {**chosen, "key": key}


def key_for(dataset: str, start: str | None) -> str:
    """Where a calibration with this start writes its entry: the dataset's own key for random (or no)
    start weights, ``dataset@start`` otherwise."""
    return dataset if start in (None, "", "random") else f"{dataset}@{start}"


def points(accuracy: float, pass_mark: float, floor: float, max_points: float) -> float:
    """Full points at or above ``pass_mark``, 0 at or below ``floor``, linear in between (2 decimals)."""
    if accuracy >= pass_mark:
        return float(max_points)
    if accuracy <= floor:
        return 0.0
    return round(max_points * (accuracy - floor) / (pass_mark - floor), 2)


def from_reference(accuracies: list[float], n_classes: int = 8) -> dict:
    """Pass mark and floor from reference accuracies over seeds.

    pass = mean - max(0.10, 2 * stdev): a student who follows the notebook reaches it even on an
    unlucky seed; floor = halfway between chance and the pass mark, and at least 0.1 above chance,
    so a model predicting one class (accuracy about 1/n_classes) gets nothing.
    """
    mean = statistics.fmean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    chance = 1.0 / n_classes
    pass_mark = round(max(mean - max(0.10, 2 * std), chance + 0.2), 3)
    floor = round(max(chance + 0.1, (chance + pass_mark) / 2), 3)
    return {"pass": pass_mark, "floor": floor, "calibrated": True,
            "reference": {"accuracies": [round(a, 4) for a in accuracies], "mean": round(mean, 4), "stdev": round(std, 4)}}
