"""Generate the student version: ``solutions/`` -> ``assignment/`` (``make release``).

1. nbgrader ``generate_assignment`` on the notebooks: solution regions replaced by stubs, hidden tests
   removed, cells locked and checksummed.
2. Our step for the student package (nbgrader copies ``.py`` files verbatim): every region between
   ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` /
   ``raise NotImplementedError()`` at the same indentation; docstrings and signatures stay.
3. Junk (``__pycache__``, checkpoints, caches) never reaches the release; hidden-test markers in a
   ``.py`` file are an error.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, JUNK, SOLUTIONS, GradingError, run_nbgrader, write_config

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*\n", re.M | re.S)


def strip_solutions(text: str, name: str = "<file>") -> str:
    """Replace each solution region of a Python source with a NotImplementedError stub."""
    if any(marker in text for marker in HIDDEN):
        raise GradingError(f"{name}: hidden tests belong in notebooks, not in .py files")
    if text.count(BEGIN) != text.count(END):
        raise GradingError(f"{name}: {text.count(BEGIN)} '{BEGIN}' but {text.count(END)} '{END}'")
    out = _REGION.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()\n", text)
    if BEGIN in out or END in out:
        raise GradingError(f"{name}: unbalanced or nested solution markers")
    return out


def generate(source: Path = SOLUTIONS, release: Path = ASSIGNMENT_DIR, assignment: str = ASSIGNMENT) -> Path:
    """Regenerate ``release/<assignment>`` from ``source/<assignment>``; returns the folder written."""
    if not (source / assignment).is_dir():
        raise GradingError(f"{source / assignment}: no such assignment folder")
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        course = Path(tmp)
        write_config(course)
        run_nbgrader(course, "generate_assignment", assignment, "--force",
                     f"--CourseDirectory.source_directory={source}",
                     f"--CourseDirectory.release_directory={course / 'release'}", timeout=300)
        built = course / "release" / assignment
        for path in sorted(built.rglob("*.py")):
            path.write_text(strip_solutions(path.read_text(), str(path.relative_to(built))))
        for pattern in JUNK:
            for junk in list(built.rglob(pattern)):
                shutil.rmtree(junk) if junk.is_dir() else junk.unlink()
        target = release / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(built, target)
    return target
