"""Hidden checks of part 2: segmenting log-mels and aggregating segment predictions to clips.

Each check is aimed at one idea; a wrong answer fails the checks of the function it is in and no other
(``segment_clips`` is checked against the student's own ``segment``, so an off-by-one in ``segment``
costs the ``segment`` cell only).
"""

from __future__ import annotations

import numpy as np

from autograder.checks.common import hidden, plain


def _logmel(mels: int, frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-80, 0, size=(mels, frames)).astype(np.float32)


def _expected_count(frames: int, seg: int, hop: int) -> int:
    return 1 if frames < seg else 1 + (frames - seg) // hop


@hidden
def check_segment_counts(segment) -> None:
    """Counts and content for lengths students have not seen: odd lengths, hops that do not divide."""
    for frames, seg, hop in ((37, 11, 5), (125, 125, 62), (126, 125, 62), (188, 125, 62), (99, 20, 7), (60, 20, 10)):
        S = _logmel(5, frames, frames + seg)
        out = plain(segment(S.copy(), seg, hop))
        n = _expected_count(frames, seg, hop)
        assert out.shape == (n, 5, seg), (f"segment of {frames} frames into {seg}-frame segments every {hop}: "
                                          f"expected shape {(n, 5, seg)}, got {out.shape} (count 1 + (frames - seg) // hop)")
        for i in (0, n - 1):
            assert np.array_equal(out[i], S[:, i * hop:i * hop + seg]), \
                f"segment {i} of {frames} frames should be S[:, {i * hop}:{i * hop + seg}]"


@hidden
def check_segment_short(segment) -> None:
    """A clip shorter than one segment gives one segment: the clip looped from its start."""
    for frames, seg in ((1, 9), (40, 125), (124, 125)):
        S = _logmel(4, frames, frames)
        out = plain(segment(S.copy(), seg, max(1, seg // 2)))
        assert out.shape == (1, 4, seg), (f"a clip of {frames} frames, shorter than a {seg}-frame segment, "
                                          f"should give exactly one segment (shape (1, 4, {seg})), got {out.shape}")
        looped = np.concatenate([S] * (seg // frames + 1), axis=1)[:, :seg]
        assert np.array_equal(out[0], looped), "a short clip should be looped from its start to fill the segment"


@hidden
def check_segment_clips(segment_clips, segment) -> None:
    """Many clips of unequal lengths (one with many segments, one exactly one segment long, one shorter):
    the stacked segments are each clip's own segments in clip order, and the index maps them back."""
    seg, hop = 30, 11
    lengths = (30, 200, 7, 41, 30, 95)
    clips = [_logmel(6, n, 100 + i) for i, n in enumerate(lengths)]
    segs, index = segment_clips([c.copy() for c in clips], seg, hop)
    segs, index = plain(segs, np.float32), plain(index)
    assert np.issubdtype(index.dtype, np.integer), f"the clip index should hold integers, got {index.dtype}"
    per_clip = [plain(segment(c.copy(), seg, hop), np.float32) for c in clips]
    assert set(index.tolist()) == set(range(len(clips))), \
        f"every clip should give at least one segment; clips {sorted(set(range(len(clips))) - set(index.tolist()))} have none"
    expected_index = np.concatenate([np.full(len(p), i) for i, p in enumerate(per_clip)])
    assert index.shape == expected_index.shape and np.array_equal(index, expected_index), \
        "the clip index should list each segment's clip: all of clip 0's segments, then clip 1's, ..."
    assert segs.shape == (len(expected_index), 6, seg), f"expected {len(expected_index)} segments of (6, {seg}), got {segs.shape}"
    assert np.array_equal(segs, np.concatenate(per_clip)), \
        "the segments should be each clip's own segments in order: does a segment run from one clip into the next?"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _case(seed: int):
    """Segments of 9 clips in shuffled order: one clip with 40 segments beside clips with one."""
    rng = np.random.default_rng(seed)
    counts = np.array([1, 40, 3, 1, 7, 2, 1, 12, 5])
    index = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    logits = rng.normal(0, 3, size=(len(index), 6))
    logits[rng.random(len(index)) < 0.1] *= 8  # a few overconfident segments, where logits and probabilities part
    return logits, index, len(counts)


@hidden
def check_mean_of_probabilities(clip_probabilities) -> None:
    """method='mean' (the default) is the mean of the segments' softmax probabilities, per clip."""
    for seed in (1, 2):
        logits, index, n = _case(seed)
        out = plain(clip_probabilities(logits.copy(), index.copy(), n), np.float64)
        expected = np.zeros((n, logits.shape[1]))
        np.add.at(expected, index, _softmax(logits))
        expected /= np.bincount(index, minlength=n)[:, None]
        assert out.shape == expected.shape, f"expected one row per clip ({expected.shape}), got {out.shape}"
        assert np.allclose(out, expected, atol=1e-5), \
            ("clip probabilities should be the mean of the segments' softmax probabilities (not the softmax of "
             "mean logits, not votes), with row i for clip i whatever the order of the segments")


@hidden
def check_vote(clip_probabilities) -> None:
    """method='vote': the fraction of a clip's segments whose most probable class is each class."""
    logits, index, n = _case(3)
    out = plain(clip_probabilities(logits.copy(), index.copy(), n, method="vote"), np.float64)
    expected = np.zeros((n, logits.shape[1]))
    np.add.at(expected, (index, logits.argmax(axis=1)), 1.0)
    expected /= np.bincount(index, minlength=n)[:, None]
    assert out.shape == expected.shape and np.allclose(out, expected), \
        "method='vote' should give, per clip, the fraction of its segments voting for each class"
