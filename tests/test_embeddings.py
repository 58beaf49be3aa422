"""genrekit.embeddings: the course's musicnn representation (MSD_musicnn max_pool rows, 3 s patches every
1 s), and which rows belong to each log-mel segment of part 2."""

import functools

import numpy as np
import pytest

from genrekit import cache, config, embeddings, musicnn
from genrekit.data import Clip

from conftest import tone, write_wav


def music(seconds, sr=config.SAMPLE_RATE, seed=0):
    """A few seconds of tones and noise bursts (not silent, not constant)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t * (1 + 0.01 * np.sin(t)))
    y += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0)
    return y.astype(np.float32)


def test_constants_fix_the_representation():
    assert (embeddings.MODEL, embeddings.LAYER) == ("MSD_musicnn", "max_pool")
    assert (embeddings.PATCH_SECONDS, embeddings.PATCH_HOP_SECONDS, embeddings.DIM) == (3.0, 1.0, 753)
    assert embeddings.MUSICNN_IMPLEMENTATION == musicnn.IMPLEMENTATION, \
        "genrekit.musicnn changed: acknowledge it in embeddings.MUSICNN_IMPLEMENTATION (renews cached embeddings)"
    assert (embeddings.PATCH_FRAMES, embeddings.ROW_HOP_FRAMES) == (187, 62)
    assert embeddings.describe() == {"model": "MSD_musicnn", "layer": "max_pool", "patch_seconds": 3.0,
                                     "patch_hop_seconds": 1.0}


def test_clip_frames_rows_and_dtype():
    rows = embeddings.clip_frames(music(15.0))
    assert rows.shape == (13, embeddings.DIM) and rows.dtype == np.float32 and np.isfinite(rows).all()
    assert embeddings.clip_frames(music(4.0)).shape == (2, embeddings.DIM)     # patches at 0 and 0.992 s
    assert embeddings.clip_frames(music(1.0)).shape == (1, embeddings.DIM)     # shorter than a patch: padded
    # row r is the network on the 187 spectrogram frames starting at frame 62 r
    y = music(6.0, seed=1)
    spec = musicnn.log_mel(y)
    start = 2 * embeddings.ROW_HOP_FRAMES
    alone = musicnn.embed_patches(spec[None, start:start + embeddings.PATCH_FRAMES], layer="max_pool")
    assert np.allclose(embeddings.clip_frames(y)[2], alone[0], atol=1e-5)


def test_clip_frames_resamples_and_refuses_silence():
    y = music(5.0, sr=22050)
    assert embeddings.clip_frames(y, sr=22050).shape == (3, embeddings.DIM)
    with pytest.raises(musicnn.MusicnnError, match="silent"):
        embeddings.clip_frames(np.zeros(16000, dtype=np.float32))


def test_clip_frames_through_the_feature_cache(tmp_path):
    """What the grader does: cache.features(embeddings.clip_frames, clips), computed once."""
    label = config.GENRE_TO_LABEL["pop"]
    clips = [Clip(write_wav(tmp_path / f"pop/pop.0000{i}.wav", tone(4.0, freq=300 + 100 * i)), "pop", label,
                  f"pop/pop.0000{i}.wav") for i in range(2)]
    first, labels, _ = cache.features(embeddings.clip_frames, clips, cache_dir=tmp_path / "c", progress=False)
    again, _, _ = cache.features(embeddings.clip_frames, clips, cache_dir=tmp_path / "c", progress=False)
    assert [f.shape for f in first] == [(2, embeddings.DIM)] * 2 and labels.tolist() == [label] * 2
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = cache.function_identity(functools.partial(musicnn.embed, layer="max_pool"))[0]
    assert cache.function_identity(embeddings.clip_frames)[0]["source_sha1"] != other["source_sha1"]


@pytest.mark.parametrize("n_rows, start, seconds, expected", [
    (13, 0.0, 4.0, (0, 2)),              # a 4 s segment holds the patches starting at 0 and 0.992 s
    (13, 1.984, 4.0, (2, 4)),            # segment 1 of part 2 (62 log-mel frames later)
    (13, 9.92, 4.0, (10, 12)),           # the last 4 s segment of a 15 s clip
    (13, 0.0, 15.0, (0, 13)),            # the whole clip: every row
    (13, 0.0, 3.0, (0, 1)),              # exactly one patch
    (13, 0.5, 2.0, (0, 1)),              # shorter than a patch: the patch centred nearest (at 1.496 s)
    (13, 4.4, 1.0, (3, 4)),              # centre 4.9 s: patch 3 (centre 4.472 s) is nearer than patch 4 (5.464 s)
    (13, 11.904, 4.0, (12, 13)),         # runs past the last patch: clamped, still one row
    (13, 40.0, 4.0, (12, 13)),           # beyond the clip (a looped short clip): the last row
    (1, 0.0, 4.0, (0, 1)),               # a clip shorter than one patch has one row
    (28, 25.792, 4.0, (26, 28)),         # the last segment of a 30 s clip
])
def test_segment_rows(n_rows, start, seconds, expected):
    rows = embeddings.segment_rows(n_rows, start, seconds)
    assert isinstance(rows, slice) and (rows.start, rows.stop) == expected


def test_segment_rows_patches_lie_inside_the_segment():
    """Every patch lying inside the segment, and no other; else the one patch centred nearest."""
    hop, span, tol = embeddings.ROW_HOP_SECONDS, embeddings.PATCH_SPAN_SECONDS, embeddings.TOLERANCE_SECONDS
    for start in np.arange(0.0, 20.0, 0.37):
        for seconds in (2.0, 3.0, 4.0, 5.5, 10.0):
            rows = embeddings.segment_rows(40, start, seconds)
            inside = [r for r in range(40) if r * hop >= start - tol and r * hop + span <= start + seconds + tol]
            if inside:
                assert (rows.start, rows.stop) == (inside[0], inside[-1] + 1), (start, seconds)
            else:
                centre = [abs(r * hop + span / 2 - start - seconds / 2) for r in range(40)]
                assert rows.stop == rows.start + 1 and centre[rows.start] <= min(centre) + 1e-9, (start, seconds)


@pytest.mark.parametrize("args, word", [
    ((0, 0.0, 4.0), "n_rows"), ((2.5, 0.0, 4.0), "n_rows"), ((True, 0.0, 4.0), "n_rows"),
    ((13, -1.0, 4.0), "start_seconds"), ((13, float("nan"), 4.0), "start_seconds"),
    ((13, 0.0, 0.0), "seconds"), ((13, 0.0, float("inf")), "seconds"), ((13, "a", 4.0), "start_seconds"),
])
def test_segment_rows_bad_arguments(args, word):
    with pytest.raises(ValueError, match=word) as err:
        embeddings.segment_rows(*args)
    assert "\n" not in str(err.value)


def part2_clip_index(frames_per_clip, seg_frames, hop_frames):
    """The clip index of part 2's segment_clips: clip 0's segments first; a short clip gives one segment."""
    counts = [max(1, 1 + (n - seg_frames) // hop_frames) for n in frames_per_clip]
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def test_segment_frames_follows_segment_clips():
    seg_frames, hop_frames = config.seconds_to_frames(4.0), config.seconds_to_frames(2.0)   # 125, 62
    clip_seconds = [15.0, 30.0, 2.0]
    index = part2_clip_index([1 + int(s * config.SAMPLE_RATE) // config.HOP_LENGTH for s in clip_seconds],
                             seg_frames, hop_frames)
    assert np.bincount(index).tolist() == [6, 14, 1]
    rows = [13, 28, 1]   # clip_frames of 15 s, 30 s, 2 s clips
    frames = [np.arange(n * 3, dtype=np.float32).reshape(n, 3) + 1000 * c for c, n in enumerate(rows)]
    blocks = embeddings.segment_frames(frames, index, seg_frames, hop_frames)
    assert len(blocks) == len(index)
    row_ids = [(int(b[0, 0]) // 1000, (b[:, 0] % 1000 // 3).astype(int).tolist()) for b in blocks]
    assert row_ids[:6] == [(0, [2 * k, 2 * k + 1]) for k in range(6)]
    assert row_ids[6:20] == [(1, [2 * k, 2 * k + 1]) for k in range(14)]
    assert row_ids[20] == (2, [0])
    # segments in another order: the k-th occurrence of a clip is its k-th segment
    order = np.random.default_rng(0).permutation(len(index))
    shuffled = embeddings.segment_frames(frames, index[order], seg_frames, hop_frames)
    by_clip = {}
    for b, c in zip(shuffled, index[order]):
        by_clip.setdefault(int(c), []).append(b)
    assert all(np.array_equal(a, b) for c in by_clip for a, b in zip(by_clip[c], [x for x, i in zip(blocks, index) if i == c]))


def test_segment_frames_other_settings_and_empty():
    frames = [np.ones((13, 4), np.float32)]
    three = embeddings.segment_frames(frames, np.zeros(4, np.int64), config.seconds_to_frames(3.0), config.seconds_to_frames(3.0))
    assert [len(b) for b in three] == [1, 1, 1, 1]
    five = embeddings.segment_frames(frames, np.zeros(3, np.int64), config.seconds_to_frames(5.0), config.seconds_to_frames(5.0))
    assert [len(b) for b in five] == [3, 2, 2]   # 4.992 s segments start at 0, 4.992, 9.984 s
    assert embeddings.segment_frames(frames, np.zeros(0, np.int64), 125, 62) == []


@pytest.mark.parametrize("args, word", [
    (([np.ones((3, 2))], [1], 125, 62), "clip_index"),
    (([np.ones((3, 2))], [-1], 125, 62), "clip_index"),
    (([np.ones((3, 2))], [[0]], 125, 62), "clip_index"),
    (([np.ones((3, 2))], [0.0], 125, 62), "clip_index"),
    (([np.ones((0, 2))], [0], 125, 62), "frames_per_clip"),
    (([np.ones(3)], [0], 125, 62), "frames_per_clip"),
    (([np.ones((3, 2))], [0], 0, 62), "seg_frames"),
    (([np.ones((3, 2))], [0], 125, 1.5), "hop_frames"),
])
def test_segment_frames_bad_arguments(args, word):
    with pytest.raises(ValueError, match=word) as err:
        embeddings.segment_frames(*args)
    assert "\n" not in str(err.value)


def test_context_frames_clip_and_segment():
    """context "clip": every segment gets all of its clip's rows; "segment": segment_frames; else one line."""
    seg_frames, hop_frames = config.seconds_to_frames(4.0), config.seconds_to_frames(2.0)
    frames = [np.arange(13 * 2, dtype=np.float32).reshape(13, 2), np.full((1, 2), 7.0, np.float32)]
    index = np.array([0, 0, 1, 0], np.int64)
    whole = embeddings.context_frames(frames, index, seg_frames, hop_frames, context="clip")
    assert [b.shape for b in whole] == [(13, 2), (13, 2), (1, 2), (13, 2)]
    assert all(np.array_equal(b, frames[c]) for b, c in zip(whole, index))
    own = embeddings.context_frames(frames, index, seg_frames, hop_frames, context="segment")
    expected = embeddings.segment_frames(frames, index, seg_frames, hop_frames)
    assert [len(b) for b in own] == [2, 2, 1, 2] and all(np.array_equal(a, b) for a, b in zip(own, expected))
    assert embeddings.DEFAULT_CONTEXT in embeddings.CONTEXTS
    with pytest.raises(ValueError, match="context") as err:
        embeddings.context_frames(frames, index, seg_frames, hop_frames, context="song")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="clip_index"):   # the arguments are checked whatever the context
        embeddings.context_frames(frames, np.array([2]), seg_frames, hop_frames, context="clip")


def test_checkpoint_context_reads_the_record():
    assert embeddings.checkpoint_context({"extra": {"musicnn": {"context": "clip"}}}) == "clip"
    for ckpt in ({"extra": {"musicnn": {"model": embeddings.MODEL}}}, {"extra": {}}, {}, {"extra": None}):
        assert embeddings.checkpoint_context(ckpt) == embeddings.DEFAULT_CONTEXT
    with pytest.raises(ValueError, match="context") as err:
        embeddings.checkpoint_context({"extra": {"musicnn": {"context": "song"}}})
    assert "\n" not in str(err.value)
