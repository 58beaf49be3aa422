"""Benchmark the course pipeline: the main job, and grading 1 and 10 submissions.

    python bench/bench_course.py [--copies 10] [--jobs 2]

Rows: wall time of ``python -m autograder reference`` (what ``make reference`` runs once the venv
exists: dataset, notebook with training, grading, table); of grading one submission (the executed
reference), with its notebooks in two parallel autograde lanes (the default) and in one, and where
its time went (autograde, accuracy beside it, feedback); of grading ``--copies`` copies of it with 1 job and with ``--jobs`` jobs, with seconds per
submission and the speed-up of parallel grading; submissions per hour with 1 and ``--jobs`` jobs;
the sandbox's cost per submission (one submission graded with and without bubblewrap); peak memory
of one job (the largest resident set of any process grading started).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.course import ASSIGNMENT, nbgrader_env
from autograder.grade import grade


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        tmp = Path(tmp)
        ref_out = tmp / "reference"
        t_ref, res = timed(lambda: subprocess.run([sys.executable, "-m", "autograder", "reference", "--out", str(ref_out)],
                                                  capture_output=True, text=True, env=nbgrader_env()))
        if res.returncode != 0:
            sys.exit(f"bench: the reference run failed: {res.stderr.strip().splitlines()[-1:]}")
        executed = next(ref_out.glob("*/submissions/reference"))  # out/reference/<dataset>/submissions/reference
        one = tmp / "one"
        shutil.copytree(executed, one / "student000")
        t_one, results = timed(lambda: grade(one, tmp / "grades1", progress=False))
        assert results[0].status == "ok", results[0].status
        t_bare, _ = timed(lambda: grade(one, tmp / "grades1-bare", progress=False, sandbox=False))
        t_one, results = timed(lambda: grade(one, tmp / "grades1-again", progress=False))  # numba cache warm now
        phases = results[0].phases
        t_lane, _ = timed(lambda: grade(one, tmp / "grades1-lane", progress=False, lanes=1))
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        many = tmp / "many"
        for i in range(args.copies):
            shutil.copytree(executed, many / f"student{i:03d}")
        t_serial, _ = timed(lambda: grade(many, tmp / "gradesN1", jobs=1, progress=False))
        t_par, results = timed(lambda: grade(many, tmp / "gradesNj", jobs=args.jobs, progress=False))
        assert all(r.status == "ok" for r in results)
    n = args.copies
    print(f"{'what':<44}{'seconds':>9}{'per submission':>16}")
    print(f"{'make reference (dataset cached, venv ready)':<44}{t_ref:>9.1f}")
    print(f"{'grade 1 submission':<44}{t_one:>9.1f}{t_one:>16.1f}")
    print(f"{'grade 1 submission, notebooks in 1 lane':<44}{t_lane:>9.1f}{t_lane:>16.1f}")
    print(f"{f'grade {n} copies, 1 job':<44}{t_serial:>9.1f}{t_serial / n:>16.1f}")
    print(f"{f'grade {n} copies, {args.jobs} jobs':<44}{t_par:>9.1f}{t_par / n:>16.1f}")
    print(f"one submission: autograde {phases['autograde']:.1f} s (2 lanes), accuracy and hidden checks' probes "
          f"{phases['accuracy']:.1f} s (beside it), feedback {phases['feedback']:.1f} s; "
          f"2 lanes are {t_lane / t_one:.2f}x faster than 1")
    print(f"sandbox cost per submission: {t_one - t_bare:+.1f} s (sandboxed {t_one:.1f} s, unsandboxed {t_bare:.1f} s)")
    print(f"submissions per hour: {3600 * n / t_serial:.0f} with 1 job, {3600 * n / t_par:.0f} with {args.jobs} jobs; "
          f"peak memory of one job {peak_mb:.0f} MB")
    print(f"parallel speed-up {t_serial / t_par:.2f}x with {args.jobs} jobs; "
          f"batch overhead (template) {max(t_one - t_serial / n, 0):.1f} s; "
          f"{n} copies with 1 job cost {t_serial / t_one:.1f}x one submission")


if __name__ == "__main__":
    main()
