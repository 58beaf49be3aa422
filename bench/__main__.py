"""``make bench``: every benchmark of the project, one after the other (figures printed as tables)."""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("bench_*.py"))
for name in names:
    print(f"\n=== {name} ===", flush=True)
    sys.argv = [str(HERE / f"{name}.py")]  # each benchmark parses its own (default) arguments
    runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
