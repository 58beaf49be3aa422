import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from genrekit import config, data, synth


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.wav")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_layout_and_splits(tiny_synth):
    for g in config.GENRES:
        assert sorted(p.name for p in (tiny_synth / g).glob("*.wav")) == [f"{g}.{i:05d}.wav" for i in range(5)]
    ds = data.Dataset(tiny_synth)
    sizes = {s: len(ds.clips(s)) for s in data.SPLITS}
    assert sizes == {"train": 16, "valid": 8, "test": 16}
    ids = [c.id for s in data.SPLITS for c in ds.clips(s)]
    assert len(ids) == len(set(ids)) == 40, "a clip is in two subsets"
    for s in data.SPLITS:
        assert np.bincount(ds.labels(s), minlength=8).min() >= 1, f"{s} misses a genre"
    manifest = json.loads((tiny_synth / "dataset.json").read_text())
    assert manifest["seed"] == 0 and manifest["version"] == synth.SYNTH_VERSION


def test_audio_is_gtzan_like(tiny_synth):
    info = sf.info(str(tiny_synth / "metal" / "metal.00000.wav"))
    assert info.samplerate == 22050 and info.channels == 1 and info.subtype == "PCM_16"
    assert abs(info.duration - 3.0) < 1e-3
    y = data.load_audio(tiny_synth / "metal" / "metal.00000.wav")
    assert y.dtype == np.float32 and len(y) == 3 * config.SAMPLE_RATE
    assert 0.01 < np.sqrt(np.mean(y ** 2)) and np.abs(y).max() < 1.0


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_synth):
    again = synth.build(tmp_path / "again", clips_per_genre=5, seconds=3.0, seed=0, progress=False)
    assert _digest(again) == _digest(tiny_synth)
    other = synth.build(tmp_path / "other", clips_per_genre=5, seconds=3.0, seed=1, progress=False)
    assert _digest(other) != _digest(tiny_synth)


def _composed(genre, n=30, seconds=8.0):
    return [synth.compose(genre, seconds, synth.clip_rng(0, genre, i)) for i in range(n)]


def test_genres_have_their_character():
    """Style rules hold for the clips that borrowed nothing: tempo ranges, drums or none, swing."""
    for genre, style in synth.STYLES.items():
        own = [c for c in _composed(genre) if set(c["parts"].values()) == {genre}]
        assert len(own) >= 15, f"{genre}: too many clips borrow from other genres"
        for c in own:
            assert style.tempo[0] <= c["tempo"] <= style.tempo[1]
        has_drums = [any(n[2] == synth.DRUMS for n in c["notes"]) for c in own]
        if genre == "classical":
            assert not any(has_drums), "classical clips must not have drums"
        else:
            assert np.mean(has_drums) > 0.8, f"{genre}: drums missing too often"
    kicks = [sum(1 for n in c["notes"] if n[2] == synth.DRUMS and n[3] == synth.KICK) / c["tempo"]
             for c in _composed("metal", 10) if c["parts"]["drums"] == "metal"]
    kicks_pop = [sum(1 for n in c["notes"] if n[2] == synth.DRUMS and n[3] == synth.KICK) / c["tempo"]
                 for c in _composed("pop", 10) if c["parts"]["drums"] == "pop"]
    assert min(kicks) > 3 * max(kicks_pop), "metal double kick should hit far more often than pop's kick"


def test_clips_of_a_genre_differ():
    clips = _composed("disco", 10)
    assert len({round(c["tempo"], 3) for c in clips}) == 10
    assert len({tuple(sorted(c["programs"].items())) for c in clips}) > 3


def test_bad_arguments_say_why(tmp_path):
    with pytest.raises(ValueError, match="clips-per-genre"):
        synth.build(tmp_path / "x", clips_per_genre=2, seconds=1.0, progress=False)
    with pytest.raises(ValueError, match="seconds"):
        synth.build(tmp_path / "x", clips_per_genre=4, seconds=0, progress=False)
