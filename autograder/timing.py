"""Time limits that fit the job: derived from the reference's own grading time (``autograder/timing.json``).

``make timing`` grades the executed reference (left by ``make reference``) a few times and records,
per notebook, the seconds its cells took under autograde, and the seconds of the accuracy measurement
and of the feedback, with the machine they were measured on. A student's run may take ``factor``
times the reference (default 10: another machine, slower but honest code) plus a fixed allowance
for start-up (nbgrader, kernels, imports); beyond that it is stopped and its row says so. So one
hostile submission costs minutes, never a quarter of an hour.

Without ``timing.json`` (or for a notebook it does not know) the limits fall back to generous fixed
values. The accuracy limit scales with the test set: more test audio than the reference was timed
on gives proportionally more time.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

FILE = Path(__file__).with_name("timing.json")
FACTOR = 10.0          # a student's run may take this many times the reference's
ALLOWANCE = 60.0       # seconds added to each limit: nbgrader's start, imports, a loaded machine
PER_NOTEBOOK = 15.0    # seconds added per notebook: its kernel's start and stop
FALLBACK_NOTEBOOK = 60.0   # reference seconds assumed for a notebook timing.json does not know
FALLBACK_ACCURACY = 90.0   # reference seconds of the measurement when timing.json is missing


@dataclass(frozen=True)
class Limits:
    """Seconds each phase of grading one submission may take."""
    notebooks: dict          # notebook stem -> reference seconds of its cells under autograde
    accuracy_ref: float      # reference seconds of one accuracy measurement (all parts)
    test_seconds_ref: float  # seconds of test audio that measurement ran on
    feedback_ref: float
    factor: float = FACTOR

    def autograde(self, notebooks) -> float:
        """Limit for an autograde run of these notebooks."""
        ref = sum(self.notebooks.get(nb, FALLBACK_NOTEBOOK) for nb in notebooks)
        return round(self.factor * ref + PER_NOTEBOOK * len(list(notebooks)) + ALLOWANCE)

    def accuracy(self, test_seconds: float) -> float:
        """Limit for one accuracy measurement on ``test_seconds`` of test audio."""
        scale = max(1.0, test_seconds / self.test_seconds_ref) if self.test_seconds_ref > 0 else 1.0
        return round(self.factor * self.accuracy_ref * scale + ALLOWANCE)

    def feedback(self) -> float:
        return round(self.factor * self.feedback_ref + ALLOWANCE)


def load(factor: float = FACTOR, path: Path = FILE) -> Limits:
    """The limits from ``timing.json`` (fixed fallbacks when it is missing or unreadable)."""
    try:
        raw = json.loads(Path(path).read_text())
        return Limits({k: float(v) for k, v in raw["notebooks"].items()}, float(raw["accuracy"]),
                      float(raw["test_seconds"]), float(raw["feedback"]), factor)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Limits({}, FALLBACK_ACCURACY, 0.0, 10.0, factor)


def cell_seconds(notebook: Path) -> float:
    """Seconds between the first cell's start and the last cell's end in an executed notebook
    (the execution times nbclient records in each cell's metadata); 0 when it has none."""
    import nbformat
    from dateutil.parser import isoparse
    stamps = [c.metadata["execution"] for c in nbformat.read(notebook, as_version=4).cells
              if "iopub.execute_input" in c.metadata.get("execution", {})
              and "shell.execute_reply" in c.metadata.get("execution", {})]
    if not stamps:
        return 0.0
    return (isoparse(stamps[-1]["shell.execute_reply"]) - isoparse(stamps[0]["iopub.execute_input"])).total_seconds()


def record(runs: list[dict], test_seconds: float, dataset: str, path: Path = FILE) -> dict:
    """Write ``timing.json`` from grading runs of the reference: each run
    ``{"notebooks": {stem: seconds}, "accuracy": s, "feedback": s}``; the median of each figure."""
    stems = sorted({nb for r in runs for nb in r["notebooks"]})
    table = {
        "notebooks": {nb: round(statistics.median(r["notebooks"][nb] for r in runs if nb in r["notebooks"]), 2)
                      for nb in stems},
        "accuracy": round(statistics.median(r["accuracy"] for r in runs), 2),
        "feedback": round(statistics.median(r["feedback"] for r in runs), 2),
        "test_seconds": round(test_seconds, 1),
        "dataset": dataset,
        "runs": len(runs),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "measured_on": time.strftime("%Y-%m-%d"),
    }
    Path(path).write_text(json.dumps(table, indent=1) + "\n")
    return table
