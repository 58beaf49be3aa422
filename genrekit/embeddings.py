"""The musicnn representation of the course: which model, which layer, which patches, and which rows
belong to a log-mel segment. The part 4 notebook and the grader both use this module, so a student's
model is measured on exactly the embeddings it was trained on.

Example::

    from genrekit import cache, data, embeddings
    ds = data.open_dataset()
    rows, labels, clips = cache.features(embeddings.clip_frames, ds.clips("train"))  # computed once, cached
    rows[0].shape                          # (13, 753) for a 15 s clip: one row per 3 s patch, every 1 s

    # the rows of each 4 s segment of part 2 (segments in the order of genre.segments.segment_clips)
    segs, index = segment_clips(log_mels, seg_frames, hop_frames)
    blocks = embeddings.segment_frames(rows, index, seg_frames, hop_frames)   # one (rows_j, 753) per segment
    # what part 4's fusion pools for each segment: all rows of its clip (context "clip") or its own rows
    blocks = embeddings.context_frames(rows, index, seg_frames, hop_frames, context="clip")

Patches and rows (musicnn's own spectrogram: 16 kHz, hop 256 samples = 16 ms)::

    clip                 |==============================|         15 s
    row 0                |--3 s--|                                patch starting at 0 s
    row 1                   |--3 s--|                             starting at 0.992 s (62 frames of 16 ms)
    ...                                                           a tail shorter than a patch is dropped
    a 4 s segment        |----4 s----|       holds rows 0 and 1: the rows whose whole patch lies inside it

A 15 s clip gives 13 rows, a 30 s clip 28; a clip shorter than one patch gives one row (musicnn
repeats its frames to fill the patch). The exact hop is 62 musicnn frames (0.992 s, the nearest whole
number of frames to 1 s): :data:`ROW_HOP_SECONDS` and :data:`PATCH_SPAN_SECONDS` are what the row
times are computed with.

Caching: ``cache.features`` keys its files on this module's source, so any change here (a constant,
the code) computes the embeddings again. The musicnn implementation it expects is written here
(:data:`MUSICNN_IMPLEMENTATION`) for the same reason: a new version of ``genrekit.musicnn`` must be
acknowledged here, which renews the cache.
"""

from __future__ import annotations

import math

import numpy as np

from genrekit import config, musicnn

MODEL: str = "MSD_musicnn"         # trained on Million Song Dataset tags (MTT_musicnn: MagnaTagATune)
LAYER: str = "max_pool"            # one row per patch: temporal max of the front-end + mid-end features
PATCH_SECONDS: float = 3.0         # patch length: what the musicnn models were trained on
PATCH_HOP_SECONDS: float = 1.0     # a patch starts every second (2 s overlap): 13 rows for a 15 s clip
DIM: int = musicnn.LAYERS[LAYER]   # 753 values per row
MUSICNN_IMPLEMENTATION: str = "torch-1"  # genrekit.musicnn.IMPLEMENTATION these embeddings were made with

PATCH_FRAMES: int = musicnn.frames_per_segment(PATCH_SECONDS)                        # 187 frames of 16 ms
ROW_HOP_FRAMES: int = max(1, int(round(PATCH_HOP_SECONDS * musicnn.SR / musicnn.FFT_HOP)))  # 62 frames
ROW_HOP_SECONDS: float = ROW_HOP_FRAMES * musicnn.FFT_HOP / musicnn.SR    # 0.992 s between row starts
PATCH_SPAN_SECONDS: float = PATCH_FRAMES * musicnn.FFT_HOP / musicnn.SR   # 2.992 s covered by one row
TOLERANCE_SECONDS: float = 0.5 * musicnn.FFT_HOP / musicnn.SR             # half a musicnn frame (8 ms)
# What a segment-level model (part 4's fusion) gets from musicnn for each segment: the rows of its whole
# clip ("clip"), or only the rows whose patches lie inside the segment ("segment"). Checkpoints record it
# in extra["musicnn"]["context"]; one saved without it was trained on "segment" (the earlier contract).
CONTEXTS: tuple[str, ...] = ("clip", "segment")
DEFAULT_CONTEXT: str = "segment"   # what a checkpoint that records no context was trained with


def describe() -> dict:
    """The representation as stored in checkpoints (``extra["musicnn"]``, with the pooling added by the
    notebook): model, layer, patch_seconds, patch_hop_seconds."""
    return {"model": MODEL, "layer": LAYER, "patch_seconds": PATCH_SECONDS, "patch_hop_seconds": PATCH_HOP_SECONDS}


def clip_frames(y, sr: int = config.SAMPLE_RATE) -> np.ndarray:
    """musicnn frame embeddings of one clip: float32 (rows, DIM), one row per 3 s patch every 1 s.

    y: (samples,) float mono audio at ``sr`` Hz (resampled to 16 kHz when needed). rows =
    1 + (frames - 187) // 62 with frames = 1 + samples // 256 at 16 kHz (15 s -> 13, 30 s -> 28), at
    least 1. Raises ``genrekit.musicnn.MusicnnError`` (one line) for empty, silent or NaN audio, or when
    ``genrekit.musicnn`` is not the implementation this module's cached embeddings were made with.
    """
    if musicnn.IMPLEMENTATION != MUSICNN_IMPLEMENTATION:
        raise musicnn.MusicnnError(f"genrekit.musicnn is implementation '{musicnn.IMPLEMENTATION}', genrekit.embeddings "
                                   f"expects '{MUSICNN_IMPLEMENTATION}': update MUSICNN_IMPLEMENTATION (renews the cache)")
    rows = musicnn.embed(y, sr=sr, model=MODEL, layer=LAYER, segment_seconds=PATCH_SECONDS,
                         hop_seconds=PATCH_HOP_SECONDS)
    return np.ascontiguousarray(rows, dtype=np.float32)


def _finite_number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _count(value, name: str) -> int:
    """``value`` as an int >= 1, or ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def segment_rows(n_rows: int, start_seconds: float, seconds: float) -> slice:
    """The rows of a clip's musicnn frames that belong to a segment of its audio.

    Args:
        n_rows: rows of the clip's frames (>= 1), e.g. ``len(clip_frames(y))``.
        start_seconds: where the segment starts in the clip, seconds (>= 0).
        seconds: the segment's length, seconds (> 0).

    Returns:
        ``slice(first, stop)`` with 0 <= first < stop <= n_rows: the rows whose whole patch
        ([r * ROW_HOP_SECONDS, r * ROW_HOP_SECONDS + PATCH_SPAN_SECONDS], within half a musicnn frame)
        lies inside [start_seconds, start_seconds + seconds]. Always at least one row: a segment shorter
        than a patch gets the row whose patch centre is nearest its centre, and rows past the end of the
        clip (a looped short clip, a segment beyond the last patch) are clamped to the last row.
    Raises ValueError (one line naming the argument) for n_rows < 1, a negative or non-finite start, or a
    length that is not > 0.
    """
    n_rows = _count(n_rows, "n_rows")
    start = _finite_number(start_seconds, "start_seconds")
    length = _finite_number(seconds, "seconds")
    if start < 0:
        raise ValueError(f"start_seconds must be >= 0, got {start_seconds!r}")
    if not length > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    first = max(0, math.ceil((start - TOLERANCE_SECONDS) / ROW_HOP_SECONDS))
    last = math.floor((start + length - PATCH_SPAN_SECONDS + TOLERANCE_SECONDS) / ROW_HOP_SECONDS)
    if last < first:  # shorter than a patch: the patch centred nearest the segment's centre
        first = last = max(0, math.floor((start + (length - PATCH_SPAN_SECONDS) / 2) / ROW_HOP_SECONDS + 0.5))
    first, last = min(first, n_rows - 1), min(last, n_rows - 1)
    return slice(first, last + 1)


def segment_frames(frames_per_clip, clip_index, seg_frames: int, hop_frames: int) -> list[np.ndarray]:
    """The musicnn rows of every log-mel segment, in the order of the segments.

    Args:
        frames_per_clip: list of (rows_c, d) arrays, one per clip (``clip_frames`` of each clip), rows_c >= 1.
        clip_index: (segments,) ints, the clip of each segment, as returned by part 2's
            ``segment_clips(features, seg_frames, hop_frames)``: the k-th segment of clip c (k-th
            occurrence of c in clip_index) starts at k * hop_frames * config.HOP_LENGTH /
            config.SAMPLE_RATE seconds and lasts seg_frames * config.HOP_LENGTH / config.SAMPLE_RATE.
        seg_frames, hop_frames: the log-mel segment length and hop, frames (>= 1) of config.HOP_LENGTH.

    Returns:
        a list with one array per segment: the rows of its clip's frames given by :func:`segment_rows`
        (a view, at least one row), e.g. 2 rows of 753 for a 4 s segment. Pool each, e.g. with your
        ``pool_frames``, for one vector per segment.
    Raises ValueError (one line naming the argument) for an index outside 0..clips-1, a clip without rows,
    or seg_frames / hop_frames < 1.
    """
    seg_frames, hop_frames = _count(seg_frames, "seg_frames"), _count(hop_frames, "hop_frames")
    index, rows = _clip_rows(frames_per_clip, clip_index)
    frame_seconds = config.HOP_LENGTH / config.SAMPLE_RATE
    seconds = seg_frames * frame_seconds
    counts = np.zeros(len(rows), dtype=np.int64)
    out = []
    for c in index:
        k = counts[c]
        counts[c] += 1
        out.append(rows[c][segment_rows(len(rows[c]), k * hop_frames * frame_seconds, seconds)])
    return out


def _clip_rows(frames_per_clip, clip_index) -> tuple[list[int], list]:
    """(the segments' clips as a list of ints, the clips' frames with every clip a segment uses checked to
    be a (rows >= 1, d) array); ValueError (one line naming the argument) otherwise."""
    rows = list(frames_per_clip)
    index = np.asarray(clip_index)
    if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
        raise ValueError(f"clip_index must be a 1-D array of integers, got shape {index.shape} ({index.dtype})")
    if index.size and (index.min() < 0 or index.max() >= len(rows)):
        raise ValueError(f"clip_index holds clips outside 0..{len(rows) - 1}")
    index = index.tolist()
    for c in dict.fromkeys(index):
        if np.ndim(rows[c]) != 2 or len(rows[c]) < 1:
            raise ValueError(f"frames_per_clip[{c}] must have shape (rows >= 1, d), got {np.shape(rows[c])}")
        rows[c] = np.asarray(rows[c])
    return index, rows


def context_frames(frames_per_clip, clip_index, seg_frames: int, hop_frames: int, context: str) -> list[np.ndarray]:
    """The musicnn rows each segment's vector is pooled from, in the order of the segments.

    Args:
        frames_per_clip, clip_index, seg_frames, hop_frames: as for :func:`segment_frames`.
        context: one of :data:`CONTEXTS`. ``"clip"``: every segment gets all the rows of its clip (so the
            segments of a clip share one pooled vector: a 4 s segment holds only 2 patches, a 30 s clip
            28, and musicnn's evidence about the genre is much steadier over the whole clip);
            ``"segment"``: the segment's own rows, :func:`segment_frames`.

    Returns:
        a list with one (rows_j >= 1, d) array per segment (views, not copies).
    Raises ValueError (one line naming the argument) for an unknown context, and as :func:`segment_frames`.
    """
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
    if context == "segment":
        return segment_frames(frames_per_clip, clip_index, seg_frames, hop_frames)
    _count(seg_frames, "seg_frames"), _count(hop_frames, "hop_frames")
    index, rows = _clip_rows(frames_per_clip, clip_index)
    return [rows[c] for c in index]


def checkpoint_context(ckpt) -> str:
    """The context a fusion checkpoint (a dict of ``genrekit.checkpoint.load``) was trained with:
    ``extra["musicnn"]["context"]``, :data:`DEFAULT_CONTEXT` when it records none. ValueError (one line)
    for a value not in :data:`CONTEXTS`."""
    info = (ckpt.get("extra") or {}).get("musicnn") if isinstance(ckpt, dict) else None
    context = info.get("context", DEFAULT_CONTEXT) if isinstance(info, dict) else DEFAULT_CONTEXT
    if context not in CONTEXTS:
        raise ValueError(f"extra['musicnn']['context'] is {context!r}, expected one of {', '.join(map(repr, CONTEXTS))}")
    return context
