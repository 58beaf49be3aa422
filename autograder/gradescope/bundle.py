"""``make gradescope``: write ``autograder.zip`` for Gradescope's autograder (setup.sh and
run_autograder at its root, the project's grader, toolkit and reference notebooks beside them).

    python -m autograder.gradescope.bundle [--out autograder.zip]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

from autograder.course import ROOT

HERE = Path(__file__).resolve().parent
INCLUDE = ("pyproject.toml", "requirements.txt", "requirements-nodeps.txt", "genrekit", "autograder", "solutions")


def files() -> list[str]:
    """The tracked files the bundle carries (git's view: no caches, checkpoints or local data)."""
    res = subprocess.run(["git", "ls-files", "--", *INCLUDE], cwd=ROOT, capture_output=True, text=True, check=True)
    return [f for f in res.stdout.splitlines() if (ROOT / f).is_file()]


def write(out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("setup.sh", "run_autograder"):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o100755 << 16
            zf.writestr(info, (HERE / name).read_bytes())
        for rel in files():
            zf.write(ROOT / rel, rel)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "autograder.zip")
    args = parser.parse_args(argv)
    print(f"wrote {write(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
