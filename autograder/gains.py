"""Does each part of the reference gain over the parts it builds on? (``python -m autograder gains``)

Every part must show its gain over the one before it, in the reference, by more than the spread over
seeds; a part declares in :data:`autograder.parts.PARTS` which parts it must beat (``builds_on``).
This module reads the seed folders a calibration left (``out/calibrate/<dataset>/seed*``), measures
every part of each with the grader's own label-blind measurement (the same child as grading, the same
test clips for all seeds), and reports for each pair (part, base):

- the **gain**: the mean over seeds of the part's accuracy minus the base's on the same seed, with the
  per-seed differences, against the **spread**: the larger of the two parts' standard deviations over
  seeds (sample standard deviation, as the thresholds use). A gain above the spread is "shown".
- **either right**: the fraction of test clips that at least one of the two gets right, the ceiling of
  any combination of the two models' decisions: when it is not above both, they make the same errors
  and combining them cannot help.
- the **best blend in hindsight**: the accuracy of the log-linear blend
  ``w * log p_part + (1 - w) * log p_base`` (w = 0, 0.1, ..., 1) at the w that is best *on the test
  labels*, an optimistic ceiling for what a combination learned from training data could reach; a
  fusion that stays far below it is failing to learn how much to trust each model.

The report is printed and written to ``gains.json`` next to the seed folders, with the date and the
project's git commit that made it. ``calibrate`` makes the
same report after measuring its seeds. Exits 0 when it could measure every part, whether or not each
gain is shown (the report says which are not).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from autograder import measure as measuring
from autograder.course import ASSIGNMENT, GradingError
from autograder.parts import PARTS

BLEND_WEIGHTS = tuple(round(w, 1) for w in np.linspace(0.0, 1.0, 11))
PROB_FLOOR = 1e-6  # a probability of 0 is read as this before the logarithm of a blend


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(probs).argmax(1) == labels))


def _log_probs(probs: np.ndarray) -> np.ndarray:
    """Rows normalised to sum 1 (a part may return scores that only rank), then their logarithm."""
    p = np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, None)
    return np.log(p / p.sum(axis=1, keepdims=True))


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def pair(part_probs: list[np.ndarray], base_probs: list[np.ndarray], labels: np.ndarray) -> dict:
    """The report of one (part, base) pair from their test probabilities on each seed (same clip order)."""
    if len(part_probs) != len(base_probs) or not part_probs:
        raise ValueError(f"pair: need the same number of seeds for both, got {len(part_probs)} and {len(base_probs)}")
    labels = np.asarray(labels)
    acc_part = [accuracy(p, labels) for p in part_probs]
    acc_base = [accuracy(b, labels) for b in base_probs]
    diffs = [a - b for a, b in zip(acc_part, acc_base)]
    either = [float(np.mean((p.argmax(1) == labels) | (b.argmax(1) == labels))) for p, b in zip(part_probs, base_probs)]
    blend = {w: float(np.mean([accuracy(w * _log_probs(p) + (1 - w) * _log_probs(b), labels)
                               for p, b in zip(part_probs, base_probs)])) for w in BLEND_WEIGHTS}
    best_w = max(BLEND_WEIGHTS, key=lambda w: (blend[w], -abs(w - 0.5)))
    spread = max(_spread(acc_part), _spread(acc_base))
    gain = statistics.fmean(diffs)
    return {"part_mean": statistics.fmean(acc_part), "base_mean": statistics.fmean(acc_base),
            "gain": gain, "per_seed": diffs, "spread": spread, "shown": gain > spread,
            "either_right": statistics.fmean(either), "blend": {f"{w:.1f}": a for w, a in blend.items()},
            "best_blend_weight": best_w, "best_blend": blend[best_w]}


def report(probs: dict[str, list[np.ndarray]], labels: np.ndarray) -> list[dict]:
    """One row per declared (part, base) pair whose probabilities are all in ``probs`` (part -> per seed)."""
    rows = []
    for part in PARTS:
        for base in part.builds_on:
            if part.id in probs and base in probs:
                rows.append({"part": part.id, "base": base, **pair(probs[part.id], probs[base], labels)})
    return rows


def lines(rows: list[dict], n_seeds: int) -> list[str]:
    """The report as text, one line per pair."""
    out = [f"gain of each part over the parts it builds on, reference, mean of {n_seeds} seed(s); "
           f"'either' = clips one of the two gets right; 'blend' = best w * log p(part) + (1 - w) * log p(base) "
           f"in hindsight (w chosen on the test labels)",
           f"{'part':<16}{'over':<17}{'gain':>7}{'spread':>8}  {'shown':<6}{'per seed':<24}{'either':>7}{'blend':>7}{'w':>5}"]
    for r in rows:
        seeds = " ".join(f"{d:+.3f}" for d in r["per_seed"])
        out.append(f"{r['part']:<16}{r['base']:<17}{r['gain']:>+7.3f}{r['spread']:>8.3f}  {'yes' if r['shown'] else 'NO':<6}"
                   f"{seeds:<24}{r['either_right']:>7.3f}{r['best_blend']:>7.3f}{r['best_blend_weight']:>5.1f}")
    return out


def seed_folders(root: Path) -> list[Path]:
    """The assignment folders of a calibration's seeds under ``root`` (``seed0/<assignment>``, ...), in seed order."""
    found = [(int(p.name[4:]), p / ASSIGNMENT) for p in Path(root).glob("seed*")
             if p.name[4:].isdigit() and (p / ASSIGNMENT).is_dir()]
    return [folder for _, folder in sorted(found)]


def measure_seeds(folders: list[Path], tests, part_ids: list[str]) -> dict[str, list[np.ndarray]]:
    """Each part's test probabilities on each seed folder, measured as the grader measures them."""
    probs: dict[str, list[np.ndarray]] = {p: [] for p in part_ids}
    for folder in folders:
        results = measuring.measure(folder, part_ids, tests, timeout=3600, keep_probs=True)
        for p in part_ids:
            if "error" in results[p]:
                raise GradingError(f"{folder.parent.name}, {p}: {results[p]['error']}")
            probs[p].append(results[p]["probs"])
    return probs


def write(rows: list[dict], root: Path, spec: str, n_seeds: int) -> Path:
    """``root/gains.json``. Pairs of parts not in ``rows`` are kept from an earlier report of the same
    dataset and seeds (a calibration of some parts leaves the other parts' seed folders as they were)."""
    path = Path(root) / "gains.json"
    kept = []
    try:
        earlier = json.loads(path.read_text())
        if earlier.get("dataset") == spec and earlier.get("seeds") == n_seeds:
            new_parts = {r["part"] for r in rows}
            kept = [r for r in earlier.get("pairs", []) if r.get("part") not in new_parts]
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    order = {p.id: i for i, p in enumerate(PARTS)}
    pairs = sorted(kept + rows, key=lambda r: order.get(r.get("part"), len(order)))
    made = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit()}
    path.write_text(json.dumps({"dataset": spec, "seeds": n_seeds, "made": made, "pairs": pairs}, indent=1) + "\n")
    return path


def _commit() -> str | None:
    """The project's git commit (with '+changes' when its tree differs from it), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def run(data_spec: str, out: Path) -> int:
    """Measure the seed folders of an earlier calibration on ``data_spec`` (in ``out``) and report."""
    from autograder.reference import slug
    from genrekit import data
    ds = data.open_dataset(data_spec)
    root = (Path(out) / slug(ds.spec)).resolve()
    folders = seed_folders(root)
    if not folders:
        raise GradingError(f"no calibration seed folders in {root}: run make calibrate DATA={data_spec} first")
    part_ids = [p.id for p in PARTS]
    tests = measuring.test_set(data_spec, workdir=root)
    try:
        probs = measure_seeds(folders, tests, part_ids)
    finally:
        shutil.rmtree(tests.request_dir, ignore_errors=True)
    rows = report(probs, tests.labels)
    print("\n".join(lines(rows, len(folders))))
    print(f"wrote {write(rows, root, ds.spec, len(folders))}")
    return 0
