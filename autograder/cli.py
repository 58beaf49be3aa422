"""``python -m autograder``: release, grade, reference and calibrate.

    python -m autograder release                       solutions/ -> assignment/
    python -m autograder grade SUBMISSIONS --out DIR [--data SPEC] [--jobs N] [--cell-timeout S] [--no-sandbox]
    python -m autograder reference [--data SPEC] [--out DIR]
    python -m autograder calibrate [--data SPEC] [--seeds N] [--parts PART ...] [--reuse]
    python -m autograder gains [--data SPEC] [--out DIR]    each part's gain over the parts it builds on

Every command exits 0 when it did its job, else non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _release(args) -> int:
    from autograder import release
    out = release.generate()
    print(f"wrote {out}")
    return 0


def _grade(args) -> int:
    from autograder import grade
    from autograder.sandbox import Limits
    limits = Limits(memory_mb=args.memory_mb, processes=args.processes, file_mb=args.file_mb, disk_mb=args.disk_mb,
                    cpu_s=args.cpu_seconds)
    results = grade.grade(args.submissions, args.out, args.data, jobs=args.jobs, cell_timeout=args.cell_timeout,
                          accuracy_timeout=args.accuracy_timeout, regrade=args.regrade, sandbox=not args.no_sandbox,
                          limits=limits, autograde_timeout=args.autograde_timeout, heldout=args.heldout,
                          lanes=args.lanes, time_factor=args.time_factor)
    print(grade_table(results))
    print(f"wrote {args.out / 'grades.csv'}, {args.out / 'gradebook.db'}, {args.out / 'feedback'}/")
    return 0


def grade_table(results) -> str:
    rows = [f"{'student':<20}{'total':>8}{'max':>6}  status"]
    for r in results:
        rows.append(f"{r.student[:19]:<20}{r.total:>8g}{sum(r.max_scores.values()):>6g}  {r.status[:100]}")
    return "\n".join(rows)


def _reference(args) -> int:
    from autograder import reference
    return reference.run(args.data, args.out)


def _calibrate(args) -> int:
    from autograder import reference
    return reference.calibrate(args.data, args.seeds, args.out, args.parts or None, reuse=args.reuse)


def _gains(args) -> int:
    from autograder import gains
    return gains.run(args.data, args.out)


def _timing(args) -> int:
    from autograder import reference
    return reference.record_timing(args.data, args.out, args.runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="regenerate assignment/ from solutions/").set_defaults(run=_release)
    p = sub.add_parser("grade", help="grade a folder (or .zip) of submissions")
    p.add_argument("submissions", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", default="synthetic", help="dataset the accuracy is measured on (default synthetic)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    p.add_argument("--cell-timeout", type=int, default=120, help="seconds per notebook cell")
    p.add_argument("--accuracy-timeout", type=float, default=None,
                   help="seconds for one accuracy measurement (default: --time-factor x the reference's)")
    p.add_argument("--regrade", action="store_true", help="grade again the students already graded in OUT")
    p.add_argument("--autograde-timeout", type=float, default=None,
                   help="seconds for one autograde lane (default: --time-factor x the reference's)")
    p.add_argument("--time-factor", type=float, default=10.0,
                   help="time limits as a multiple of the reference's own grading time (autograder/timing.json)")
    p.add_argument("--lanes", type=int, default=2, help="parallel autograde runs per submission (notebooks split)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run student code without bubblewrap (unsafe; every row says so)")
    p.add_argument("--heldout", action="store_true",
                   help="points from the held-out synthetic test set (autograder/heldout.json)")
    p.add_argument("--memory-mb", type=int, default=4096, help="sandbox: address space per process")
    p.add_argument("--processes", type=int, default=256, help="sandbox: processes and threads")
    p.add_argument("--file-mb", type=int, default=512, help="sandbox: largest file written")
    p.add_argument("--disk-mb", type=int, default=2048, help="sandbox: all files written")
    p.add_argument("--cpu-seconds", type=int, default=3600, help="sandbox: CPU seconds per process")
    p.set_defaults(run=_grade)
    for name, helptext in (("reference", "run the reference solution end to end and grade it"),
                           ("calibrate", "re-run the reference over seeds and rewrite the thresholds"),
                           ("timing", "grade the executed reference a few times and rewrite autograder/timing.json"),
                           ("gains", "measure a calibration's seed folders: each part's gain over the parts it builds on")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--data", default="synthetic")
        p.add_argument("--out", type=Path, default=Path("out") / {"timing": "reference", "gains": "calibrate"}.get(name, name))
        if name == "timing":
            p.add_argument("--runs", type=int, default=3)
        if name == "calibrate":
            p.add_argument("--parts", nargs="*", help="only these parts (their notebooks re-run on the seed "
                                                      "folders an earlier calibration left in OUT)")
            p.add_argument("--seeds", type=int, default=3)
            p.add_argument("--reuse", action="store_true", help="execute nothing: measure the checkpoints of the "
                                                                "seed folders an earlier calibration left in OUT")
        p.set_defaults(run={"reference": _reference, "calibrate": _calibrate, "timing": _timing, "gains": _gains}[name])
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        print(f"autograder {args.command}: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
              file=sys.stderr)
        return 1
