"""Feature cache: apply any feature function over clips once, reuse the arrays afterwards.

Example::

    from genrekit import cache, data
    ds = data.open_dataset()
    feats, labels, clips = cache.features(log_mel, ds.clips("train"))     # computes and stores
    feats, labels, clips = cache.features(log_mel, ds.clips("train"))     # near-instant

The key of each cached array is made of
- the function: its module, name and the source of its whole module (editing the function, a helper
  it calls or a constant it reads invalidates its cache),
- its parameters (``params`` and the keywords of a ``functools.partial``),
- ``config.feature_config()`` (sample rate, mel parameters),
- the audio file: resolved path, size and modification time.
So changed code, parameters or audio never reuse stale features. Arrays are stored one ``.npy`` per
clip under ``config.cache_dir()/<function name>-<key>/`` with a ``meta.json`` saying how they were made.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from pathlib import Path

import numpy as np

from genrekit import config
from genrekit.data import AudioError, Clip, load_audio
from genrekit.progress import bar


def _source_of(fn) -> str:
    """The source of the function's whole module (helpers and constants it uses change the key too)."""
    module = inspect.getmodule(fn)
    for obj in (module, fn):
        try:
            return inspect.getsource(obj)
        except (OSError, TypeError):  # defined where no source is kept (e.g. a notebook's __main__)
            continue
    code = getattr(fn, "__code__", None)
    return repr((code.co_code, code.co_consts)) if code else repr(fn)


def function_identity(fn, params: dict | None = None) -> tuple[dict, object]:
    """What identifies a feature function for caching (name, module source hash, parameters including a
    partial's, feature config), and the underlying function."""
    params = dict(params or {})
    while isinstance(fn, functools.partial):
        params = {**fn.keywords, **params}
        if fn.args:
            params["__args__"] = repr(fn.args)
        fn = fn.func
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return {
        "function": name,
        "source_sha1": hashlib.sha1(_source_of(fn).encode()).hexdigest(),
        "params": {k: repr(v) for k, v in sorted(params.items())},
        "feature_config": config.feature_config(),
    }, fn


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


def features(fn, clips: list[Clip], params: dict | None = None, cache_dir=None, skip_bad: bool = False,
             progress: bool = True, desc: str | None = None):
    """Apply ``fn(waveform, **params) -> np.ndarray`` to each clip, caching the results.

    ``waveform`` is float32 mono at ``config.SAMPLE_RATE``, shape (samples,).
    Returns (list of arrays in clip order, labels (clips,) int64, the clips kept).
    A bad clip raises AudioError, or with ``skip_bad=True`` is reported on stdout and left out.
    """
    identity, func = function_identity(fn, params)
    key = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir else config.cache_dir()
    folder = folder / f"{getattr(func, '__name__', 'feature')}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.exists():
        meta.write_text(json.dumps(identity, indent=2, sort_keys=True))

    out, kept = [], []
    for clip in bar(clips, desc=desc or f"features {identity['function'].rsplit('.', 1)[-1]}",
                    disable=not progress):
        try:
            if not clip.path.is_file():
                raise AudioError(clip.path, "file not found")
            target = folder / f"{_file_key(clip.path)}.npy"
            if target.exists():
                arr = np.load(target)
            else:
                arr = np.asarray(fn(load_audio(clip.path), **(params or {})))  # a partial adds its own keywords
                tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, arr)
                os.replace(tmp, target)  # atomic: a crash never leaves a half-written array
        except AudioError as err:
            if not skip_bad:
                raise
            print(f"skipped: {err}")
            continue
        out.append(arr)
        kept.append(clip)
    return out, np.array([c.label for c in kept], dtype=np.int64), kept
