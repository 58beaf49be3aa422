"""Part 2: the reference segmentation and aggregation pass every hidden check, and each plausible
mistake fails exactly the checks aimed at it (so it loses exactly those points)."""

import sys

import numpy as np
import pytest

from autograder.checks import part2
from autograder.course import ASSIGNMENT, SOLUTIONS

sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))  # the reference package, for this test module only
from genre import segments as ref  # noqa: E402

sys.path.pop(0)


# --- plausible wrong answers ------------------------------------------------------------------------

def off_by_one(S, seg_frames, hop_frames):
    """range(0, frames - seg, hop): the last whole segment is lost."""
    if S.shape[1] < seg_frames:
        return ref.segment(S, seg_frames, hop_frames)
    return np.stack([S[:, s:s + seg_frames] for s in range(0, S.shape[1] - seg_frames, hop_frames)] or
                    [S[:, :seg_frames]])


def drops_short(S, seg_frames, hop_frames):
    """A clip shorter than a segment gives no segment at all."""
    starts = range(0, S.shape[1] - seg_frames + 1, hop_frames)
    return np.stack([S[:, s:s + seg_frames] for s in starts]) if len(starts) else np.zeros((0, S.shape[0], seg_frames), np.float32)


def zero_pads_short(S, seg_frames, hop_frames):
    """A short clip padded with zeros instead of looped (0 dB would be the loudest value: wrong contract)."""
    if S.shape[1] < seg_frames:
        return np.pad(S, ((0, 0), (0, seg_frames - S.shape[1])))[None]
    return ref.segment(S, seg_frames, hop_frames)


def across_clips(features, seg_frames, hop_frames):
    """Concatenate all clips in time, then segment: segments run from one clip into the next."""
    whole = np.concatenate(features, axis=1)
    segs = ref.segment(whole, seg_frames, hop_frames)
    starts = np.cumsum([0] + [f.shape[1] for f in features])[:-1]
    index = np.searchsorted(starts, np.arange(len(segs)) * hop_frames, side="right") - 1
    return segs, index.astype(np.int64)


def segment_clips_with(segment):
    def segment_clips(features, seg_frames, hop_frames):
        cut = [segment(f, seg_frames, hop_frames) for f in features]
        index = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(cut)])
        return np.concatenate(cut), index
    return segment_clips


def mean_of_logits(logits, clip_index, n_clips, method="mean"):
    logits = np.asarray(logits, dtype=np.float64)
    sums = np.zeros((n_clips, logits.shape[1]))
    np.add.at(sums, clip_index, logits)
    z = sums / np.bincount(clip_index, minlength=n_clips)[:, None]
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True) if method == "mean" else ref.clip_probabilities(logits, clip_index, n_clips, method)


def always_vote(logits, clip_index, n_clips, method="mean"):
    return ref.clip_probabilities(logits, clip_index, n_clips, "vote")


def sorted_clip_order(logits, clip_index, n_clips, method="mean"):
    """Assumes each clip's segments are contiguous and in clip order."""
    probs = ref.clip_probabilities(logits, np.sort(clip_index), n_clips, method)
    return probs


CHECKS = {
    "segment_counts": lambda s, sc, cp: part2.check_segment_counts(s),
    "segment_short": lambda s, sc, cp: part2.check_segment_short(s),
    "segment_clips": lambda s, sc, cp: part2.check_segment_clips(sc, s),
    "mean": lambda s, sc, cp: part2.check_mean_of_probabilities(cp),
    "vote": lambda s, sc, cp: part2.check_vote(cp),
}


def failing(segment=ref.segment, segment_clips=None, clip_probabilities=ref.clip_probabilities):
    segment_clips = segment_clips or segment_clips_with(segment)
    failed = set()
    for name, check in CHECKS.items():
        try:
            check(segment, segment_clips, clip_probabilities)
        except AssertionError:
            failed.add(name)
    return failed


def test_reference_passes_every_check():
    assert failing(ref.segment, ref.segment_clips, ref.clip_probabilities) == set()


@pytest.mark.parametrize("variant, expected", [
    (dict(segment=off_by_one), {"segment_counts"}),
    (dict(segment=drops_short), {"segment_short", "segment_clips"}),
    (dict(segment=zero_pads_short), {"segment_short"}),
    (dict(segment_clips=across_clips), {"segment_clips"}),
    (dict(clip_probabilities=mean_of_logits), {"mean"}),
    (dict(clip_probabilities=always_vote), {"mean"}),
    (dict(clip_probabilities=sorted_clip_order), {"mean", "vote"}),
])
def test_each_mistake_fails_exactly_its_checks(variant, expected):
    assert failing(**variant) == expected


def test_contract_edges_of_the_reference():
    S = np.arange(20, dtype=np.float32).reshape(2, 10)
    assert ref.segment(S, 10, 3).shape == (1, 2, 10)
    assert ref.segment(S, 3, 100).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="seg_frames"):
        ref.segment(S, 0, 1)
    with pytest.raises(ValueError, match="frames > 0"):
        ref.segment(np.zeros((2, 0), np.float32), 3, 1)
    with pytest.raises(ValueError, match="at least one segment"):
        ref.clip_probabilities(np.zeros((2, 3)), np.array([0, 0]), 2)
    with pytest.raises(ValueError, match="method"):
        ref.clip_probabilities(np.zeros((2, 3)), np.array([0, 1]), 2, method="median")
    probs = ref.clip_probabilities(np.random.default_rng(0).normal(size=(7, 8)), np.array([2, 0, 1, 2, 2, 0, 1]), 3)
    assert probs.shape == (3, 8) and np.allclose(probs.sum(1), 1)


def test_correct_variants_pass():
    """Written differently but right: a loop with explicit indices, torch aggregation."""
    import torch

    def loop_segment(S, seg_frames, hop_frames):
        S = np.asarray(S, np.float32)
        if S.shape[1] < seg_frames:
            reps = -(-seg_frames // S.shape[1])
            return np.tile(S, (1, reps))[None, :, :seg_frames]
        out = []
        start = 0
        while start + seg_frames <= S.shape[1]:
            out.append(S[:, start:start + seg_frames])
            start += hop_frames
        return np.array(out)

    def torch_probs(logits, clip_index, n_clips, method="mean"):
        p = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1)
        if method == "vote":
            p = torch.nn.functional.one_hot(p.argmax(1), p.shape[1]).double()
        idx = torch.as_tensor(clip_index)
        out = torch.zeros(n_clips, p.shape[1], dtype=torch.float64).index_add_(0, idx, p)
        return out / torch.bincount(idx, minlength=n_clips)[:, None]

    assert failing(loop_segment, None, torch_probs) == set()


def test_each_check_is_judged_from_its_record_alone():
    """As the grader runs them: each probe on the reference objects (found by the import paths it
    declares), its encoded record judged by the verdict alone, passes; a forged record (every array
    replaced by zeros of the same shape) fails every check, and for segment_clips a record whose
    segments agree with a forged ``segment`` of zeros fails too (its segments must be cut out of the clips)."""
    from autograder.checks import common
    names = sorted(n for n in common.CHECKS if n.startswith("part2."))
    assert names == sorted(f"part2.check_{n}" for n in ("segment_counts", "segment_short", "segment_clips",
                                                         "mean_of_probabilities", "vote"))
    for name in names:
        check = common.CHECKS[name]
        assert all(path.rsplit(".", 1)[0] == "genre.segments" for path in check.student), name
        raw = check.record(*(getattr(ref, path.rsplit(".", 1)[1]) for path in check.student))
        assert common.judge(name, raw) is None, name
        record = common.decode(raw)
        forged = {k: np.zeros_like(v) if isinstance(v, np.ndarray) else v for k, v in record.items()}
        assert common.judge(name, common.encode(forged)) is not None, name
    record = common.decode(part2.check_segment_clips.record(ref.segment_clips, ref.segment))
    consistent = {k: np.zeros_like(v) if k == "segs" or k.startswith("own_") else v for k, v in record.items()}
    assert "is not cut out of that clip" in common.judge("part2.check_segment_clips", common.encode(consistent))
