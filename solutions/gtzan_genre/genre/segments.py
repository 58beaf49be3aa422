"""Part 2: cut clips into segments, and turn segment predictions back into clip predictions.

A 30 s clip is one training example; cut into 4 s segments it becomes many, each labelled with its
clip's genre. At test time the model scores every segment and the clip's prediction is the mean of the
segments' class probabilities.

Frames and segments (with config.HOP_LENGTH = 512 at 16 kHz, one frame is 32 ms)::

    clip log-mel (mels, frames)           |==================================|
    segment 0                             |--------|
    segment 1 (start = 1 * hop)                |--------|
    segment 2                                       |--------|
    ...                                   the tail after the last whole segment is dropped
"""

from __future__ import annotations

import numpy as np
import torch

from genrekit import config


def segment(S: np.ndarray, seg_frames: int, hop_frames: int) -> np.ndarray:
    """Cut one log-mel spectrogram into fixed-length segments.

    Args:
        S: log-mel of one clip, shape (mels, frames), float32 (dB).
        seg_frames: frames per segment (> 0), e.g. config.seconds_to_frames(4.0) = 125.
        hop_frames: frames between the starts of consecutive segments (> 0); hop < seg_frames overlaps.

    Returns:
        float32 array of shape (n, mels, seg_frames). Segment i is S[:, i * hop_frames : i * hop_frames
        + seg_frames].
        - frames >= seg_frames: n = 1 + (frames - seg_frames) // hop_frames; the tail after the last
          whole segment is dropped (a clip exactly one segment long gives n = 1).
        - frames < seg_frames (a short clip): n = 1, the clip repeated (looped) from its start until it
          fills seg_frames frames, so the model sees music rather than padding.
    Raises ValueError for a non-2-D input, an input with no frames, or seg_frames / hop_frames < 1.
    Hint: np.pad(..., mode="wrap") loops an array; a list of slices stacked with np.stack is fine.
    """
    S = np.asarray(S, dtype=np.float32)
    if S.ndim != 2 or S.shape[1] == 0:
        raise ValueError(f"segment: S must have shape (mels, frames) with frames > 0, got {S.shape}")
    if seg_frames < 1 or hop_frames < 1:
        raise ValueError(f"segment: seg_frames and hop_frames must be >= 1, got {seg_frames} and {hop_frames}")
    ### BEGIN SOLUTION
    frames = S.shape[1]
    if frames < seg_frames:
        return np.pad(S, ((0, 0), (0, seg_frames - frames)), mode="wrap")[None]
    starts = range(0, frames - seg_frames + 1, hop_frames)
    return np.stack([S[:, s:s + seg_frames] for s in starts])
    ### END SOLUTION


def segment_clips(features: list[np.ndarray], seg_frames: int, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment many clips and stack the segments, remembering which clip each came from.

    Args:
        features: list of log-mels, clip i of shape (mels, frames_i); lengths may differ.
        seg_frames, hop_frames: as in :func:`segment`.

    Returns:
        segments: float32 (total, mels, seg_frames), the segments of clip 0 first (in order), then
            those of clip 1, ...; total = sum of the segment counts of the clips.
        clip_index: int64 (total,), clip_index[j] = i when segment j comes from features[i].
    Every clip gives at least one segment (see :func:`segment`), so no clip is ever dropped, and no
    segment spans two clips.
    """
    ### BEGIN SOLUTION
    cut = [segment(f, seg_frames, hop_frames) for f in features]
    clip_index = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(cut)])
    return np.concatenate(cut).astype(np.float32, copy=False), clip_index
    ### END SOLUTION


def clip_probabilities(segment_logits, clip_index, n_clips: int, method: str = "mean") -> np.ndarray:
    """Clip predictions from segment predictions.

    Args:
        segment_logits: (segments, classes) float, the model's logits (not probabilities) per segment.
        clip_index: (segments,) int, the clip of each segment (0 <= index < n_clips), in any order:
            a clip's segments need not be contiguous.
        n_clips: number of clips; every clip has at least one segment.
        method: "mean" (the default, graded): the softmax of each segment's logits, averaged over
            the clip's segments. "vote": each segment votes for its argmax class; a clip's row holds the
            fraction of its segments that voted for each class.

    Returns:
        float64 numpy array (n_clips, classes); every row sums to 1. Row i belongs to clip i.
    Raises ValueError for an unknown method, mismatched lengths, or a clip without segments.
    Why probabilities and not logits: a segment that is confidently wrong has huge logits that can
    outvote every other segment; its probabilities are bounded by 1.
    """
    logits = torch.as_tensor(np.asarray(segment_logits, dtype=np.float64))
    clip_index = np.asarray(clip_index, dtype=np.int64)
    if logits.ndim != 2 or len(clip_index) != len(logits):
        raise ValueError(f"clip_probabilities: logits {tuple(logits.shape)} and clip_index {clip_index.shape} "
                         f"must be (segments, classes) and (segments,)")
    if method not in ("mean", "vote"):
        raise ValueError(f"clip_probabilities: method must be 'mean' or 'vote', got {method!r}")
    counts = np.bincount(clip_index, minlength=n_clips)
    if len(counts) > n_clips or (counts == 0).any():
        raise ValueError(f"clip_probabilities: every clip 0..{n_clips - 1} needs at least one segment")
    ### BEGIN SOLUTION
    if method == "mean":
        per_segment = torch.softmax(logits, dim=1).numpy()
    else:
        per_segment = np.eye(logits.shape[1])[logits.argmax(dim=1).numpy()]
    sums = np.zeros((n_clips, logits.shape[1]))
    np.add.at(sums, clip_index, per_segment)
    return sums / counts[:, None]
    ### END SOLUTION
