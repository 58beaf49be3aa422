"""Hidden checks of part 2: segmenting log-mels and aggregating segment predictions to clips.

Each check is aimed at one idea; a wrong answer fails the checks of the function it is in and no other
(``segment_clips`` is checked against the student's own ``segment``, so an off-by-one in ``segment``
costs the ``segment`` cell only).

The checks are written as a probe and a verdict (:mod:`autograder.checks.common`): the probe calls the
student's functions on log-mels and logits drawn here from seeded generators of their own and records
what came back (the segments, the clip index, the clip probabilities) as plain arrays; the verdict,
run by the grader in its own process, draws the same inputs again, recomputes what it expects and
judges. ``check_segment_clips`` records the student's ``segment`` of every clip beside the output of
``segment_clips``; the verdict compares the two, and accepts the student's segments only when each is
a window of its own clip (the part inside the clip cut out of it, whatever fills a short clip's rest),
so an error of ``segment`` in counts or in filling short clips is not charged here again.
"""

from __future__ import annotations

import numpy as np

from autograder.checks.common import plain, probe

SEGMENT = "genre.segments.segment"
SEGMENT_CLIPS = "genre.segments.segment_clips"
CLIP_PROBABILITIES = "genre.segments.clip_probabilities"


def _logmel(mels: int, frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-80, 0, size=(mels, frames)).astype(np.float32)


def _expected_count(frames: int, seg: int, hop: int) -> int:
    return 1 if frames < seg else 1 + (frames - seg) // hop


def _array(rec, key: str, dtype=np.float64) -> np.ndarray:
    """A recorded student output as a plain array (TypeError/ValueError when it is not numbers)."""
    return np.asarray(rec[key], dtype=dtype)


# --- segment -----------------------------------------------------------------------------------------

COUNT_CASES = ((37, 11, 5), (125, 125, 62), (126, 125, 62), (188, 125, 62), (99, 20, 7), (60, 20, 10))


@probe(SEGMENT)
def check_segment_counts(segment) -> dict:
    """Counts and content for lengths students have not seen: odd lengths, hops that do not divide."""
    return {f"out_{frames}_{seg}_{hop}": plain(segment(_logmel(5, frames, frames + seg), seg, hop), np.float64)
            for frames, seg, hop in COUNT_CASES}


@check_segment_counts.verdict
def _segment_counts(rec) -> None:
    for frames, seg, hop in COUNT_CASES:
        S = _logmel(5, frames, frames + seg)
        out = _array(rec, f"out_{frames}_{seg}_{hop}")
        n = _expected_count(frames, seg, hop)
        assert out.shape == (n, 5, seg), (f"segment of {frames} frames into {seg}-frame segments every {hop}: "
                                          f"expected shape {(n, 5, seg)}, got {out.shape} (count 1 + (frames - seg) // hop)")
        for i in (0, n - 1):
            assert np.array_equal(out[i], S[:, i * hop:i * hop + seg]), \
                f"segment {i} of {frames} frames should be S[:, {i * hop}:{i * hop + seg}]"


SHORT_CASES = ((1, 9), (40, 125), (124, 125))


@probe(SEGMENT)
def check_segment_short(segment) -> dict:
    """A clip shorter than one segment gives one segment: the clip looped from its start."""
    return {f"out_{frames}_{seg}": plain(segment(_logmel(4, frames, frames), seg, max(1, seg // 2)), np.float64)
            for frames, seg in SHORT_CASES}


@check_segment_short.verdict
def _segment_short(rec) -> None:
    for frames, seg in SHORT_CASES:
        S = _logmel(4, frames, frames)
        out = _array(rec, f"out_{frames}_{seg}")
        assert out.shape == (1, 4, seg), (f"a clip of {frames} frames, shorter than a {seg}-frame segment, "
                                          f"should give exactly one segment (shape (1, 4, {seg})), got {out.shape}")
        looped = np.concatenate([S] * (seg // frames + 1), axis=1)[:, :seg]
        assert np.array_equal(out[0], looped), "a short clip should be looped from its start to fill the segment"


# --- segment_clips -----------------------------------------------------------------------------------

CLIPS_SEG, CLIPS_HOP, CLIPS_MELS = 30, 11, 6
CLIP_LENGTHS = (30, 200, 7, 41, 30, 95)


def _clips() -> list[np.ndarray]:
    return [_logmel(CLIPS_MELS, n, 100 + i) for i, n in enumerate(CLIP_LENGTHS)]


@probe(SEGMENT_CLIPS, SEGMENT)
def check_segment_clips(segment_clips, segment) -> dict:
    """Many clips of unequal lengths (one with many segments, one exactly one segment long, one shorter):
    the stacked segments are each clip's own segments in clip order, and the index maps them back."""
    clips = _clips()
    segs, index = segment_clips([c.copy() for c in clips], CLIPS_SEG, CLIPS_HOP)
    rec = {"segs": plain(segs, np.float32), "index": plain(index)}
    for i, c in enumerate(clips):  # the student's own segment of each clip: segment_clips is judged against it
        rec[f"own_{i}"] = plain(segment(c.copy(), CLIPS_SEG, CLIPS_HOP), np.float32)
    return rec


def _is_window(row: np.ndarray, clip: np.ndarray) -> bool:
    """Whether a segment is cut out of its clip: from some start s, its frames inside the clip are
    clip[:, s:s + k] (a short clip's or a tail's remainder, looped or padded, is not looked at)."""
    frames = clip.shape[1]
    if row.ndim != 2 or row.shape[0] != clip.shape[0] or row.shape[1] < 1:
        return False
    for s in np.flatnonzero(np.all(clip == row[:, :1], axis=0)):
        k = min(row.shape[1], frames - s)
        if np.array_equal(row[:, :k], clip[:, s:s + k]):
            return True
    return False


@check_segment_clips.verdict
def _segment_clips(rec) -> None:
    clips, seg, n_clips = _clips(), CLIPS_SEG, len(CLIP_LENGTHS)
    segs, given = _array(rec, "segs", np.float32), np.asarray(rec["index"])
    assert np.issubdtype(given.dtype, np.integer), f"the clip index should hold integers, got {given.dtype}"
    per_clip = [_array(rec, f"own_{i}", np.float32) for i in range(n_clips)]
    index = given.reshape(-1)
    assert set(index.tolist()) == set(range(n_clips)), \
        f"every clip should give at least one segment; clips {sorted(set(range(n_clips)) - set(index.tolist()))} have none"
    expected_index = np.concatenate([np.full(len(p), i) for i, p in enumerate(per_clip)])
    assert given.shape == expected_index.shape and np.array_equal(index, expected_index), \
        "the clip index should list each segment's clip: all of clip 0's segments, then clip 1's, ..."
    assert segs.shape == (len(expected_index), CLIPS_MELS, seg), \
        f"expected {len(expected_index)} segments of ({CLIPS_MELS}, {seg}), got {segs.shape}"
    for i, (own, clip) in enumerate(zip(per_clip, clips)):  # the reference the output is compared with
        for j, row in enumerate(own):
            assert _is_window(row, clip), (f"segment {j} of clip {i} (from your segment) is not cut out of that clip: "
                                           f"segment_clips should be given each clip's own segments")
    assert np.array_equal(segs, np.concatenate(per_clip)), \
        "the segments should be each clip's own segments in order: does a segment run from one clip into the next?"


# --- clip_probabilities --------------------------------------------------------------------------------

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


MEAN_SEEDS = (1, 2)


@probe(CLIP_PROBABILITIES)
def check_mean_of_probabilities(clip_probabilities) -> dict:
    """method='mean' (the default) is the mean of the segments' softmax probabilities, per clip."""
    rec = {}
    for seed in MEAN_SEEDS:
        logits, index, n = _case(seed)
        rec[f"out_{seed}"] = plain(clip_probabilities(logits.copy(), index.copy(), n), np.float64)
    return rec


@check_mean_of_probabilities.verdict
def _mean_of_probabilities(rec) -> None:
    for seed in MEAN_SEEDS:
        logits, index, n = _case(seed)
        out = _array(rec, f"out_{seed}")
        expected = np.zeros((n, logits.shape[1]))
        np.add.at(expected, index, _softmax(logits))
        expected /= np.bincount(index, minlength=n)[:, None]
        assert out.shape == expected.shape, f"expected one row per clip ({expected.shape}), got {out.shape}"
        assert np.allclose(out, expected, atol=1e-5), \
            ("clip probabilities should be the mean of the segments' softmax probabilities (not the softmax of "
             "mean logits, not votes), with row i for clip i whatever the order of the segments")


VOTE_SEED = 3


@probe(CLIP_PROBABILITIES)
def check_vote(clip_probabilities) -> dict:
    """method='vote': the fraction of a clip's segments whose most probable class is each class."""
    logits, index, n = _case(VOTE_SEED)
    return {"out": plain(clip_probabilities(logits.copy(), index.copy(), n, method="vote"), np.float64)}


@check_vote.verdict
def _vote(rec) -> None:
    logits, index, n = _case(VOTE_SEED)
    out = _array(rec, "out")
    expected = np.zeros((n, logits.shape[1]))
    np.add.at(expected, (index, logits.argmax(axis=1)), 1.0)
    expected /= np.bincount(index, minlength=n)[:, None]
    assert out.shape == expected.shape and np.allclose(out, expected), \
        "method='vote' should give, per clip, the fraction of its segments voting for each class"
