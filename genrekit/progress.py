"""Progress bars: tqdm on stdout (nbgrader scores a test cell 0 if anything reaches stderr)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(iterable=None, **kwargs):
    """``tqdm`` writing to stdout, with a steady width; same arguments as tqdm."""
    kwargs.setdefault("file", sys.stdout)
    kwargs.setdefault("dynamic_ncols", False)
    kwargs.setdefault("ncols", 100)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("mininterval", 0.1 if sys.stdout.isatty() else 2.0)  # logs and notebooks: fewer redraws
    return tqdm(iterable, **kwargs)
