"""Grade a folder of submissions (``make grade SUBMISSIONS=DIR OUT=DIR2``).

Each submission is graded in isolation, in its own nbgrader course folder and database, in
subprocesses with time limits, so one broken submission (a syntax error, an endless loop, a missing
checkpoint, a crash) gets a result row that says so and never stops the batch or touches other
results:

1. ``nbgrader autograde``: the student's notebooks are executed with the instructor's test cells
   (visible and hidden) restored; the student's package is never overwritten by the solutions.
2. Accuracy of every part (:mod:`autograder.parts`), measured by the grader (:mod:`autograder.measure`)
   in one fresh process per submission that gets the test audio only, from the student's checkpoints
   and the student's own code; metrics are computed here from the probabilities it returns and labels
   it never sees. Each part's points (full at the pass mark, linear down to the floor) replace the
   score of that part's accuracy cell in its notebook.
3. ``nbgrader generate_feedback``: per-student HTML feedback (hidden tests appear only as calls).

Outputs in OUT: ``gradebook.db`` (nbgrader's gradebook with every student), ``grades.csv`` (one row
per student: points per test, ``total``, ``max``, measured accuracy, status),
``feedback/<student>/gtzan_genre/`` (HTML and ``summary.txt``), ``submitted/`` and ``autograded/`` (so
that OUT is an nbgrader course folder: formgrader and ``nbgrader export`` work there) and ``work/``
(each submission's own course folder and ``result.json``). Re-running skips students graded before.

A submission is a folder ``SUBMISSIONS/<student_id>/gtzan_genre/`` (or ``SUBMISSIONS/<student_id>/``
holding the notebooks directly); SUBMISSIONS may also be a ``.zip`` of such folders (an LMS export).
"""

from __future__ import annotations

import csv
import functools
import json
import re
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder import measure as measuring
from autograder import thresholds
from autograder.course import ASSIGNMENT, SOLUTIONS, GradingError, run_nbgrader, write_config
from autograder.parts import PARTS
from genrekit.progress import bar

SUBMISSION_JUNK = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store")
# What is copied from a submission into grading; anything else (a copy of genrekit/ or autograder/,
# a sitecustomize.py, datasets) is left out and listed in the feedback, so it can never shadow the grader.
ALLOWED = ("*.ipynb", "genre/*.py", "genre/**/*.py", "checkpoints/*.pt")
MAX_FILE_BYTES = 512 * 2**20
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@dataclass
class Result:
    """The grade of one submission."""
    student: str
    scores: dict = field(default_factory=dict)      # grade_id -> points (None: needs manual grading)
    max_scores: dict = field(default_factory=dict)  # grade_id -> max points
    accuracy: dict = field(default_factory=dict)    # part -> measurement (or {"error": ...})
    problems: list = field(default_factory=list)    # one line each
    ignored: list = field(default_factory=list)     # submitted files left out of grading
    seconds: float = 0.0

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


@functools.lru_cache(maxsize=None)
def student_files(source: Path = SOLUTIONS) -> tuple[str, ...]:
    """Every non-notebook file of the assignment, relative to it: the student's to keep at autograde."""
    base = source / ASSIGNMENT
    return tuple(sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                        if p.is_file() and p.suffix != ".ipynb" and "__pycache__" not in p.parts))


def grading_config(course: Path, cell_timeout: int) -> None:
    """nbgrader_config.py of a grading course folder: the student's package kept, submission junk ignored."""
    write_config(course, cell_timeout=cell_timeout, student_files=student_files(), ignore=list(SUBMISSION_JUNK))


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
    trained_on = measured.get("checkpoint_dataset")
    if trained_on and trained_on != measured["dataset"]:
        comment += f" Note: your checkpoint says it was trained on {trained_on}."
    return pts, comment


def grade_one(student: str, submitted: Path, template: Path, work: Path, tests: measuring.TestSet,
              cell_timeout: int, accuracy_timeout: float, limits: dict) -> Result:
    """Grade one submission in ``work`` (its own course folder); never raises."""
    start = time.perf_counter()
    result = Result(student)
    course = work / "course"
    try:
        if not STUDENT_ID.match(student):
            raise GradingError(f"'{student}' is not a valid student id (letters, digits, _ . @ -)")
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(template, course, ignore=shutil.ignore_patterns("release"))
        grading_config(course, cell_timeout)
        dest = course / "submitted" / student / ASSIGNMENT
        dest.mkdir(parents=True)
        result.ignored = copy_allowed(find_assignment_folder(submitted), dest)
        n_cells = len(grade_cells()) + 8
        autograde_error = None
        try:
            run_nbgrader(course, "autograde", ASSIGNMENT, f"--student={student}", "--force",
                         timeout=cell_timeout * n_cells + 120)
        except GradingError as err:
            autograde_error = str(err)
            result.problems.append(f"autograde: {err}")
        db = course / "gradebook.db"
        measured_all = measuring.measure(dest, [p.id for p in PARTS], tests, accuracy_timeout)
        for part in PARTS:
            measured = measured_all[part.id]
            pts, comment = score_accuracy(measured, limits[part.id], cell_points(part.notebook, part.cell))
            if "error" in measured:
                result.problems.append(f"{part.id}: {measured['error']}")
            measured.update({"points": pts, "comment": comment})
            result.accuracy[part.id] = measured
            if autograde_error is None:
                _set_score(db, student, part.notebook, part.cell, pts, comment)
        if autograde_error is None:
            result.scores, result.max_scores = _scores_from_db(db, student)
            try:
                run_nbgrader(course, "generate_feedback", ASSIGNMENT, f"--student={student}", timeout=300)
            except GradingError as err:
                result.problems.append(f"feedback: {err}")
    except Exception as err:  # a grading problem of this submission, reported in its row
        result.problems.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
    if not result.scores:  # autograde failed: notebook tests 0, accuracy as measured
        result.scores = {gid: 0.0 for _, gid, _ in grade_cells()}
        result.max_scores = {gid: pts for _, gid, pts in grade_cells()}
        for part in PARTS:
            result.scores[part.cell] = float(result.accuracy.get(part.id, {}).get("points", 0.0))
    result.seconds = round(time.perf_counter() - start, 1)
    return result


# --- the batch --------------------------------------------------------------------------------------

def _safe_extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise GradingError(f"{archive}: unsafe path in archive: {member}")
        zf.extractall(target)


def list_submissions(submissions: Path, out: Path) -> list[tuple[str, Path]]:
    """(student id, folder) of every submission; a .zip is extracted into OUT/submissions first."""
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
    unpacked = out / "unpacked"
    for archive in sorted(submissions.glob("*.zip")):  # one archive per student: <id>.zip
        folder = unpacked / archive.stem
        if folder.exists():
            shutil.rmtree(folder)
        try:
            _safe_extract(archive, folder)
        except (GradingError, zipfile.BadZipFile) as err:
            print(f"skipped {archive.name}: {err}")
    found = {p.name: p for p in submissions.iterdir()
             if p.is_dir() and not p.name.startswith((".", "__MACOSX"))}
    if unpacked.is_dir():
        found.update({p.name: p for p in unpacked.iterdir() if p.is_dir()})
    found = sorted(found.items())
    if not found:
        raise GradingError(f"{submissions}: no submission folders in it")
    return found


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
    """Put one student's folders where nbgrader expects them in OUT, and write the summary."""
    work = out / "work" / r.student / "course"
    for kind in ("submitted", "autograded", "feedback"):
        src, dst = work / kind / r.student / ASSIGNMENT, out / kind / r.student / ASSIGNMENT
        if dst.exists():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst)
    dst = out / "feedback" / r.student / ASSIGNMENT
    dst.mkdir(parents=True, exist_ok=True)
    lines = [f"student: {r.student}", f"total: {r.total:g} of {sum(r.max_scores.values()):g}", f"status: {r.status}"]
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


def grade(submissions: Path, out: Path, data_spec: str = "synthetic", jobs: int = 1, cell_timeout: int = 120,
          accuracy_timeout: float = 900, progress: bool = True, regrade: bool = False) -> list[Result]:
    """Grade every submission in ``submissions`` into ``out``; returns the results of all students in OUT.

    OUT is an nbgrader course folder (``source/``, ``submitted/``, ``autograded/``, ``feedback/``,
    ``gradebook.db``, ``nbgrader_config.py``): manual grading with formgrader and ``nbgrader export``
    work there. Each result is saved as soon as its student is graded (``work/<id>/result.json``); a
    re-run skips students already graded (resuming an interrupted batch, adding late submissions)
    unless ``regrade``. An existing gradebook, with any manual grades in it, is kept.
    """
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    limits = dataset_limits(data_spec)
    for part, lim in limits.items():
        if not lim.get("calibrated"):
            print(f"warning: the {part} thresholds for this dataset are estimates, not calibrated "
                  f"(run make calibrate DATA={data_spec})")
    entries = list_submissions(submissions, out)
    done = {e[0] for e in entries if (out / "work" / e[0] / "result.json").is_file()}
    todo = entries if regrade else [e for e in entries if e[0] not in done]
    if len(todo) < len(entries):
        print(f"skipping {len(entries) - len(todo)} students graded before (pass --regrade to grade them again)")
    tests = measuring.test_set(data_spec, workdir=out)
    for line in tests.skipped:
        print(f"warning: test clip left out for every student: {line}")
    template = make_template(out / "template", cell_timeout)
    if not (out / "gradebook.db").is_file():
        shutil.copy2(template / "gradebook.db", out / "gradebook.db")
    grading_config(out, cell_timeout)
    shutil.copytree(template / "source", out / "source", dirs_exist_ok=True)

    def one(entry):
        student, folder = entry
        result = grade_one(student, folder, template, out / "work" / student, tests, cell_timeout,
                           accuracy_timeout, limits)
        (out / "work" / student).mkdir(parents=True, exist_ok=True)
        (out / "work" / student / "result.json").write_text(json.dumps(asdict(result), indent=1))
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            fresh = list(bar(pool.map(one, todo), total=len(todo), desc="grading", disable=not progress, leave=True))
    finally:
        shutil.rmtree(tests.request_dir, ignore_errors=True)
    results = {r.student: r for r in filter(None, (_load_result(p) for p in sorted(out.glob("work/*/result.json"))))}
    results.update({r.student: r for r in fresh})
    merge_gradebook(out / "gradebook.db", fresh)
    for r in fresh:
        _publish(out, r)
    ordered = sorted(results.values(), key=lambda r: r.student)
    write_csv(out / "grades.csv", ordered)
    (out / "results.json").write_text(json.dumps([{**asdict(r), "total": r.total, "status": r.status}
                                                  for r in ordered], indent=1))
    return ordered
