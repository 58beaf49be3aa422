"""The main job (``make reference``) and threshold calibration (``make calibrate``).

reference: build the dataset if needed -> execute the solution notebooks with real training -> grade
the result as a submission -> print one row per part (accuracy, macro-F1, pass mark, points,
parameters, notebook seconds). On a dataset without thresholds it measures the parts, prints their
accuracies and how to calibrate, and exits 0. Outputs go to ``OUT/<dataset>/`` so runs on different
datasets never overwrite each other.
calibrate: execute the reference notebooks over several seeds, measure every part's checkpoint with
the grader's own label-blind measurement, and write that dataset's entries in ``thresholds.json``;
then report each part's gain over the parts it builds on (:mod:`autograder.gains`, ``gains.json``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from autograder import measure as measuring
from autograder import gains, thresholds, timing
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, PACKAGE, SOLUTIONS, GradingError, nbgrader_env
from autograder.grade import SUBMISSION_JUNK, cell_points, grade
from autograder.parts import PARTS

NOTEBOOK_TIMEOUT = 3600  # seconds per cell when training


def copy_solution(dest: Path) -> Path:
    """A clean copy of the reference assignment folder (no checkpoints or caches from earlier runs)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SOLUTIONS / ASSIGNMENT, dest, ignore=shutil.ignore_patterns(*SUBMISSION_JUNK, "checkpoints"))
    return dest


def as_submission(executed: Path, dest: Path) -> Path:
    """What a student who wrote the reference would hand in: the released notebooks with the reference's
    written answers typed into their answer cells, the reference package, and the checkpoints the
    executed reference notebooks saved (the solution notebooks themselves carry hidden tests, which
    grading would rightly report as tampered test cells)."""
    import nbformat
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ASSIGNMENT_DIR / ASSIGNMENT, dest, ignore=shutil.ignore_patterns(*SUBMISSION_JUNK))
    shutil.copytree(executed / PACKAGE, dest / PACKAGE, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SUBMISSION_JUNK))
    if (executed / "checkpoints").is_dir():
        shutil.copytree(executed / "checkpoints", dest / "checkpoints", dirs_exist_ok=True)
    for nb_path in sorted(dest.glob("*.ipynb")):
        answers = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
                   for c in nbformat.read(executed / nb_path.name, as_version=4).cells
                   if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "markdown"}
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "markdown" and gid in answers:
                cell.source = answers[gid]
        nbformat.write(nb, nb_path)
    return dest


def execute(folder: Path, data_spec: str, seed: int = 0, env_extra: dict | None = None,
            notebooks: list[str] | None = None) -> dict[str, float]:
    """Execute the notebooks of ``folder`` in order, in place, training for real.

    Returns the seconds each notebook took ({notebook stem: seconds}). ``env_extra`` reaches the
    notebooks' environment (e.g. ``GENRE_QUICK=1`` for the tests' small setting); ``notebooks``
    restricts the run to those stems.
    """
    env = nbgrader_env({"GENRE_DATASET": data_spec, "GENRE_SEED": str(seed), **(env_extra or {})})
    env.pop("NBGRADER_EXECUTION", None)
    seconds = {}
    for nb in sorted(folder.glob("*.ipynb")):
        if notebooks is not None and nb.stem not in notebooks:
            continue
        print(f"executing {nb.name} on {data_spec} (seed {seed}) ...", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
               f"--ExecutePreprocessor.timeout={NOTEBOOK_TIMEOUT}", "--ExecutePreprocessor.kernel_name=python3",
               str(nb.resolve())]
        res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            lines = [l.strip() for l in res.stderr.splitlines() if l.strip()]
            errors = [l for l in lines if "Error" in l] or lines
            raise GradingError(f"{nb.name} failed: {errors[-1][:300] if errors else 'exit ' + str(res.returncode)}")
        seconds[nb.stem] = time.perf_counter() - start
        _show_results(nb)
    return seconds


def notebooks() -> list[str]:
    """The notebooks of the declared parts, in order (a notebook being written but not yet declared is
    not run)."""
    return list(dict.fromkeys(p.notebook for p in PARTS))


def _show_results(nb_path: Path) -> None:
    """Print the lines of the executed notebook that report results (best epoch, test metrics)."""
    import nbformat
    for cell in nbformat.read(nb_path, as_version=4).cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith(("best epoch", "wrote", "{'train'", "part ")):
                    print(f"  {line}")


def slug(spec: str) -> str:
    """A folder name for a dataset spec ('synthetic:default' -> 'synthetic-default')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec).strip("-") or "dataset"


def parameters(folder: Path, part) -> int | None:
    """Trainable parameter count of a part's saved model (from its checkpoint), None if unreadable."""
    import torch
    try:
        state = torch.load(folder / part.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception:
        return None
    return int(sum(v.numel() for k, v in state.items() if v.is_floating_point()
                   and not k.endswith(("running_mean", "running_var")) and not k.split(".")[-1].startswith("_")))


def table_rows(folder: Path, spec: str, accuracy: dict, seconds: dict, table: dict) -> list[str]:
    """The results table: one row per part."""
    rows = [f"{'part':<34}{'test acc':>9}{'macro-F1':>9}{'pass':>7}{'points':>9}{'params':>11}{'seconds':>9}"]
    for part in PARTS:
        m = accuracy.get(part.id, {})
        try:
            lim = thresholds.entry(part.id, spec, table, start=m.get("start_weights"))
            pass_mark = f"{lim['pass']:.3f}" + ("" if lim.get("calibrated") else "*")
        except KeyError:
            pass_mark = "n/a"
        acc = f"{m['accuracy']:.3f}" if "accuracy" in m else "error"
        f1 = f"{m['macro_f1']:.3f}" if "macro_f1" in m else ""
        pts = f"{m['points']:g}/{cell_points(part.notebook, part.cell):g}" if "points" in m else ""
        n_params = parameters(folder, part)
        rows.append(f"{part.title[:33]:<34}{acc:>9}{f1:>9}{pass_mark:>7}{pts:>9}"
                    f"{(f'{n_params:,}' if n_params else ''):>11}{seconds.get(part.notebook, 0):>9.0f}")
        if "error" in m:
            rows.append(f"  {part.id}: {m['error']}")
    return rows


def results_chart(accuracy: dict, spec: str, path: Path) -> Path | None:
    """The test accuracy the grader measured for every part as a bar chart (PNG); None if none was measured."""
    from genrekit import plots
    measured = [(p.title, accuracy[p.id]["accuracy"]) for p in PARTS if "accuracy" in accuracy.get(p.id, {})]
    if not measured:
        return None
    fig = plots.bars([t for t, _ in measured], [a for _, a in measured], path,
                     title=f"reference, test accuracy measured by the grader on {spec}", ylabel="test accuracy")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def run(data_spec: str, out: Path) -> int:
    from genrekit import data
    start = time.perf_counter()
    ds = data.open_dataset(data_spec)
    print(ds)
    out = (out / slug(ds.spec)).resolve()
    table = thresholds.load()
    missing = [p.id for p in PARTS if ds.spec not in table.get(p.id, {}).get("datasets", {})]
    executed = copy_solution(out / "executed" / ASSIGNMENT)
    seconds = execute(executed, data_spec, notebooks=notebooks())
    submission = as_submission(executed, out / "submissions" / "reference" / ASSIGNMENT)
    if missing:  # a user's own dataset: measure, show, and say how to calibrate
        tests = measuring.test_set(data_spec, workdir=out)
        try:
            accuracy = measuring.measure(submission, [p.id for p in PARTS], tests, timeout=3600)
        finally:
            shutil.rmtree(tests.request_dir, ignore_errors=True)
        print("\n" + "\n".join(table_rows(submission, ds.spec, accuracy, seconds, table)))
        print(f"\nno thresholds for {ds.spec} ({', '.join(missing)}): nothing graded. To grade on this dataset, "
              f"run: make calibrate DATA={data_spec}")
        return 0 if all("accuracy" in m for m in accuracy.values()) else 1
    results = grade(out / "submissions", out / "grades", data_spec, progress=False, regrade=True)
    (result,) = results
    print("\n" + "\n".join(table_rows(submission, ds.spec, result.accuracy, seconds, table)))
    if any(not thresholds.entry(p.id, ds.spec, table).get("calibrated") for p in PARTS):
        print("* pass mark not calibrated on this dataset (an estimate): make calibrate DATA=" + data_spec)
    total_max = sum(result.max_scores.values())
    print(f"\nreference total {result.total:g} of {total_max:g} (manually graded answers pending); "
          f"status: {result.status}")
    print(f"notebooks {sum(seconds.values()):.0f} s, grading {result.seconds:.0f} s, "
          f"all {time.perf_counter() - start:.0f} s; outputs in {out}")
    (out / "results.json").write_text(json.dumps({"dataset": ds.spec, "seconds": seconds,
                                                   "accuracy": result.accuracy}, indent=1, default=str))
    chart = results_chart(result.accuracy, ds.spec, out / "results.png")
    if chart:
        print(f"bar chart of every part: {chart}")
    manual = [gid for gid, v in result.scores.items() if v is None]
    expected = total_max - sum(result.max_scores[g] for g in manual)
    if result.status != "ok" or result.total < expected:
        print(f"the reference did not get full marks ({result.total:g} of {expected:g} auto-graded)", file=sys.stderr)
        return 1
    return 0


def record_timing(data_spec: str, out: Path, runs: int = 3) -> int:
    """Grade the reference that ``make reference`` executed ``runs`` times (after one run that warms
    the caches) and write ``autograder/timing.json``: the reference's own grading time, from which
    the grader's time limits are derived (:mod:`autograder.timing`)."""
    from genrekit import data
    from genrekit.config import SAMPLE_RATE
    ds = data.open_dataset(data_spec)
    folder = (out / slug(ds.spec)).resolve()
    submissions = folder / "submissions"
    if not (submissions / "reference" / ASSIGNMENT).is_dir():
        raise GradingError(f"{submissions}: no executed reference; run make reference DATA={data_spec} first")
    measured = []
    for run in range(runs + 1):
        (result,) = grade(submissions, folder / "timing", data_spec, progress=False, regrade=True,
                          time_factor=1e6)  # no limit from an earlier timing.json
        if result.status != "ok":
            raise GradingError(f"grading the reference failed: {result.status}")
        autograded = folder / "timing" / "autograded" / "reference" / ASSIGNMENT
        figures = {"notebooks": {nb.stem: timing.cell_seconds(nb) for nb in sorted(autograded.glob("*.ipynb"))},
                   "accuracy": result.phases["accuracy"], "feedback": result.phases["feedback"]}
        print(f"  run {run}{' (warm-up, not counted)' if run == 0 else ''}: grading {result.seconds:.1f} s, "
              f"phases {result.phases}")
        if run:
            measured.append(figures)
    tests = measuring.test_set(data_spec, workdir=folder)
    shutil.rmtree(tests.request_dir, ignore_errors=True)
    table = timing.record(measured, float(tests.lengths.sum()) / SAMPLE_RATE, ds.spec)
    print(f"wrote {timing.FILE}: notebooks {table['notebooks']}, accuracy {table['accuracy']} s, "
          f"feedback {table['feedback']} s")
    return 0


QUICK_ENV = {"GENRE_SWEEP": "0"}  # calibration needs the checkpoints, not part 2's segment-length sweep


def _execute_seed(folder: Path, data_spec: str, seed: int, chosen: list, only_chosen: bool) -> Path:
    """One calibration seed folder, executed: with ``only_chosen`` and the earlier parts' checkpoints
    already in ``folder``, only the chosen parts' notebooks (as they are now in solutions/) run again;
    otherwise a fresh copy of the solution runs every notebook. Returns the folder."""
    earlier = [p for p in PARTS if p not in chosen and PARTS.index(p) < PARTS.index(chosen[0])]
    if only_chosen and all((folder / p.checkpoint).is_file() for p in earlier):
        for part in chosen:
            shutil.copy2(SOLUTIONS / ASSIGNMENT / f"{part.notebook}.ipynb", folder)
            (folder / part.checkpoint).unlink(missing_ok=True)
        shutil.copytree(SOLUTIONS / ASSIGNMENT / "genre", folder / "genre", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*SUBMISSION_JUNK))
        execute(folder, data_spec, seed, env_extra=QUICK_ENV, notebooks=list(dict.fromkeys(p.notebook for p in chosen)))
        return folder
    folder = copy_solution(folder)
    execute(folder, data_spec, seed, env_extra=QUICK_ENV, notebooks=notebooks())
    return folder


def calibrate(data_spec: str, seeds: int, out: Path, part_ids: list[str] | None = None,
              reuse: bool = False) -> int:
    """Execute the reference over ``seeds`` seeds and write the thresholds of ``part_ids`` (default:
    every part) on this dataset. With ``part_ids``, a seed folder left by an earlier calibration in
    OUT keeps its notebooks and checkpoints and only the notebooks of those parts are executed again
    (later parts train on earlier parts' checkpoints); without one, everything is executed.
    ``reuse``: execute nothing; measure the checkpoints the seed folders in OUT already hold (e.g. to
    write every part's thresholds from one run that executed them all); a missing one is an error."""
    from genrekit import data
    ds = data.open_dataset(data_spec)
    out = (out / slug(ds.spec)).resolve()
    table = thresholds.load()
    chosen = [p for p in PARTS if part_ids is None or p.id in part_ids]
    unknown = set(part_ids or ()) - {p.id for p in PARTS}
    if unknown:
        raise GradingError(f"unknown part(s) {', '.join(sorted(unknown))} (have {', '.join(p.id for p in PARTS)})")
    measured: dict[str, list[float]] = {p.id: [] for p in chosen}
    # the chosen parts and the parts they build on are measured (autograder.gains: is each gain shown?)
    measured_ids = [p.id for p in PARTS if p in chosen or any(p.id in c.builds_on for c in chosen)]
    probs: dict[str, list] = {}
    starts: dict[str, str] = {}  # part -> the start weights its checkpoints record (part 5)
    if reuse:  # before anything is computed: every checkpoint to measure must already be there
        missing = [out / f"seed{seed}" / ASSIGNMENT / p.checkpoint for seed in range(seeds)
                   for p in PARTS if p.id in measured_ids]
        missing = [path for path in missing if not path.is_file()]
        if missing:
            raise GradingError(f"--reuse: {missing[0]} is missing: run make calibrate without REUSE first")
    out.mkdir(parents=True, exist_ok=True)
    tests = measuring.test_set(data_spec, workdir=out)
    try:
        for seed in range(seeds):
            folder = out / f"seed{seed}" / ASSIGNMENT
            if not reuse:  # with reuse the folders were checked above and are measured as they are
                folder = _execute_seed(folder, data_spec, seed, chosen, only_chosen=part_ids is not None)
            results = measuring.measure(folder, measured_ids, tests, timeout=3600, keep_probs=True)
            for part_id in measured_ids:
                m = results[part_id]
                if "error" in m:
                    raise GradingError(f"seed {seed}, {part_id}: {m['error']}")
                probs.setdefault(part_id, []).append(m["probs"])
                if part_id in measured:
                    measured[part_id].append(m["accuracy"])
                    starts[part_id] = m.get("start_weights") or ""
                    print(f"  seed {seed}: {part_id} test accuracy {m['accuracy']:.3f}")
    finally:
        shutil.rmtree(tests.request_dir, ignore_errors=True)
    rows = [r for r in gains.report(probs, tests.labels) if r["part"] in measured]
    print("\n".join(gains.lines(rows, seeds)))
    print(f"wrote {gains.write(rows, out, ds.spec, seeds)}")
    for part in chosen:
        entry = thresholds.from_reference(measured[part.id])
        entry["calibrated_on"] = time.strftime("%Y-%m-%d")
        if starts.get(part.id):
            entry["start_weights"] = starts[part.id]
        key = thresholds.key_for(ds.spec, starts.get(part.id))
        table.setdefault(part.id, {"datasets": {}})["datasets"][key] = entry
        print(f"{part.id} on {key}: pass {entry['pass']}, floor {entry['floor']} "
              f"(reference mean {entry['reference']['mean']}, stdev {entry['reference']['stdev']}, {seeds} seeds)")
    thresholds.FILE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {thresholds.FILE}")
    return 0
