"""Gradescope's ``results.json`` from one graded submission, and ``run_autograder``'s entry point.

    python -m autograder.gradescope.results [--root /autograder]

Grades ``ROOT/submission`` (the student's files, as Gradescope unpacks them) with the grader
(sandboxed) into a private folder, then writes ``ROOT/results/results.json``: one test per graded
cell and per accuracy part (name, score, max_score, output, visibility), the total, and the measured
accuracies on the leaderboard. Any failure still writes a results.json that says what went wrong.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

# hidden checks' verdicts are shown once grades are published; visible tests at once
VISIBILITY = "after_published"


def results_json(result, cells, parts) -> dict:
    """The results.json document (Gradescope's autograder specification) of one grade Result."""
    tests = []
    for notebook, gid, pts in cells:
        score = result.scores.get(gid)
        if score is None:
            output = "graded by hand after the deadline"
        else:  # a hidden check the grader judged failed: why
            output = result.checks.get(gid, "")
        part = next((p for p in parts if p.cell == gid), None)
        if part is not None:
            output = str(result.accuracy.get(part.id, {}).get("comment", ""))
        tests.append({"name": f"{notebook}: {gid}", "score": float(score or 0.0), "max_score": float(pts),
                      "output": output[:4000], "visibility": VISIBILITY})
    leaderboard = [{"name": p.title, "value": round(float(result.accuracy[p.id]["accuracy"]), 4), "order": "desc"}
                   for p in parts if "accuracy" in result.accuracy.get(p.id, {})]
    return {"score": float(result.total), "execution_time": int(result.seconds),
            "output": f"status: {result.status}"[:8000], "visibility": VISIBILITY, "stdout_visibility": "hidden",
            "tests": tests, "leaderboard": leaderboard}


def failure_json(reason: str) -> dict:
    return {"score": 0.0, "output": f"The autograder could not grade this submission: {reason}"[:8000],
            "visibility": "visible", "tests": []}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/autograder"))
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--accuracy-timeout", type=float, default=None,
                        help="seconds for the accuracy measurement (default: --time-factor x the reference's)")
    parser.add_argument("--time-factor", type=float, default=10.0,
                        help="time limits as a multiple of the reference's grading time (autograder/timing.json)")
    parser.add_argument("--cell-timeout", type=int, default=120)
    args = parser.parse_args(argv)
    results_dir = args.root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        from autograder import grade as grading
        with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
            subs = Path(tmp) / "submissions"
            subs.mkdir()
            shutil.copytree(args.root / "submission", subs / "student", symlinks=True)
            results = grading.grade(subs, Path(tmp) / "out", args.data, cell_timeout=args.cell_timeout,
                                    accuracy_timeout=args.accuracy_timeout, progress=False, regrade=True,
                                    time_factor=args.time_factor)
            doc = results_json(results[0], grading.grade_cells(), grading.PARTS)
    except Exception as err:  # a clear result on every failure
        doc = failure_json(str(err).splitlines()[0] if str(err) else type(err).__name__)
    doc.setdefault("execution_time", int(time.perf_counter() - start))
    (results_dir / "results.json").write_text(json.dumps(doc, indent=1))
    print(doc["output"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
