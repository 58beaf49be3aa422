"""The student version is exactly what `make release` generates, and carries no solutions or hidden tests."""

import filecmp
import subprocess
import sys

import pytest

from autograder import release
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, SOLUTIONS, GradingError


def test_strip_solutions_keeps_indentation_and_docstrings():
    src = ('def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\n'
           'class A:\n    def g(self):\n        ### BEGIN SOLUTION\n        return 2\n        ### END SOLUTION\n')
    out = release.strip_solutions(src)
    assert out == ('def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n'
                   'class A:\n    def g(self):\n        # YOUR CODE HERE\n        raise NotImplementedError()\n')


@pytest.mark.parametrize("bad, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "1 '### BEGIN SOLUTION' but 0"),
    ("### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS\n", "hidden tests belong in notebooks"),
])
def test_strip_solutions_rejects_broken_markers(bad, message):
    with pytest.raises(GradingError, match=message):
        release.strip_solutions(bad, "genre/x.py")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    return release.generate(release=tmp_path_factory.mktemp("release"))


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_committed_assignment_is_up_to_date(regenerated):
    committed = ASSIGNMENT_DIR / ASSIGNMENT
    assert _files(regenerated) == _files(committed), "assignment/ has other files than `make release` writes"
    differ = [f for f in _files(regenerated) if not filecmp.cmp(regenerated / f, committed / f, shallow=False)]
    assert not differ, f"assignment/ is stale in {differ}: run `make release` and commit it"


def test_nothing_secret_reaches_the_release():
    folder = ASSIGNMENT_DIR / ASSIGNMENT
    names = _files(folder)
    assert not [n for n in names if any(j in n for j in ("__pycache__", "checkpoints/", ".ipynb_checkpoints", ".pt", ".npy"))]
    text = {n: (folder / n).read_text() for n in names}
    for name, content in text.items():
        for secret in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "autograder.checks", "part1.check_"):
            assert secret not in content, f"{name} contains '{secret}'"
    # every solution region of the package is gone from the release
    for py in (SOLUTIONS / ASSIGNMENT).rglob("*.py"):
        source = py.read_text()
        for region in source.split("### BEGIN SOLUTION")[1:]:
            body = region.split("### END SOLUTION")[0].strip()
            assert body not in text[py.relative_to(SOLUTIONS / ASSIGNMENT).as_posix()]


def test_stubs_raise_not_implemented_and_keep_their_contracts():
    code = ("import numpy as np, torch\n"
            "from genre.features import log_mel\nfrom genre.models import ConvBlock, BaselineCNN\n"
            "print(log_mel.__doc__.count('Returns'))\n"
            "for call in (lambda: log_mel(np.zeros(100, np.float32)), lambda: ConvBlock(1, 2), lambda: BaselineCNN()):\n"
            "    try:\n        call()\n    except NotImplementedError:\n        print('stub')\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ASSIGNMENT_DIR / ASSIGNMENT, capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(ASSIGNMENT_DIR / ASSIGNMENT)})
    assert res.returncode == 0, res.stderr[-500:]
    assert res.stdout.split() == ["1", "stub", "stub", "stub"]
