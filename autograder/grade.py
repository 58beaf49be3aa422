"""Grade a folder of submissions (``make grade SUBMISSIONS=DIR OUT=DIR2``).

Each submission is graded in isolation, in its own nbgrader course folder and database, in
subprocesses with time limits, so one broken submission (a syntax error, an endless loop, a missing
checkpoint, a crash) gets a result row that says so and never stops the batch or touches other
results:

1. ``nbgrader autograde``: the student's notebooks are executed with the instructor's test cells
   (visible and hidden) restored; the student's package is never overwritten by the solutions. The
   notebooks are split into lanes (parallel nbgrader runs, balanced by the reference's grading time);
   a kernel that dies ends only its notebook (:mod:`autograder.nbexec`), a lane that fails or runs out
   of time costs only its notebooks. Time limits are multiples of the reference's (:mod:`autograder.timing`).
2. Accuracy of every part (:mod:`autograder.parts`), measured by the grader (:mod:`autograder.measure`)
   beside autograde, in one fresh process per submission that gets the test audio only, from the student's checkpoints
   and the student's own code; metrics are computed here from the probabilities it returns and labels
   it never sees. Each part's points (full at the pass mark, linear down to the floor) replace the
   score of that part's accuracy cell in its notebook.
3. ``nbgrader generate_feedback``: per-student HTML feedback (hidden tests appear only as calls).

Outputs in OUT: ``gradebook.db`` (nbgrader's gradebook with every student), ``grades.csv`` (one row
per student: points per test, ``total``, ``max``, measured accuracy, status),
``feedback/<student>/gtzan_genre/`` (HTML and ``summary.txt``), ``submitted/`` and ``autograded/`` (so
that OUT is an nbgrader course folder: formgrader and ``nbgrader export`` work there) and ``work/``
(each submission's ``result.json``; its scratch course folders are removed once its results are
published). Re-running skips students graded before.

A submission is a folder ``SUBMISSIONS/<student_id>/gtzan_genre/`` (or ``SUBMISSIONS/<student_id>/``
holding the notebooks directly); SUBMISSIONS may also be a ``.zip`` of such folders (an LMS export).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import json
import os
import re
import shutil
import stat
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder import measure as measuring
from autograder import sandbox as sandboxing
from autograder import thresholds, timing
from autograder.checks.common import JUDGED_BY_GRADER
from autograder.course import ASSIGNMENT, SOLUTIONS, GradingError, nbgrader_env, run_nbgrader, write_config
from autograder.parts import PARTS
from genrekit.config import SAMPLE_RATE
from genrekit.progress import bar

SUBMISSION_JUNK = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store")
# What is copied from a submission into grading; anything else (a copy of genrekit/ or autograder/,
# a sitecustomize.py, datasets) is left out and listed in the feedback, so it can never shadow the grader.
ALLOWED = ("*.ipynb", "genre/*.py", "genre/**/*.py", "checkpoints/*.pt")
MAX_FILE_BYTES = 512 * 2**20
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
# archives: refused beyond these (a zip bomb costs its own submission, never the batch)
ZIP_MAX_MEMBERS = 5_000
ZIP_MAX_BYTES = 2 * 2**30
ZIP_MAX_RATIO = 200          # uncompressed / compressed size of one member (above 1 MB)
FEEDBACK_OUTPUT_CHARS = 2_000  # of each output of a student's cell kept in the feedback
LANES = 2                # parallel autograde runs per submission (their notebooks split by reference time)
KERNEL_START = 2.0       # seconds a notebook's kernel takes to start and stop (for splitting notebooks)
HELDOUT_SUFFIX = " (held-out set)"  # the dataset name shown for accuracies measured on the held-out set
UNSANDBOXED = "graded WITHOUT sandbox (--no-sandbox): student code ran with the grader's rights"
CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
       'style-src \'unsafe-inline\'">')


@dataclass
class Result:
    """The grade of one submission."""
    student: str
    scores: dict = field(default_factory=dict)      # grade_id -> points (None: needs manual grading)
    max_scores: dict = field(default_factory=dict)  # grade_id -> max points
    accuracy: dict = field(default_factory=dict)    # part -> measurement (or {"error": ...})
    problems: list = field(default_factory=list)    # one line each
    checks: dict = field(default_factory=dict)      # grade_id -> why the grader's hidden check failed
    ignored: list = field(default_factory=list)     # submitted files left out of grading
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)      # phase -> wall seconds (autograde, accuracy, feedback)

    @property
    def total(self) -> float:
        return round(sum(v for v in self.scores.values() if v is not None), 2)

    @property
    def status(self) -> str:
        return "ok" if not self.problems else "; ".join(self.problems)


# --- the course template: assignment generated once per batch --------------------------------------

@functools.lru_cache(maxsize=None)  # the assignment does not change during a batch
def grade_cells(source: Path = SOLUTIONS) -> tuple[tuple[str, str, float], ...]:
    """(notebook, grade_id, points) of every graded cell of the assignment, in notebook order."""
    import nbformat
    cells = []
    for nb_path in sorted((source / ASSIGNMENT).glob("*.ipynb")):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                cells.append((nb_path.stem, meta["grade_id"], float(meta.get("points", 0))))
    return tuple(cells)


HIDDEN_CALL = re.compile(r"\b(part\d+)\.(check_\w+)\(")


@functools.lru_cache(maxsize=None)
def cell_checks(source: Path = SOLUTIONS) -> dict[str, tuple[str, ...]]:
    """grade_id -> the hidden checks its hidden block calls that the grader re-checks outside the
    kernel (those written as probe and verdict, :mod:`autograder.checks.common`), read from the
    source notebooks."""
    import importlib

    import nbformat

    from autograder.checks import common
    found = {}
    for nb_path in sorted((source / ASSIGNMENT).glob("*.ipynb")):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade") or "### BEGIN HIDDEN TESTS" not in cell.source:
                continue
            names = []
            for module, fn in HIDDEN_CALL.findall(cell.source.split("### BEGIN HIDDEN TESTS", 1)[1]):
                importlib.import_module(f"autograder.checks.{module}")
                if f"{module}.{fn}" in common.CHECKS:
                    names.append(f"{module}.{fn}")
            if names:
                found[meta["grade_id"]] = tuple(names)
    return found


def apply_verdicts(result: "Result", verdicts: dict) -> None:
    """The hidden checks are judged by the grader alone: in the autograde kernel their calls do nothing
    (:data:`autograder.checks.common.JUDGED_BY_GRADER`); their probes run on the submitted package and
    their verdicts in the grader's process. A test cell keeps the points the kernel gave it (its own
    lines ran without error) only when the verdict of each check it calls passes; otherwise it scores 0
    and ``result.checks`` says why (shown under the cell in the feedback, and in Gradescope's output)."""
    for gid, names in cell_checks().items():
        failed = [(n, reason) for n in names if (reason := verdicts.get(n, "not checked")) is not None]
        if failed and result.scores.get(gid):  # a cell the kernel already failed shows its own error
            name, reason = failed[0]
            result.checks[gid] = f"{name}: {reason}"
            result.scores[gid] = 0.0


@functools.lru_cache(maxsize=None)
def student_files(source: Path = SOLUTIONS) -> tuple[str, ...]:
    """Every non-notebook file of the assignment, relative to it: the student's to keep at autograde."""
    base = source / ASSIGNMENT
    return tuple(sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                        if p.is_file() and p.suffix != ".ipynb" and "__pycache__" not in p.parts))


def grading_config(course: Path, cell_timeout: int) -> None:
    """nbgrader_config.py of a grading course folder: the student's package kept, submission junk ignored."""
    write_config(course, cell_timeout=cell_timeout, student_files=student_files(), ignore=list(SUBMISSION_JUNK),
                 grading=True)


def make_template(folder: Path, cell_timeout: int) -> Path:
    """A course folder with the assignment's notebooks as source and a gradebook that knows them.

    Only notebooks go into the grading source: nbgrader copies every other source file over the
    submission at autograde, which would replace the student's package with the solutions.
    """
    if folder.exists():
        shutil.rmtree(folder)
    src = folder / "source" / ASSIGNMENT
    src.mkdir(parents=True)
    for nb in sorted((SOLUTIONS / ASSIGNMENT).glob("*.ipynb")):
        shutil.copy2(nb, src / nb.name)
    grading_config(folder, cell_timeout)
    run_nbgrader(folder, "generate_assignment", ASSIGNMENT, "--force", timeout=300)
    return folder


# --- one submission ---------------------------------------------------------------------------------

def find_assignment_folder(student_dir: Path) -> Path:
    """The folder of a submission that holds the notebooks (``gtzan_genre/`` or the student folder)."""
    for candidate in (student_dir / ASSIGNMENT, student_dir):
        if any(candidate.glob("*.ipynb")):
            return candidate
    nested = [p.parent for p in student_dir.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    if nested:
        return sorted(nested, key=lambda p: len(p.parts))[0]
    raise GradingError(f"{student_dir}: no notebook found (expected {student_dir.name}/{ASSIGNMENT}/*.ipynb)")


def copy_allowed(src: Path, dest: Path) -> list[str]:
    """Copy the files of a submission that grading uses (ALLOWED); returns the ones left out."""
    ignored = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if any(part in SUBMISSION_JUNK for part in rel.parts) or path.suffix == ".pyc":
            continue
        if not any(rel.match(pattern) for pattern in ALLOWED) or path.is_symlink() \
                or path.stat().st_size > MAX_FILE_BYTES:
            ignored.append(rel.as_posix())
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / rel)
    return ignored


def _scores_from_db(db: Path, student: str) -> tuple[dict, dict]:
    from nbgrader.api import Gradebook
    scores, max_scores = {}, {}
    with Gradebook(f"sqlite:///{db}") as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                max_scores[grade.name] = grade.max_score
                scores[grade.name] = None if grade.needs_manual_grade else float(grade.score or 0.0)
    return scores, max_scores


def _set_score(db: Path, student: str, notebook: str, grade_id: str, value: float, comment: str = "") -> None:
    from nbgrader.api import Gradebook, MissingEntry
    with Gradebook(f"sqlite:///{db}") as gb:
        grade = gb.find_grade(grade_id, notebook, ASSIGNMENT, student)
        grade.auto_score = value
        grade.manual_score = None
        grade.needs_manual_grade = False
        if comment:
            try:  # nbgrader keeps comments for solution cells only; the summary file carries it otherwise
                gb.find_comment(grade_id, notebook, ASSIGNMENT, student).auto_comment = comment
            except MissingEntry:
                pass
        gb.db.commit()


def cell_points(notebook: str, grade_id: str) -> float:
    """Points of a graded cell of the assignment (KeyError when the notebook has no such cell)."""
    for nb, gid, pts in grade_cells():
        if (nb, gid) == (notebook, grade_id):
            return pts
    raise KeyError(f"{notebook}.ipynb has no graded cell '{grade_id}'")


def score_accuracy(measured: dict, lim: dict, max_points: float) -> tuple[float, str]:
    """Points and the feedback line of one part's measured accuracy."""
    if "error" in measured:
        return 0.0, f"Accuracy not measured: {measured['error']}"
    pts = thresholds.points(measured["accuracy"], lim["pass"], lim["floor"], max_points)
    comment = (f"Test accuracy measured by the grader: {measured['accuracy']:.3f} on {measured['dataset']} "
               f"({measured['n']} clips); pass mark {lim['pass']:.3f}, floor {lim['floor']:.3f}: "
               f"{pts:g} of {max_points:g} points.")
    if measured.get("start_weights"):
        comment += f" Thresholds for finetuning from {measured['start_weights']} weights ({lim.get('key', '')})."
    trained_on = measured.get("checkpoint_dataset")
    if trained_on and trained_on != measured["dataset"].removesuffix(HELDOUT_SUFFIX):
        comment += f" Note: your checkpoint says it was trained on {trained_on}."
    return pts, comment


def refuse_links(folder: Path) -> None:
    """GradingError naming the first symbolic link (or other non-regular file) in a submission."""
    if folder.is_symlink():
        raise GradingError(f"submission refused: its folder {folder.name} is a symbolic link")
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise GradingError(f"submission refused: symbolic link {path.relative_to(folder).as_posix()}")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise GradingError(f"submission refused: special file {path.relative_to(folder).as_posix()}")


def scrub(folder: Path) -> None:
    """After a sandboxed run: remove links and special files the student's code left in its scratch
    copy, and give everything back to the grader, so nothing read later can point outside."""
    if not folder.is_dir():
        return
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                path.unlink()
                continue
            os.lchown(path, 0, 0) if os.geteuid() == 0 else None
            os.chmod(path, 0o755 if stat.S_ISDIR(mode) else 0o644)


def lock_scratch(course: Path) -> None:
    """Inside the sandbox the student's user may pass through the scratch course folder to its
    notebooks, never read the instructor's notebooks or the gradebook, never write what nbgrader writes."""
    os.chmod(course, 0o711)
    for name in ("source", "submitted"):
        if (course / name).exists():
            os.chmod(course / name, 0o700)
    for f in course.iterdir():
        if f.is_file():
            os.chmod(f, 0o600)


BREACHES = (  # what a limit looks like in a cell's error output -> the limit's name in Limits.describe
    (re.compile(r"MemoryError|Unable to allocate|Cannot allocate memory|std::bad_alloc|DefaultCPUAllocator"), "memory"),
    (re.compile(r"File too large|Errno 27"), "file"),
    (re.compile(r"Resource temporarily unavailable|can't start new thread|Errno 11"), "processes"),
    (re.compile(r"No space left on device|Errno 28"), "tmp"),
)


def _cells_with(nb_path: Path):
    import nbformat
    try:
        return nbformat.read(nb_path, as_version=4).cells
    except Exception:
        return []


def cell_problems(autograded: Path, limits: sandboxing.Limits | None) -> list[str]:
    """What a notebook's cells ran into, named with the cell, in one pass over each notebook: limits
    (``limits``: the sandbox's, "memory limit 4 GB exceeded in 1_baseline cell 7") and a kernel that
    ended (os._exit, a crash)."""
    from autograder.nbexec import kernel_deaths
    found = []
    for nb_path in sorted(autograded.glob("*.ipynb")):
        if not nb_path.is_file() or nb_path.is_symlink():
            continue
        cells = _cells_with(nb_path)
        for i, cell in enumerate(cells if limits else ()):
            text = " ".join(f"{o.get('ename', '')} {o.get('evalue', '')} {o.get('text', '')}"[:4000]
                            for o in cell.get("outputs", []) if o.get("output_type") in ("error", "stream"))
            for pattern, kind in BREACHES:
                if pattern.search(text):
                    found.append(f"{limits.describe(kind)} exceeded in {nb_path.stem} cell {i + 1}")
                    break
        found += [f"the kernel ended in {nb_path.stem} cell {i + 1} (os._exit, a crash or a limit): the cells "
                  f"after it did not run" for i in kernel_deaths(cells)]
    return found


def tampering(submitted: Path) -> list[str]:
    """What a submitted notebook changed in the assignment's graded and locked cells (nbgrader restores
    them from the source at autograde; the row says what was found)."""
    import nbformat
    found = []
    from autograder.course import ASSIGNMENT_DIR
    for src_path in sorted((ASSIGNMENT_DIR / ASSIGNMENT).glob("*.ipynb")):  # the released cells
        expected = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(src_path, as_version=4).cells
                    if c.metadata.get("nbgrader", {}).get("locked") or c.metadata.get("nbgrader", {}).get("grade")}
        cells = _cells_with(submitted / src_path.name) if (submitted / src_path.name).is_file() else None
        if cells is None:
            found.append(f"{src_path.stem}: notebook missing")
            continue
        seen: dict[str, int] = {}
        for cell in cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            gid = meta.get("grade_id")
            if gid not in expected:
                if meta.get("grade") and gid:
                    found.append(f"{src_path.stem}: unknown graded cell '{str(gid)[:40]}'")
                continue
            seen[gid] = seen.get(gid, 0) + 1
            ref = expected[gid].metadata["nbgrader"]
            if meta.get("grade") and float(meta.get("points") or 0) != float(ref.get("points") or 0):
                found.append(f"{src_path.stem}: points of '{gid}' changed")
            if ref.get("grade") and not ref.get("solution") \
                    and cell.get("source", "").strip() != expected[gid].source.strip():
                found.append(f"{src_path.stem}: test cell '{gid}' edited")
        for gid, cell in expected.items():
            if cell.metadata["nbgrader"].get("grade") and seen.get(gid, 0) == 0:
                found.append(f"{src_path.stem}: test cell '{gid}' deleted")
            elif seen.get(gid, 0) > 1:
                found.append(f"{src_path.stem}: cell '{gid}' duplicated")
    return found


def _plain_output(output: dict) -> dict:
    """One cell output as escaped-safe plain text, truncated: no HTML, script, SVG or widget survives."""
    import nbformat
    kind = output.get("output_type")
    if kind == "stream":
        text = str(output.get("text", ""))
    elif kind == "error":
        text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
    else:
        data = output.get("data", {})
        if "image/png" in data and isinstance(data["image/png"], str) and len(data["image/png"]) < 2_000_000:
            return nbformat.v4.new_output("display_data", data={"image/png": data["image/png"]})
        text = str(data.get("text/plain", ""))
    if len(text) > FEEDBACK_OUTPUT_CHARS:
        text = text[:FEEDBACK_OUTPUT_CHARS] + f"\n... ({len(text) - FEEDBACK_OUTPUT_CHARS} more characters cut)"
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def sanitize_for_feedback(autograded: Path, checks: dict | None = None) -> None:
    """Rewrite the autograded notebooks the feedback is made from: outputs as truncated plain text
    (or PNG images), the student's own markdown escaped, no attachments, no raw cells. ``checks``
    (grade_id -> why the grader's hidden check failed) adds that line under its test cell."""
    import nbformat
    for nb_path in sorted(autograded.glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            cell.pop("attachments", None)
            if cell.cell_type == "code":
                cell.outputs = [_plain_output(o) for o in cell.get("outputs", [])][:20]
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                if checks and gid in checks:
                    cell.outputs.append(nbformat.v4.new_output(
                        "stream", name="stdout", text=f"Hidden check failed (run by the grader): {checks[gid]}\n"))
            elif cell.cell_type == "raw":
                cell.source = html.escape(cell.source)
            elif cell.cell_type == "markdown" and not cell.metadata.get("nbgrader", {}).get("locked"):
                cell.source = html.escape(cell.source).replace("javascript:", "javascript&#58;")
        nbformat.write(nb, nb_path)


def protect_feedback(folder: Path) -> None:
    """Every feedback page forbids scripts (Content-Security-Policy), whatever it contains."""
    for page in folder.rglob("*.html"):
        text = page.read_text(errors="replace")
        page.write_text(text.replace("<head>", "<head>\n" + CSP, 1) if "<head>" in text else CSP + text)


@dataclass
class Lane:
    """One ``nbgrader autograde`` run over some of a submission's notebooks, in its own course folder."""
    course: Path
    notebooks: list
    error: str | None = None
    seconds: float = 0.0


def notebook_lanes(notebooks, lanes: int, times: timing.Limits) -> list[list[str]]:
    """The submitted notebooks split into at most ``lanes`` groups of about equal reference grading
    time (longest first, each to the least loaded group), each group in notebook order."""
    loads = [[0.0, []] for _ in range(max(1, lanes))]
    cost = {nb: times.notebooks.get(nb, timing.FALLBACK_NOTEBOOK) + KERNEL_START for nb in notebooks}
    for nb in sorted(notebooks, key=lambda nb: -cost[nb]):
        lane = min(loads, key=lambda entry: entry[0])
        lane[0] += cost[nb]
        lane[1].append(nb)
    return [sorted(group) for _, group in loads if group]


def link_view(submission: Path, view: Path, notebooks) -> None:
    """``view``: the submission's files as hard links (no second copy), with only these notebooks."""
    for path in sorted(submission.rglob("*")):
        rel = path.relative_to(submission)
        if path.is_dir() or (path.suffix == ".ipynb" and len(rel.parts) == 1 and path.stem not in notebooks):
            continue
        (view / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, view / rel)
        except OSError:  # another file system
            shutil.copy2(path, view / rel)


def grade_one(student: str, submitted: Path, template: Path, work: Path, tests: measuring.TestSet,
              cell_timeout: int, accuracy_timeout: float | None, limits: dict,
              sandbox: sandboxing.Sandbox | None = None, autograde_timeout: float | None = None,
              heldout: measuring.TestSet | None = None, lanes: int = LANES,
              times: timing.Limits | None = None) -> Result:
    """Grade one submission in ``work``; never raises.

    The submission's files are copied once, into ``work/submission``. Its notebooks are autograded in
    ``lanes`` parallel nbgrader runs (``work/laneN``, each a course folder seeing its notebooks and the
    student's files as hard links), and the accuracy of every part is measured beside them; a lane
    that fails or runs out of time costs only its notebooks. With ``sandbox`` every run of student
    code is in bubblewrap; without, the row says it was graded unsandboxed. ``heldout``: a second,
    never released test set whose accuracy gives the points (the public one is shown beside it).
    Time limits: ``autograde_timeout`` / ``accuracy_timeout`` when given, else from ``times``
    (:mod:`autograder.timing`, multiples of the reference's own grading time)."""
    start = time.perf_counter()
    result = Result(student)
    times = times or timing.load()
    slot = sandbox.acquire() if sandbox else 0
    try:
        if not STUDENT_ID.match(student):
            raise GradingError(f"'{student[:60]}' is not a valid student id (letters, digits, _ . @ -)")
        if isinstance(submitted, Exception):
            raise submitted
        if sandbox is None:
            result.problems.append(UNSANDBOXED)
        refuse_links(submitted)
        if work.exists():
            shutil.rmtree(work)
        dest = work / "submission"
        dest.mkdir(parents=True)
        result.ignored = copy_allowed(find_assignment_folder(submitted), dest)
        result.problems += [f"tampered: {t}" for t in tampering(dest)]
        known = {nb for nb, _, _ in grade_cells()}
        groups = notebook_lanes(sorted(p.stem for p in dest.glob("*.ipynb") if p.stem in known), lanes, times)
        present = {nb for group in groups for nb in group}
        checks = sorted({n for nb, gid, _ in grade_cells() if nb in present for n in cell_checks().get(gid, ())})
        part_ids = [p.id for p in PARTS]
        # accuracy is measured beside autograde (it reads the submitted files, autograde its own copies),
        # in a sandbox user of its own; each lane has one too. The hidden checks' probes run in the
        # same child, first.
        measure_runner = sandbox.runner([], slot=slot + sandboxing.SLOTS, readable=[dest]) if sandbox else None
        acc_limit = accuracy_timeout or times.accuracy(float(tests.lengths.sum()) / SAMPLE_RATE)

        def measure_all():
            t0 = time.perf_counter()
            on_test = measuring.measure(dest, part_ids, tests, acc_limit, runner=measure_runner, checks=checks)
            on_heldout = None if heldout is None else \
                measuring.measure(dest, part_ids, heldout, acc_limit, runner=measure_runner)
            result.phases["accuracy"] = round(time.perf_counter() - t0, 1)
            return on_test, on_heldout

        def autograde(i: int, notebooks: list[str]) -> Lane:
            lane = Lane(work / f"lane{i}", notebooks)
            t0 = time.perf_counter()
            shutil.copytree(template, lane.course, ignore=shutil.ignore_patterns("release"))
            grading_config(lane.course, cell_timeout)
            link_view(dest, lane.course / "submitted" / student / ASSIGNMENT, notebooks)
            runner = None
            if sandbox:
                lock_scratch(lane.course)
                runner = sandbox.runner([lane.course], slot=slot + sandboxing.SLOTS * (2 + i), nbgrader=True)
            limit = autograde_timeout or times.autograde(notebooks)
            try:
                run_nbgrader(lane.course, "autograde", ASSIGNMENT, f"--student={student}", "--force",
                             timeout=limit, runner=runner, env=nbgrader_env({JUDGED_BY_GRADER: "1"}))
            except GradingError as err:
                lane.error = str(err)
            finally:
                scrub(lane.course / "autograded")
                lane.seconds = round(time.perf_counter() - t0, 1)
            return lane

        with ThreadPoolExecutor(max_workers=len(groups) + 1) as pool:
            measuring_job = pool.submit(measure_all)
            done = [job.result() for job in [pool.submit(autograde, i, g) for i, g in enumerate(groups)]]
            measured_all, heldout_all = measuring_job.result()
        verdicts = measured_all.pop("checks", {})
        result.phases["autograde"] = max((lane.seconds for lane in done), default=0.0)
        result.scores = {gid: 0.0 for _, gid, _ in grade_cells()}   # missing notebooks and failed lanes: 0
        result.max_scores = {gid: pts for _, gid, pts in grade_cells()}
        lane_of = {}
        for lane in done:
            autograded = lane.course / "autograded" / student / ASSIGNMENT
            if lane.error:
                result.problems.append(f"autograde of {', '.join(lane.notebooks)}: {lane.error}")
            result.problems += cell_problems(autograded, sandbox.limits if sandbox else None)
            if lane.error is None:
                scores, _ = _scores_from_db(lane.course / "gradebook.db", student)
                mine = {gid for nb, gid, _ in grade_cells() if nb in lane.notebooks}
                result.scores.update({gid: v for gid, v in scores.items() if gid in mine})
                lane_of.update({nb: lane for nb in lane.notebooks})
        apply_verdicts(result, verdicts)
        notebook_of = {gid: nb for nb, gid, _ in grade_cells()}
        for gid in result.checks:
            if notebook_of[gid] in lane_of:
                _set_score(lane_of[notebook_of[gid]].course / "gradebook.db", student, notebook_of[gid], gid, 0.0)
        public_all = None
        if heldout_all is not None:
            public_all, measured_all = measured_all, heldout_all
        for part in PARTS:
            measured = measured_all[part.id]
            lim = limits[part.id]
            if measured.get("start_weights"):  # part 5: the thresholds of the weights its finetuning started from
                lim = thresholds.entry(part.id, lim["key"].split("@")[0], start=measured["start_weights"])
            pts, comment = score_accuracy(measured, lim, cell_points(part.notebook, part.cell))
            if public_all is not None:
                pts, comment = heldout_verdict(measured, public_all[part.id], lim, pts, comment, result)
            if "error" in measured:
                result.problems.append(f"{part.id}: {measured['error']}")
            measured.update({"points": pts, "comment": comment})
            result.accuracy[part.id] = measured
            result.scores[part.cell] = pts
            if part.notebook in lane_of:
                _set_score(lane_of[part.notebook].course / "gradebook.db", student, part.notebook, part.cell, pts, comment)
        t0 = time.perf_counter()

        def feedback(lane: Lane) -> str | None:
            try:
                sanitize_for_feedback(lane.course / "autograded" / student / ASSIGNMENT, result.checks)
                run_nbgrader(lane.course, "generate_feedback", ASSIGNMENT, f"--student={student}",
                             timeout=times.feedback())
                protect_feedback(lane.course / "feedback")
            except GradingError as err:
                return f"feedback: {err}"
            return None

        ok = [lane for lane in done if lane.error is None]
        with ThreadPoolExecutor(max_workers=max(1, len(ok))) as pool:
            result.problems += [p for p in pool.map(feedback, ok) if p]
        result.phases["feedback"] = round(time.perf_counter() - t0, 1)
    except Exception as err:  # a grading problem of this submission, reported in its row
        result.problems.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
    finally:
        if sandbox:
            sandbox.release(slot)
    if not result.scores:  # refused before autograde: notebook tests 0, accuracy as measured
        result.scores = {gid: 0.0 for _, gid, _ in grade_cells()}
        result.max_scores = {gid: pts for _, gid, pts in grade_cells()}
        for part in PARTS:
            result.scores[part.cell] = float(result.accuracy.get(part.id, {}).get("points", 0.0))
    result.seconds = round(time.perf_counter() - start, 1)
    return result


def heldout_verdict(held: dict, public: dict, lim: dict, pts: float, comment: str, result: Result):
    """Points from the held-out set; the public test accuracy beside it; a gap beyond the calibrated
    spread flagged for the instructor."""
    if "accuracy" not in held or "accuracy" not in public:
        return pts, comment
    held["public_accuracy"] = public["accuracy"]
    gap = public["accuracy"] - held["accuracy"]
    spread = float(lim.get("heldout_gap", 0.15))
    comment += f" Public test accuracy {public['accuracy']:.3f} (held-out set {held['accuracy']:.3f})."
    if gap > spread:
        held["flag"] = f"public test accuracy {gap:.2f} above the held-out one (spread {spread:.2f}): trained on the test set?"
        result.problems.append(f"instructor: {held['flag']}")
    return pts, comment


# --- the batch --------------------------------------------------------------------------------------

def _safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip, refusing (GradingError, one line) absolute or escaping members, links, and bombs."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise GradingError(f"{archive.name}: not a readable zip ({err})") from None
    with zf:
        members = zf.infolist()
        if len(members) > ZIP_MAX_MEMBERS:
            raise GradingError(f"{archive.name}: refused, {len(members)} members (limit {ZIP_MAX_MEMBERS})")
        total = 0
        for m in members:
            name = m.filename
            parts = Path(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise GradingError(f"{archive.name}: refused, unsafe path in archive: {name[:100]}")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise GradingError(f"{archive.name}: refused, symbolic link in archive: {name[:100]}")
            total += m.file_size
            if m.file_size > 2**20 and m.file_size > ZIP_MAX_RATIO * max(m.compress_size, 1):
                raise GradingError(f"{archive.name}: refused, {name[:60]} expands {m.file_size // max(m.compress_size, 1)}x "
                                   f"(a zip bomb? limit {ZIP_MAX_RATIO}x)")
        if total > ZIP_MAX_BYTES:
            raise GradingError(f"{archive.name}: refused, {total / 2**30:.1f} GB uncompressed (limit "
                               f"{ZIP_MAX_BYTES / 2**30:g} GB)")
        target.mkdir(parents=True, exist_ok=True)
        for m in members:
            zf.extract(m, target)


def _safe_name(name: str) -> str:
    """A row id for a submission whose name is not a valid student id (never used as a path)."""
    return "invalid-" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:10]


def list_submissions(submissions: Path, out: Path) -> list[tuple[str, Path | GradingError]]:
    """(student id, folder) of every submission; a .zip is extracted into OUT/submissions first.

    A submission that cannot be graded (a name that is not a valid student id, a refused archive, a
    symbolic link) comes back as (id, GradingError): it gets a row saying why, the batch goes on.
    Names are validated before anything is made from them."""
    if submissions.is_file() and submissions.suffix == ".zip":
        target = out / "submissions"
        if target.exists():
            shutil.rmtree(target)
        _safe_extract(submissions, target)
        entries = [p for p in target.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and not any(entries[0].glob("*.ipynb")) and not (entries[0] / ASSIGNMENT).is_dir():
            target = entries[0]  # one wrapping folder around the student folders
        submissions = target
    if not submissions.is_dir():
        raise GradingError(f"{submissions}: no such folder of submissions")
    found: dict[str, Path | GradingError] = {}
    unpacked = out / "unpacked"
    for entry in sorted(submissions.iterdir()):
        name = entry.name
        if name == "__MACOSX" or (name.startswith(".") and entry.suffix != ".zip"):
            continue
        if entry.suffix == ".zip" and entry.is_file() and not entry.is_symlink():
            name = entry.stem
        elif not (entry.is_dir() or entry.is_symlink()):
            continue
        if not STUDENT_ID.match(name):
            found[_safe_name(name)] = GradingError(f"submission refused: '{name[:60]}' is not a valid student id")
            continue
        if entry.is_symlink():
            found[name] = GradingError(f"submission refused: {entry.name} is a symbolic link")
        elif entry.suffix == ".zip":  # one archive per student: <id>.zip
            folder = unpacked / name
            if folder.exists():
                shutil.rmtree(folder)
            try:
                _safe_extract(entry, folder)
                found[name] = folder
            except GradingError as err:
                shutil.rmtree(folder, ignore_errors=True)
                found[name] = err
        elif name not in found:
            found[name] = entry
    if not found:
        raise GradingError(f"{submissions}: no submission folders in it")
    return sorted(found.items())


def dataset_limits(data_spec: str) -> dict:
    """Check the grading dataset and its thresholds before grading anything: part -> threshold entry."""
    from genrekit import data
    ds = data.open_dataset(data_spec)  # DatasetError (one line) for an unknown dataset or split
    if not ds.has("test") or not ds.clips("test"):
        raise GradingError(f"dataset {ds.spec} has no test clips")
    try:
        return {part.id: thresholds.entry(part.id, ds.spec) for part in PARTS}
    except KeyError as err:
        raise GradingError(str(err).strip("'\"")) from None


def merge_gradebook(db: Path, results: list[Result]) -> None:
    """Record every student's scores in the batch gradebook (nbgrader's database)."""
    from nbgrader.api import Gradebook, MissingEntry
    cells = grade_cells()
    with Gradebook(f"sqlite:///{db}") as gb:
        for r in results:
            if not STUDENT_ID.match(r.student):
                continue
            gb.update_or_create_student(r.student)
            gb.update_or_create_submission(ASSIGNMENT, r.student)
            for notebook, gid, _ in cells:
                try:
                    grade = gb.find_grade(gid, notebook, ASSIGNMENT, r.student)
                except MissingEntry:
                    continue
                score = r.scores.get(gid)
                grade.auto_score = score
                grade.needs_manual_grade = score is None
        gb.db.commit()


def write_csv(path: Path, results: list[Result]) -> None:
    cells = grade_cells()
    parts = [p.id for p in PARTS]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student_id"] + [gid for _, gid, _ in cells] + ["total", "max"]
                        + [f"{p}_accuracy" for p in parts] + ["manual_pending", "status"])
        for r in results:
            manual = [gid for _, gid, _ in cells if r.scores.get(gid, 0.0) is None]
            writer.writerow([r.student] + ["" if r.scores.get(gid) is None else f"{r.scores.get(gid, 0.0):g}"
                                           for _, gid, _ in cells]
                            + [f"{r.total:g}", f"{sum(p for _, _, p in cells):g}"]
                            + [f"{r.accuracy.get(p, {}).get('accuracy', ''):.4f}"
                               if "accuracy" in r.accuracy.get(p, {}) else "" for p in parts]
                            + [" ".join(manual), r.status])


def _publish(out: Path, r: Result) -> None:
    """Put one student's folders where nbgrader expects them in OUT (the submission as handed in, the
    autograded notebooks and the feedback of every lane), and write the summary."""
    work = out / "work" / r.student
    lanes = sorted(work.glob("lane*"))
    for kind in ("submitted", "autograded", "feedback"):
        dst = out / kind / r.student / ASSIGNMENT
        if dst.exists():
            shutil.rmtree(dst)
        sources = [work / "submission"] if kind == "submitted" else \
            [lane / kind / r.student / ASSIGNMENT for lane in lanes]
        for i, src in enumerate(sources):
            if not src.is_dir() or src.is_symlink():
                continue
            scrub(src)
            if kind == "feedback" or i > 0:  # feedback pages only; later lanes: their notebooks only
                dst.mkdir(parents=True, exist_ok=True)
                for page in src.glob("*.html" if kind == "feedback" else "*.ipynb"):
                    shutil.copy2(page, dst / page.name)
            else:
                shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    dst = out / "feedback" / r.student / ASSIGNMENT
    dst.mkdir(parents=True, exist_ok=True)
    lines = [f"student: {r.student}", f"total: {r.total:g} of {sum(r.max_scores.values()):g}", f"status: {r.status}"]
    lines += [f"{gid}: hidden check failed: {why}" for gid, why in r.checks.items()]
    lines += [m["comment"] for m in r.accuracy.values() if m.get("comment")]
    if r.ignored:
        lines.append(f"not graded (only notebooks, genre/*.py and checkpoints/*.pt are): {', '.join(r.ignored[:20])}"
                     + (f" and {len(r.ignored) - 20} more" if len(r.ignored) > 20 else ""))
    (dst / "summary.txt").write_text("\n".join(lines) + "\n")


def _load_result(path: Path) -> Result | None:
    try:
        raw = json.loads(path.read_text())
        return Result(**{k: raw[k] for k in Result.__dataclass_fields__ if k in raw})
    except (OSError, ValueError, TypeError):
        return None


def heldout_tests(data_spec: str, private: Path) -> measuring.TestSet | None:
    """The held-out test set of the synthetic dataset, rendered once per batch into a private folder
    from the seed kept in ``autograder/heldout.json`` (never released); None for other datasets."""
    from genrekit import data, synth
    spec_file = Path(__file__).with_name("heldout.json")
    public = data.open_dataset(data_spec)
    if not spec_file.is_file() or public.name not in synth.PRESETS:
        return None
    cfg = json.loads(spec_file.read_text())
    folder = private / "heldout" / public.name
    if not (folder / "splits").is_dir():  # the public set's size and length, other music
        build = {**synth.PRESETS[public.name], **cfg.get("build", {}), "seed": int(cfg["seed"])}
        synth.build(folder, progress=False, **build)
    tests = measuring.test_set(str(folder), workdir=private)
    tests.spec = public.spec + HELDOUT_SUFFIX  # its own name holds the secret seed: never shown
    # provenance audits compare training sources with the clips of the dataset students trained on
    # (the held-out set reuses the same file names for other music)
    tests.held_out_ids = measuring.held_out_ids(data.open_dataset(data_spec))
    return tests


def grade(submissions: Path, out: Path, data_spec: str = "synthetic", jobs: int = 1, cell_timeout: int = 120,
          accuracy_timeout: float | None = None, progress: bool = True, regrade: bool = False, sandbox: bool = True,
          limits: sandboxing.Limits | None = None, autograde_timeout: float | None = None,
          heldout: bool = False, lanes: int = LANES, time_factor: float = timing.FACTOR) -> list[Result]:
    """Grade every submission in ``submissions`` into ``out``; returns the results of all students in OUT.

    OUT is an nbgrader course folder (``source/``, ``submitted/``, ``autograded/``, ``feedback/``,
    ``gradebook.db``, ``nbgrader_config.py``): manual grading with formgrader and ``nbgrader export``
    work there. Each result is saved as soon as its student is graded (``work/<id>/result.json``); a
    re-run skips students already graded (resuming an interrupted batch, adding late submissions)
    unless ``regrade``. An existing gradebook, with any manual grades in it, is kept.

    ``sandbox``: run student code in bubblewrap (refuses to start without it; False only when told
    ``--no-sandbox``, and every row then says so). ``limits``: its resource limits.
    ``autograde_timeout`` / ``accuracy_timeout``: seconds for one autograde lane / one accuracy
    measurement; by default ``time_factor`` times the reference's own (``autograder/timing.json``).
    ``lanes``: parallel autograde runs per submission.
    ``heldout``: points from the held-out synthetic set (``autograder/heldout.json``).
    """
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    if not submissions.exists():  # before any set-up (the dataset may have to be built first)
        raise GradingError(f"{submissions}: no such folder of submissions")
    box = None
    if sandbox:
        try:
            sandboxing.check_available()
        except sandboxing.SandboxError as err:
            raise GradingError(f"{err}; to grade without it (unsafe) pass --no-sandbox") from None
    out.mkdir(parents=True, exist_ok=True)
    limits_by_part = dataset_limits(data_spec)
    for part, lim in limits_by_part.items():
        if not lim.get("calibrated"):
            print(f"warning: the {part} thresholds for this dataset are estimates, not calibrated "
                  f"(run make calibrate DATA={data_spec})")
    entries = list_submissions(submissions, out)
    done = {e[0] for e in entries if (out / "work" / e[0] / "result.json").is_file()}
    todo = entries if regrade else [e for e in entries if e[0] not in done]
    if len(todo) < len(entries):
        print(f"skipping {len(entries) - len(todo)} students graded before (pass --regrade to grade them again)")
    private = out / ".grader"
    private.mkdir(exist_ok=True)
    os.chmod(private, 0o700)
    if sandbox:
        from genrekit import config as gk_config
        cache = gk_config.cache_dir() / "sandbox-numba"
        box = sandboxing.Sandbox(private / "sandbox", limits, numba_cache=cache)
        box.warm_numba()
    tests = measuring.test_set(data_spec, workdir=private)
    for line in tests.skipped:
        print(f"warning: test clip left out for every student: {line}")
    held = heldout_tests(data_spec, private) if heldout else None
    times = timing.load(time_factor)
    template = make_template(out / "template", cell_timeout)
    if not (out / "gradebook.db").is_file():
        shutil.copy2(template / "gradebook.db", out / "gradebook.db")
    grading_config(out, cell_timeout)
    shutil.copytree(template / "source", out / "source", dirs_exist_ok=True)

    def one(entry):
        student, folder = entry
        result = grade_one(student, folder, template, out / "work" / student, tests, cell_timeout,
                           accuracy_timeout, limits_by_part, sandbox=box, autograde_timeout=autograde_timeout,
                           heldout=held, lanes=lanes, times=times)
        work = out / "work" / student
        work.mkdir(parents=True, exist_ok=True)
        try:
            _publish(out, result)
        except OSError as err:  # a full disk, say: this row says so, the batch goes on
            result.problems.append(f"publishing the results failed: {err}")
        for scratch in [*work.glob("lane*"), work / "submission"]:  # published: the scratch copies go
            shutil.rmtree(scratch, ignore_errors=True)
        (work / "result.json").write_text(json.dumps(asdict(result), indent=1))
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, sandboxing.SLOTS))) as pool:
            fresh = list(bar(pool.map(one, todo), total=len(todo), desc="grading", disable=not progress, leave=True))
    finally:
        shutil.rmtree(tests.request_dir, ignore_errors=True)
        if held is not None:
            shutil.rmtree(held.request_dir, ignore_errors=True)
    results = {r.student: r for r in filter(None, (_load_result(p) for p in sorted(out.glob("work/*/result.json"))))}
    results.update({r.student: r for r in fresh})
    merge_gradebook(out / "gradebook.db", fresh)
    ordered = sorted(results.values(), key=lambda r: r.student)
    write_csv(out / "grades.csv", ordered)
    (out / "results.json").write_text(json.dumps([{**asdict(r), "total": r.total, "status": r.status}
                                                  for r in ordered], indent=1))
    return ordered
