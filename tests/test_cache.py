import functools
import os

import numpy as np
import pytest

from genrekit import cache, config, data

CALLS = []


def rms_frames(y, frame=1600):
    CALLS.append(1)
    n = len(y) // frame
    return np.sqrt((y[: n * frame].reshape(n, frame) ** 2).mean(axis=1)).astype(np.float32)


def rms_frames_scaled(y, frame=1600, scale=2.0):
    n = len(y) // frame
    return scale * np.sqrt((y[: n * frame].reshape(n, frame) ** 2).mean(axis=1)).astype(np.float32)


@pytest.fixture
def clips(tiny_synth):
    return data.Dataset(tiny_synth).clips("test")


def test_second_run_reuses_the_cache(tmp_path, clips):
    CALLS.clear()
    first, labels, kept = cache.features(rms_frames, clips, cache_dir=tmp_path, progress=False)
    assert len(CALLS) == len(clips) == len(first) and labels.tolist() == [c.label for c in clips]
    again, _, _ = cache.features(rms_frames, clips, cache_dir=tmp_path, progress=False)
    assert len(CALLS) == len(clips), "cached features were recomputed"
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (3 * config.SAMPLE_RATE // 1600,)


def test_changed_parameters_are_recomputed(tmp_path, clips):
    CALLS.clear()
    a, _, _ = cache.features(rms_frames, clips, cache_dir=tmp_path, progress=False)
    b, _, _ = cache.features(rms_frames, clips, params={"frame": 800}, cache_dir=tmp_path, progress=False)
    c, _, _ = cache.features(functools.partial(rms_frames, frame=400), clips, cache_dir=tmp_path, progress=False)
    assert len(CALLS) == 3 * len(clips)
    assert a[0].shape[0] * 2 == b[0].shape[0] and b[0].shape[0] * 2 == c[0].shape[0]


def test_other_function_or_config_gets_its_own_entry(tmp_path, clips, monkeypatch):
    a, _, _ = cache.features(rms_frames, clips, cache_dir=tmp_path, progress=False)
    b, _, _ = cache.features(rms_frames_scaled, clips, cache_dir=tmp_path, progress=False)
    assert np.allclose(2 * a[0], b[0])
    ident_before = cache.function_identity(rms_frames)[0]
    monkeypatch.setattr(config, "N_MELS", 128)
    assert cache.function_identity(rms_frames)[0] != ident_before


def test_changed_audio_is_recomputed(tmp_path, tiny_synth):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    clip = data.Dataset(root).clips("test")[:1]
    CALLS.clear()
    cache.features(rms_frames, clip, cache_dir=tmp_path / "c", progress=False)
    st = clip[0].path.stat()
    os.utime(clip[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cache.features(rms_frames, clip, cache_dir=tmp_path / "c", progress=False)
    assert len(CALLS) == 2


def test_meta_json_says_how_features_were_made(tmp_path, clips):
    cache.features(rms_frames, clips[:1], params={"frame": 800}, cache_dir=tmp_path, progress=False)
    (folder,) = tmp_path.iterdir()
    text = (folder / "meta.json").read_text()
    assert "test_cache.rms_frames" in text and "800" in text and "n_mels" in text


def test_bad_clip_raises_or_is_skipped(tmp_path, tiny_synth, capsys):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    clips = data.Dataset(root).clips("test")
    clips[1].path.unlink()
    with pytest.raises(data.AudioError, match="file not found"):
        cache.features(rms_frames, clips, cache_dir=tmp_path / "c", progress=False)
    feats, labels, kept = cache.features(rms_frames, clips, cache_dir=tmp_path / "c", skip_bad=True, progress=False)
    assert len(feats) == len(labels) == len(kept) == len(clips) - 1
    assert "skipped:" in capsys.readouterr().out


def test_editing_a_helper_changes_the_key(tmp_path):
    """The key covers the function's whole module: a helper or constant it uses counts too."""
    import importlib
    import sys
    module = tmp_path / "feat_mod.py"
    module.write_text("SCALE = 1.0\ndef helper(y):\n    return y * SCALE\ndef feat(y):\n    return helper(y)[:10]\n")
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("feat_mod")
        before = cache.function_identity(mod.feat)[0]
        module.write_text("SCALE = 2.0\ndef helper(y):\n    return y * SCALE\ndef feat(y):\n    return helper(y)[:10]\n")
        importlib.reload(mod)
        assert cache.function_identity(mod.feat)[0] != before
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("feat_mod", None)
