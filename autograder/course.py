"""Where things are, and how nbgrader is run for this course (shared by release and grading)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
ASSIGNMENT_DIR = ROOT / "assignment"
ASSIGNMENT = "gtzan_genre"
PACKAGE = "genre"   # the student package inside the assignment folder
# never released, never copied from a submission into grading
JUNK = ["__pycache__", "*.pyc", ".ipynb_checkpoints", "checkpoints", ".cache", "*.tmp", ".DS_Store", "feedback"]


class GradingError(Exception):
    """A problem that stops a command (one-line message)."""


def nbgrader_env(extra: dict | None = None) -> dict:
    """Environment for nbgrader and the kernels it starts: quiet TensorFlow, no warnings, passive OpenMP."""
    env = dict(os.environ)
    # nbgrader runs `alembic` and Jupyter finds kernels through PATH: put this interpreter's bin first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "PYTHONWARNINGS": "ignore",
                "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE")})
    env.update(extra or {})
    return env


def write_config(course_root: Path, *, cell_timeout: int = 120, db: Path | None = None, student_files=(),
                 ignore: list[str] | None = None) -> Path:
    """Write ``nbgrader_config.py`` for a course folder: ML-sized timeouts, the student's package kept."""
    lines = [
        "c = get_config()  # noqa: F821 (provided by traitlets)",
        f"c.CourseDirectory.root = {str(course_root)!r}",
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(db or course_root / 'gradebook.db'))!r}",
        f"c.CourseDirectory.ignore = {(JUNK if ignore is None else ignore)!r}",
        f"c.Execute.timeout = {int(cell_timeout)}",
        "c.Execute.interrupt_on_timeout = True",
        "c.Execute.raise_on_iopub_timeout = False",
        # the student's own package is what is graded: never overwrite it with the instructor's copy
        f"c.Autograde.exclude_overwriting = {{{ASSIGNMENT!r}: {sorted(student_files)!r}}}",
        "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}",
        "c.GenerateFeedback.force = True",
    ]
    path = course_root / "nbgrader_config.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_nbgrader(course_root: Path, *args: str, timeout: float | None = None, env: dict | None = None):
    """Run ``nbgrader ARGS`` in ``course_root``; returns the CompletedProcess (raises GradingError on failure)."""
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    try:
        res = subprocess.run(cmd, cwd=course_root, capture_output=True, text=True, timeout=timeout,
                             env=env or nbgrader_env())
    except subprocess.TimeoutExpired:
        raise GradingError(f"nbgrader {args[0]} took longer than {timeout:.0f} s") from None
    if res.returncode != 0:
        last = [l for l in (res.stderr or res.stdout).splitlines() if l.strip()]
        raise GradingError(f"nbgrader {args[0]} failed: {last[-1] if last else 'exit ' + str(res.returncode)}")
    return res
