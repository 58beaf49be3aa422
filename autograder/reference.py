"""The main job (``make reference``) and threshold calibration (``make calibrate``).

reference: build the dataset if needed -> execute the solution notebooks with real training -> grade
the result as a submission -> print a table (part, dataset, test accuracy, pass mark, points).
calibrate: execute the reference notebooks over several seeds, measure each checkpoint's accuracy
with the grader's own code, and rewrite that dataset's entry in ``autograder/thresholds.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from autograder import accuracy, thresholds
from autograder.course import ASSIGNMENT, SOLUTIONS, GradingError, nbgrader_env
from autograder.grade import SUBMISSION_JUNK, grade, measure_accuracy

NOTEBOOK_TIMEOUT = 3600  # seconds per cell when training


def copy_solution(dest: Path) -> Path:
    """A clean copy of the reference assignment folder (no checkpoints or caches from earlier runs)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SOLUTIONS / ASSIGNMENT, dest, ignore=shutil.ignore_patterns(*SUBMISSION_JUNK, "checkpoints"))
    return dest


def execute(folder: Path, data_spec: str, seed: int = 0) -> float:
    """Execute every notebook of ``folder`` in place, training for real; returns the seconds it took."""
    start = time.perf_counter()
    env = nbgrader_env({"GENRE_DATASET": data_spec, "GENRE_SEED": str(seed)})
    env.pop("NBGRADER_EXECUTION", None)
    for nb in sorted(folder.glob("*.ipynb")):
        print(f"executing {nb.name} on {data_spec} (seed {seed}) ...", flush=True)
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
               f"--ExecutePreprocessor.timeout={NOTEBOOK_TIMEOUT}", "--ExecutePreprocessor.kernel_name=python3",
               str(nb.resolve())]
        res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            lines = [l.strip() for l in res.stderr.splitlines() if l.strip()]
            errors = [l for l in lines if "Error" in l] or lines
            raise GradingError(f"{nb.name} failed: {errors[-1][:300] if errors else 'exit ' + str(res.returncode)}")
        _show_results(nb)
    return time.perf_counter() - start


def _show_results(nb_path: Path) -> None:
    """Print the lines of the executed notebook that report results (best epoch, test metrics)."""
    import nbformat
    for cell in nbformat.read(nb_path, as_version=4).cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith(("best epoch", "wrote", "{'train'")):
                    print(f"  {line}")


def run(data_spec: str, out: Path) -> int:
    from genrekit import data
    start = time.perf_counter()
    out = out.resolve()
    ds = data.open_dataset(data_spec)
    print(ds)
    submission = copy_solution(out / "submissions" / "reference" / ASSIGNMENT)
    executed = execute(submission, data_spec)
    results = grade(out / "submissions", out / "grades", data_spec, progress=False, regrade=True)
    (result,) = results
    table = thresholds.load()
    print(f"\n{'part':<16}{'dataset':<20}{'test acc':>9}{'pass':>7}{'points':>8}")
    for part, measured in result.accuracy.items():
        limits = thresholds.entry(part, ds.spec, table)
        acc = f"{measured['accuracy']:.3f}" if "accuracy" in measured else "n/a"
        print(f"{part:<16}{ds.spec:<20}{acc:>9}{limits['pass']:>7.2f}{measured.get('points', 0):>5g}/{limits['points']:g}")
    total_max = sum(result.max_scores.values())
    print(f"\nreference total {result.total:g} of {total_max:g} (manually graded answers pending); "
          f"status: {result.status}")
    print(f"notebooks {executed:.0f} s, grading {result.seconds:.0f} s, all {time.perf_counter() - start:.0f} s; "
          f"outputs in {out}")
    manual = [gid for gid, v in result.scores.items() if v is None]
    expected = total_max - sum(result.max_scores[g] for g in manual)
    if result.status != "ok" or result.total < expected:
        print(f"the reference did not get full marks ({result.total:g} of {expected:g} auto-graded)", file=sys.stderr)
        return 1
    return 0


def calibrate(data_spec: str, seeds: int, out: Path) -> int:
    from genrekit import data
    out = out.resolve()
    ds = data.open_dataset(data_spec)
    table = thresholds.load()
    measured: dict[str, list[float]] = {part: [] for part in accuracy.PARTS}
    for seed in range(seeds):
        folder = copy_solution(out / f"seed{seed}" / ASSIGNMENT)
        execute(folder, data_spec, seed)
        for part in accuracy.PARTS:
            m = measure_accuracy(part, folder, data_spec, timeout=3600)
            if "error" in m:
                raise GradingError(f"seed {seed}, {part}: {m['error']}")
            measured[part].append(m["accuracy"])
            print(f"  seed {seed}: {part} test accuracy {m['accuracy']:.3f}")
    for part, accs in measured.items():
        entry = thresholds.from_reference(accs)
        entry["calibrated_on"] = time.strftime("%Y-%m-%d")
        table[part]["datasets"][ds.spec] = entry
        print(f"{part} on {ds.spec}: pass {entry['pass']}, floor {entry['floor']} "
              f"(reference mean {entry['reference']['mean']}, stdev {entry['reference']['stdev']}, {seeds} seeds)")
    thresholds.FILE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {thresholds.FILE}")
    return 0
