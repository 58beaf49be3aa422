"""Offline augmented training sets: built once by your function, stored as wav files, reused.

Example::

    from genrekit import augcache, cache, data
    from genre.augment import DEFAULT_RECIPE, augment_set
    ds = data.open_dataset()
    train = ds.clips("train")                                   # the train split only
    aug_clips, provenance = augcache.augmented(augment_set, train, DEFAULT_RECIPE, seed=0)   # builds, writes
    aug_clips, provenance = augcache.augmented(augment_set, train, DEFAULT_RECIPE, seed=0)   # near-instant
    feats, labels, kept = cache.features(log_mel, aug_clips)    # features of augmented audio are cached too
    augcache.leaks([c.source for c in aug_clips], [c.id for c in ds.clips("valid")],
                   [c.id for c in ds.clips("test")])            # -> [] (no validation/test clip was augmented)

``build_fn(waves, labels, ids, recipe, seed)`` is called once with the clips' float32 waveforms at
``config.SAMPLE_RATE``, their int64 labels and ids (``clip.id``); it returns a dict of equal-length lists
``waves``, ``labels``, ``sources`` (the id of the clip each item came from) and ``effects`` (text). The
output is validated (one-line :class:`AugmentError` otherwise), then written under
``config.cache_dir()/augmented-<key>/`` in GTZAN layout (``<genre>/<clip stem>.aug<k>.wav``, 16-bit PCM),
with a ``provenance.json`` beside it (recipe, seed, and per item: file, label, source id, effect). An
original returned unchanged is not copied: its entry points to the source file itself, so its features
are shared with the other parts' caches.

The key covers the function (its name and its whole module's source, as the feature cache), the
recipe, the seed, the sample rate and every source file's path, size and modification time: any change
builds a new set, an unchanged call reads ``provenance.json`` only.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrekit import config
from genrekit.cache import function_identity
from genrekit.data import AudioError, Clip, load_audio
from genrekit.progress import bar

FORMAT = "genrekit-augmented"
VERSION = 1
MANIFEST = "provenance.json"
KEYS = ("waves", "labels", "sources", "effects")


class AugmentError(Exception):
    """An augmented set that cannot be used (bad build function output, bad arguments); one-line message."""


@dataclass(frozen=True)
class AugmentedClip(Clip):
    """A clip of the augmented set: a :class:`~genrekit.data.Clip` (a real wav file, so
    ``cache.features`` works on it) plus the id of the clip it came from and the effect applied."""
    source: str
    effect: str


# --- the cache key --------------------------------------------------------------------------------

def _plain(value):
    """JSON-ready copy of a recipe (tuples -> lists, numpy scalars -> numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise AugmentError(f"recipe: {value!r} ({type(value).__name__}) cannot be stored; use numbers, strings, lists, dicts")


def _identity(build_fn, clips: list[Clip], recipe, seed: int) -> dict:
    identity, _ = function_identity(build_fn)
    sources = []
    for clip in clips:
        if not clip.path.is_file():
            raise AudioError(clip.path, "file not found")
        st = clip.path.stat()
        sources.append([clip.id, str(clip.path.resolve()), st.st_size, st.st_mtime_ns])
    return {"format": FORMAT, "version": VERSION, "function": identity["function"],
            "source_sha1": identity["source_sha1"], "params": identity["params"], "recipe": _plain(recipe),
            "seed": seed, "sample_rate": config.SAMPLE_RATE, "sources": sources}


def _min_samples(recipe) -> int:
    """Shortest usable clip: one STFT window, and longer than the largest shift the recipe may draw."""
    shift = recipe.get("shift") if isinstance(recipe, Mapping) else None
    max_shift = shift.get("max_seconds", 0) if isinstance(shift, Mapping) else 0
    max_shift = float(max_shift) if isinstance(max_shift, numbers.Real) else 0.0
    return max(config.N_FFT, int(round(max_shift * config.SAMPLE_RATE)) + 1)


# --- validation of the build function's output ----------------------------------------------------

def _validate(out, clips: list[Clip]) -> list[tuple[np.ndarray, int, str, str]]:
    """(wave float32, label, source id, effect) per item, or a one-line AugmentError."""
    if not isinstance(out, Mapping) or any(k not in out for k in KEYS):
        raise AugmentError(f"the build function must return a dict with keys {', '.join(KEYS)}; got "
                           f"{sorted(out) if isinstance(out, Mapping) else type(out).__name__}")
    columns = {}
    for key in KEYS:
        try:
            columns[key] = list(out[key])
        except TypeError:
            raise AugmentError(f"build function output '{key}': expected a list, got {type(out[key]).__name__}") from None
    sizes = {k: len(v) for k, v in columns.items()}
    if len(set(sizes.values())) != 1 or sizes["waves"] == 0:
        raise AugmentError(f"build function output: 'waves', 'labels', 'sources' and 'effects' must have the same, "
                           f"non-zero length; got {sizes}")
    by_id = {c.id: c for c in clips}
    items = []
    for i, (wave, label, source, effect) in enumerate(zip(*(columns[k] for k in KEYS))):
        where = f"build function output item {i}"
        if not isinstance(source, str) or source not in by_id:
            raise AugmentError(f"{where}: source {source!r} is not the id of one of the {len(clips)} clips given")
        if not isinstance(effect, str) or not effect.strip():
            raise AugmentError(f"{where} (source {source}): effect {effect!r} should be a non-empty string")
        where = f"{where} (source {source}, effect '{effect}')"
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise AugmentError(f"{where}: label {label!r} is not an integer")
        if int(label) != by_id[source].label:
            raise AugmentError(f"{where}: label {int(label)} but its source has label {by_id[source].label}")
        wave = np.asarray(wave)
        if wave.ndim != 1 or wave.size == 0 or not np.issubdtype(wave.dtype, np.floating):
            raise AugmentError(f"{where}: expected a non-empty 1-D float waveform, got shape {wave.shape} {wave.dtype}")
        if not np.all(np.isfinite(wave)):
            raise AugmentError(f"{where}: NaN or infinite samples")
        peak = float(np.max(np.abs(wave)))
        if peak > 1.0 + 1e-6:
            raise AugmentError(f"{where}: samples outside [-1, 1] (peak {peak:.3f}); clip the effect's output")
        items.append((wave.astype(np.float32), int(label), source, effect))
    return items


# --- reading and writing --------------------------------------------------------------------------

def _clips_from(manifest: dict, folder: Path) -> list[AugmentedClip] | None:
    """The clips a manifest lists, or None when a written file has gone missing."""
    out = []
    for item in manifest["items"]:
        if item["file"] is None:
            path, rel = Path(item["source_path"]), item["source"]
        else:
            path, rel = folder / item["file"], item["file"]
            if not path.is_file():
                return None
        out.append(AugmentedClip(path, config.GENRES[item["label"]], item["label"], rel, item["source"], item["effect"]))
    return out


def _write(items, clips: list[Clip], originals: list[np.ndarray], folder: Path, identity: dict,
           progress: bool) -> dict:
    import soundfile as sf  # imported here: keeps `import genrekit` light
    by_id = {c.id: (c, w) for c, w in zip(clips, originals)}
    written, copies, entries = set(), {}, []
    for i, (wave, label, source, effect) in enumerate(bar(items, desc="write augmented set", disable=not progress)):
        clip, original = by_id[source]
        entry = {"file": None, "label": label, "genre": config.GENRES[label], "source": source, "effect": effect}
        if effect == "original" and wave.shape == original.shape and np.array_equal(wave, original):
            entry["source_path"] = str(clip.path.resolve())  # unchanged: the source file itself
        else:
            copies[source] = copies.get(source, 0) + 1
            tag = "orig" if effect == "original" else f"aug{copies[source]}"
            rel = f"{config.GENRES[label]}/{Path(source).stem}.{tag}.wav"
            if rel in written:  # two sources with the same file name in different folders
                rel = f"{config.GENRES[label]}/{Path(source).stem}.{tag}.{i}.wav"
            written.add(rel)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(folder / rel), wave, config.SAMPLE_RATE, subtype="PCM_16")
            entry["file"] = rel
        entries.append(entry)
    manifest = {key: identity[key] for key in ("format", "version", "function", "source_sha1", "params", "recipe",
                                               "seed", "sample_rate")}
    manifest.update({"n_sources": len(clips), "n_items": len(entries), "items": entries})
    return manifest


def augmented(build_fn, clips: list[Clip], recipe: dict, seed: int, *, cache_dir=None, progress: bool = True,
              min_seconds: float | None = None) -> tuple[list[AugmentedClip], dict]:
    """Build the augmented set of ``clips`` with ``build_fn`` once, store it, and return its clips.

    Args:
        build_fn: ``build_fn(waves, labels, ids, recipe, seed) -> dict`` (e.g. ``genre.augment.augment_set``).
        clips: the source clips: the *train* split only (augmenting validation or test clips is leakage).
        recipe: passed to ``build_fn`` unchanged (JSON-like: dicts, lists, numbers, strings); part of the key.
        seed: passed to ``build_fn``; part of the key.
        cache_dir: folder holding the sets (default ``config.cache_dir()``).
        progress: show progress bars (stdout) and a summary line.
        min_seconds: shortest clip accepted (default: one STFT window, and longer than the recipe's
            ``shift.max_seconds`` when it has one).

    Returns:
        (clips of the set in ``build_fn``'s order, as :class:`AugmentedClip`: real wav files with
        ``.source`` and ``.effect``; the provenance dict: function, recipe, seed, sample_rate, n_sources,
        n_items, items [{file, label, genre, source, effect}], folder).
    Raises AudioError naming the clip for a missing, unreadable, silent, NaN or too short source clip;
    AugmentError (one line) for duplicate clip ids, a seed that is not an int, or a bad ``build_fn`` output
    (wrong keys or lengths, unknown source id, label not its source's, non-finite audio or audio outside
    [-1, 1]).
    """
    clips = list(clips)
    if not clips:
        raise AugmentError("clips: no clips given")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise AugmentError(f"seed: expected an int, got {seed!r}")
    ids = [c.id for c in clips]
    if len(set(ids)) != len(ids):
        raise AugmentError("clips: the same clip id appears twice")
    identity = _identity(build_fn, clips, recipe, int(seed))
    key = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(cache_dir) if cache_dir else config.cache_dir()
    folder = base / f"augmented-{key}"

    if (folder / MANIFEST).is_file():
        manifest = json.loads((folder / MANIFEST).read_text())
        found = _clips_from(manifest, folder)
        if found is not None:
            return found, {**manifest, "folder": str(folder)}
        if progress:
            print(f"{folder}: files missing, rebuilding the augmented set")

    start = time.perf_counter()
    shortest = _min_samples(recipe) if min_seconds is None else max(1, int(round(min_seconds * config.SAMPLE_RATE)))
    originals = []
    for clip in bar(clips, desc="load for augmentation", disable=not progress):
        y = load_audio(clip.path)  # AudioError for missing, undecodable, empty, NaN or silent files
        if len(y) < shortest:
            raise AudioError(clip.path, f"too short to augment ({len(y) / config.SAMPLE_RATE:.2f} s, "
                                        f"at least {shortest / config.SAMPLE_RATE:.2f} s needed)")
        originals.append(y)
    labels = np.array([c.label for c in clips], dtype=np.int64)
    out = build_fn([y.copy() for y in originals], labels.copy(), list(ids), recipe, int(seed))
    items = _validate(out, clips)

    tmp = base / f"augmented-{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = _write(items, clips, originals, tmp, identity, progress)
        manifest["seconds_to_build"] = round(time.perf_counter() - start, 3)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if (folder / MANIFEST).is_file():  # another process finished the same set meanwhile: keep theirs
            shutil.rmtree(tmp)
            manifest = json.loads((folder / MANIFEST).read_text())
        else:
            shutil.rmtree(folder, ignore_errors=True)  # a half-written folder left by a crash
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        audio = sum(len(y) for y in originals) / config.SAMPLE_RATE
        seconds = time.perf_counter() - start
        print(f"augmented set: {len(clips)} clips -> {len(items)} items in {seconds:.1f} s "
              f"({audio / max(seconds, 1e-9):.0f}x real time), {folder}")
    return _clips_from(manifest, folder), {**manifest, "folder": str(folder)}


# --- leakage --------------------------------------------------------------------------------------

def _as_id(item) -> str:
    return item.id if isinstance(item, Clip) else str(item)


def leaks(provenance_sources: Iterable, valid_ids: Iterable, test_ids: Iterable = ()) -> list[str]:
    """Ids of validation or test clips that appear among the sources of a training set, sorted.

    ``provenance_sources``: the source id of every training example (e.g. ``[c.source for c in aug_clips]``
    or a checkpoint's stored list); ``valid_ids`` / ``test_ids``: the held-out clips' ids (or Clips).
    An empty list means no leakage.
    """
    held_out = {_as_id(i) for i in valid_ids} | {_as_id(i) for i in test_ids}
    return sorted({_as_id(s) for s in provenance_sources} & held_out)
