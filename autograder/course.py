"""Where things are, and how nbgrader is run for this course (shared by release and grading)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
                 ignore: list[str] | None = None, grading: bool = False) -> Path:
    """Write ``nbgrader_config.py`` for a course folder: ML-sized timeouts, the student's package kept.
    ``grading``: notebooks run with :class:`autograder.nbexec.ResilientExecute` (a dead kernel ends
    its notebook only), and a finished kernel is stopped at once."""
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
    if grading:
        lines += ["from autograder.nbexec import autograde_preprocessors",
                  "c.Autograde.autograde_preprocessors = autograde_preprocessors()",
                  "c.Execute.shutdown_kernel = 'immediate'"]
    path = course_root / "nbgrader_config.py"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Finished:
    """What a limited run left: exit code (None when killed at its time limit) and its output's tails."""
    returncode: int | None
    stdout: str | bytes
    stderr: str
    breach: str = ""   # a limit the run was stopped for by the grader's watchdog (e.g. disk)

    @property
    def timed_out(self) -> bool:
        return self.returncode is None and not self.breach


def _tail(handle, limit: int = 65_536, binary: bool = False):
    handle.seek(0, os.SEEK_END)
    handle.seek(max(0, handle.tell() - limit))
    data = handle.read()
    return data if binary else data.decode("utf-8", "replace")


def kill_tree(pid: int) -> None:
    """Kill a process and every process it started (Jupyter kernels run in sessions of their own)."""
    import psutil
    try:
        parent = psutil.Process(pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(family, timeout=10)


OUTPUT_LIMIT = 64 * 2**20  # bytes a run may write to its standard output and error (temporary files)


def run_limited(cmd: list[str], cwd: Path, env: dict, timeout: float | None, *, stdin: Path | None = None,
                stdout_limit: int = 65_536, binary_stdout: bool = False, watchdog=None) -> Finished:
    """Run ``cmd`` with a time limit; on timeout kill its whole process tree. Output goes to temporary
    files (only the last ``stdout_limit`` bytes of standard output and 64 KiB of standard error are
    kept; a run that writes more than OUTPUT_LIMIT is stopped), so a chatty submission cannot exhaust
    memory or disk. ``stdin``: a file given as standard input. ``watchdog``: a function polled every
    second while the run goes on, returning the reason to stop it (a limit exceeded) or None."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            (open(stdin, "rb") if stdin else contextlib.nullcontext(subprocess.DEVNULL)) as inp:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=inp,
                                start_new_session=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        code, breach = None, ""
        while True:
            try:
                code = proc.wait(timeout=1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                pass
            if os.fstat(out.fileno()).st_size + os.fstat(err.fileno()).st_size > OUTPUT_LIMIT:
                breach = f"output limit {OUTPUT_LIMIT // 2**20} MB exceeded"
            elif watchdog is not None:
                breach = watchdog() or ""
            if breach or (deadline is not None and time.monotonic() >= deadline):
                kill_tree(proc.pid)
                proc.wait()
                code = None
                break
        return Finished(code, _tail(out, stdout_limit, binary_stdout), _tail(err), breach)


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def run_nbgrader(course_root: Path, *args: str, timeout: float | None = None, env: dict | None = None,
                 runner=None) -> Finished:
    """Run ``nbgrader ARGS`` in ``course_root``; raises GradingError (one line) on failure or timeout.
    ``runner``: a function like :func:`run_limited` (e.g. one that runs it in the sandbox)."""
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    res = (runner or run_limited)(cmd, course_root, env or nbgrader_env(), timeout)
    if res.breach:
        raise GradingError(f"nbgrader {args[0]} stopped: {res.breach}")
    if res.timed_out:
        raise GradingError(f"nbgrader {args[0]} took longer than {timeout:.0f} s")
    if res.returncode != 0:
        last = [l for l in strip_ansi(res.stderr or res.stdout).splitlines() if l.strip()]
        raise GradingError(f"nbgrader {args[0]} failed: {last[-1][:300] if last else 'exit ' + str(res.returncode)}")
    return res
