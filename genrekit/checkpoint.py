"""The checkpoint format: weights plus everything needed to rebuild and judge the model.

A checkpoint is a plain dict saved with ``torch.save`` and readable with ``torch.load(weights_only=True)``::

    {"format": "genrekit-checkpoint", "version": 1,
     "model": {"class": "genre.models.BaselineCNN", "kwargs": {...}},   # import path + constructor args
     "state_dict": {...},
     "feature_config": {"sample_rate": 16000, "n_fft": 1024, ...},       # front end it was trained on
     "dataset": "synthetic:default", "seed": 0,
     "metrics": {"accuracy": ..., ...}, "history": {...}, "extra": {...},
     "torch_version": "2.13.0"}

Example::

    from genrekit import checkpoint
    checkpoint.save("checkpoints/part1_baseline.pt", model, model_kwargs={"n_classes": 8},
                    dataset=ds.spec, seed=0, metrics=m)
    model = checkpoint.load_model("checkpoints/part1_baseline.pt")     # rebuilt, weights loaded, eval mode
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import torch

from genrekit import config

FORMAT = "genrekit-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line naming the file and the problem."""


def _plain(value):
    """Convert numpy scalars/arrays and tuples to plain Python so ``weights_only`` loading accepts them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # a Path, an enum...: stored as text so that weights_only loading accepts it


def class_path(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def save(path, model: torch.nn.Module, *, model_kwargs: dict | None = None, feature_config: dict | None = None,
         dataset: str = "", seed: int | None = None, metrics: dict | None = None, history: dict | None = None,
         extra: dict | None = None) -> Path:
    """Write ``model`` and its provenance to ``path`` (parent folders created, atomic replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT, "version": VERSION,
        "model": {"class": class_path(type(model)), "kwargs": _plain(model_kwargs or {})},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "feature_config": _plain(feature_config if feature_config is not None else config.feature_config()),
        "dataset": _plain(dataset), "seed": _plain(seed), "metrics": _plain(metrics or {}),
        "history": _plain(history or {}),
        "extra": _plain(extra or {}), "torch_version": torch.__version__.split("+")[0],
    }
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(payload, tmp)
    try:  # a file that cannot be loaded back must never replace a good one
        torch.load(tmp, map_location="cpu", weights_only=True)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: not saved, it would not load with weights_only=True ({_first_line(err)})") from None
    os.replace(tmp, path)
    return path


def _first_line(err: Exception) -> str:
    """The first line of an exception's message without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:150]}" if text else type(err).__name__


def load(path, feature_config: dict | None = None) -> dict:
    """Read a checkpoint (``weights_only=True``) and check it; returns the dict.

    ``feature_config`` (default ``config.feature_config()``) must equal the stored one; otherwise
    CheckpointError says which keys differ. Pass ``feature_config=False`` to skip that check.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(err)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file (save it with genrekit.checkpoint.save)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')}, expected {VERSION}")
    if feature_config is not False:
        expected = config.feature_config() if feature_config is None else feature_config
        diff = describe_difference(ckpt.get("feature_config", {}), expected)
        if diff:
            raise CheckpointError(f"{path}: made with another feature configuration ({diff})")
    return ckpt


def describe_difference(stored: dict, expected: dict) -> str:
    """'n_mels 128 (checkpoint) != 96 (expected), ...' for the keys that differ; '' when equal."""
    parts = []
    for key in sorted(set(stored) | set(expected)):
        a, b = stored.get(key, "<missing>"), expected.get(key, "<missing>")
        if a != b:
            parts.append(f"{key} {a} (checkpoint) != {b} (expected)")
    return ", ".join(parts)


def import_class(path: str):
    """Import 'package.module.Class' without eval; CheckpointError when it cannot be found."""
    module_name, _, name = path.rpartition(".")
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:
        raise CheckpointError(f"cannot import module '{module_name}' ({type(err).__name__}: {err})") from None
    try:
        return getattr(obj, name)
    except AttributeError:
        raise CheckpointError(f"module '{module_name}' has no class '{name}'") from None


def load_model(path, cls=None, feature_config: dict | None = None, device="cpu"):
    """Rebuild the model of a checkpoint and load its weights (strict); returns it in eval mode.

    ``cls`` overrides the stored class (e.g. the grader passes the student's own class).
    """
    ckpt = load(path, feature_config)
    cls = cls or import_class(ckpt["model"]["class"])
    try:
        model = cls(**ckpt["model"]["kwargs"])
    except Exception as err:
        raise CheckpointError(f"{path}: cannot build {class_path(cls)}(**{ckpt['model']['kwargs']}) "
                              f"({type(err).__name__}: {err})") from None
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise CheckpointError(f"{path}: weights do not fit {class_path(cls)} ({first[:200]})") from None
    return model.to(device).eval()
