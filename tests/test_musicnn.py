"""genrekit.musicnn: shapes, loud audio, batch independence, agreement with musicnn.extractor,
checkpoint checks, the feature cache, and a silent stderr."""

import functools
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrekit import cache, musicnn
from genrekit.data import Clip

SR = 16_000
ROOT = Path(__file__).resolve().parents[1]


def tone(seconds, sr=SR, freq=220.0, amp=0.05, noise=0.01, seed=0):
    """A quiet sine plus a little noise: (samples,) float32."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def loud(seconds, sr=SR, seed=1):
    """A full-scale square wave plus noise, clipped to [-1, 1]: (samples,) float32."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    y = 0.99 * np.sign(np.sin(2 * np.pi * 110 * t)) + 0.3 * rng.standard_normal(t.size)
    return np.clip(y, -1, 1).astype(np.float32)


def run_python(code, cwd=ROOT, timeout=120):
    """Run ``code`` in a fresh interpreter of this venv; returns the CompletedProcess (bytes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, timeout=timeout)


def test_nothing_on_stderr_in_process(capfd):
    """embed (which imports TensorFlow on first use) writes nothing to stderr."""
    musicnn.embed(tone(3.5))
    assert capfd.readouterr().err == ""


def test_nothing_on_stderr_fresh_process():
    """In a fresh process, importing and embedding write nothing to stderr (TF prints at start-up)."""
    proc = run_python("""
        import numpy as np
        from genrekit import musicnn
        print(musicnn.embed(np.random.default_rng(0).standard_normal(16000 * 4).astype("float32") * 0.1).shape)
    """)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stderr == b"", proc.stderr.decode()[-2000:]
    assert proc.stdout.strip() == b"(1, 753)"


def test_import_does_not_import_tensorflow():
    """`import genrekit.musicnn` is light: TensorFlow is imported by the first embed, not before."""
    proc = run_python("""
        import sys
        import genrekit, genrekit.musicnn
        print("tensorflow" in sys.modules)
    """)
    assert proc.stdout.strip() == b"False", proc.stderr.decode()[-2000:]


@pytest.mark.parametrize("layer, dim", [("max_pool", 753), ("mean_pool", 753), ("penultimate", 200)])
def test_shapes_and_dtype(layer, dim):
    """9.5 s with 3 s segments -> 3 rows of the layer's size, float32, finite."""
    emb = musicnn.embed(tone(9.5), layer=layer)
    assert emb.shape == (3, dim) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb))


def test_segment_length_hop_and_model():
    """segment_seconds sets the patch length, hop_seconds the step; MTT_musicnn works too."""
    y = tone(9.5)
    assert musicnn.frames_per_segment(3.0) == 187  # musicnn's training input
    assert musicnn.embed(y, segment_seconds=4.0).shape == (2, 753)
    assert musicnn.embed(y, segment_seconds=3.0, hop_seconds=1.0).shape == (7, 753)
    mtt = musicnn.embed(y, model="MTT_musicnn", layer="penultimate")
    assert mtt.shape == (3, 200)
    assert not np.allclose(mtt, musicnn.embed(y, layer="penultimate")), "MTT and MSD gave the same numbers"


def test_resamples_other_rates():
    """Audio at 22050 Hz is resampled to 16 kHz: same number of segments, close to the 16 kHz result."""
    a = musicnn.embed(tone(6.5, sr=22050, noise=0.0), sr=22050)
    b = musicnn.embed(tone(6.5, sr=SR, noise=0.0))
    assert a.shape == b.shape == (2, 753)
    assert np.abs(a - b).max() < 0.05 * np.abs(b).max()


def test_loud_audio_is_finite():
    """A full-scale clip (where musicnn's float16 spectrogram overflows) gives finite features."""
    import librosa
    y = loud(6.5)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96)
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.log10(10000 * mel.astype(np.float16) + 1))), "clip not loud enough"
    for layer in musicnn.LAYERS:
        assert np.all(np.isfinite(musicnn.embed(y, layer=layer))), layer


def test_batch_independence():
    """A clip's features are identical alone and inside a batch of other clips."""
    a, b, c = tone(6.5, freq=330), loud(9.5), tone(3.2, freq=440, seed=3)
    for layer in ("max_pool", "penultimate"):
        alone = musicnn.embed(a, layer=layer)
        batch = musicnn.embed_batch([b, a, c], layer=layer)
        assert [x.shape[0] for x in batch] == [3, 2, 1]
        assert np.array_equal(batch[1], alone), layer
        assert np.array_equal(musicnn.embed_batch([a, b], layer=layer)[0], alone), layer


@pytest.mark.parametrize("kwargs, words", [
    ({"model": "MSD_vgg"}, "unknown musicnn model"),
    ({"layer": "cnn1"}, "unknown musicnn layer"),
    ({"segment_seconds": 0}, "segment_seconds"),
])
def test_bad_arguments(kwargs, words):
    """Unknown model/layer and a zero segment length raise one-line MusicnnErrors."""
    with pytest.raises(musicnn.MusicnnError, match=words) as info:
        musicnn.embed(tone(3.5), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_audio():
    """Too-short, stereo and NaN audio raise one-line MusicnnErrors."""
    with pytest.raises(musicnn.MusicnnError, match="too short") as info:
        musicnn.embed(tone(1.0))
    assert "\n" not in str(info.value)
    with pytest.raises(musicnn.MusicnnError, match="clip 1: audio too short"):
        musicnn.embed_batch([tone(3.5), tone(1.0)])
    with pytest.raises(musicnn.MusicnnError, match="mono"):
        musicnn.embed(np.stack([tone(3.5), tone(3.5)]))
    bad = tone(3.5)
    bad[10] = np.nan
    with pytest.raises(musicnn.MusicnnError, match="NaN"):
        musicnn.embed(bad)


def _copy_model(tmp_path, name="MSD_musicnn"):
    dest = tmp_path / name
    shutil.copytree(musicnn.package_dir() / name, dest)
    return dest


def test_damaged_checkpoint_raises(tmp_path):
    """A truncated weights file raises a one-line error naming the folder (musicnn would run random weights)."""
    folder = _copy_model(tmp_path)
    data = folder / ".data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(musicnn.MusicnnError, match="cannot restore") as info:
        musicnn.embed(tone(3.5), model_dir=folder)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(musicnn.MusicnnError, match="no musicnn checkpoint"):
        musicnn.embed(tone(3.5), model_dir=tmp_path / "missing")


def test_skipped_restore_is_detected(tmp_path, monkeypatch):
    """If the restore silently did nothing (musicnn's bare except), the check against the file catches it."""
    import tensorflow as tf
    monkeypatch.setattr(tf.compat.v1.train.Saver, "restore", lambda self, sess, path: None)
    with pytest.raises(musicnn.MusicnnError, match="differs from the file"):
        musicnn.embed(tone(3.5), model_dir=_copy_model(tmp_path))


def test_model_dir_copy_gives_same_numbers(tmp_path):
    """Pointing at an intact copy of the weights gives the packaged model's numbers."""
    y = tone(3.5)
    assert np.array_equal(musicnn.embed(y, model_dir=_copy_model(tmp_path)), musicnn.embed(y))


def test_feature_cache(tmp_path):
    """cache.features(partial(embed, layer=...), clips) computes once, then reads the same arrays."""
    path = tmp_path / "disco.00000.wav"
    sf.write(path, tone(6.5), SR, subtype="FLOAT")
    clips = [Clip(path, "disco", 2, "disco/disco.00000.wav")]
    fn = functools.partial(musicnn.embed, layer="penultimate")
    first, labels, kept = cache.features(fn, clips, cache_dir=tmp_path / "cache", progress=False)
    again, _, _ = cache.features(fn, clips, cache_dir=tmp_path / "cache", progress=False)
    assert first[0].shape == (2, 200) and labels.tolist() == [2] and kept == clips
    assert np.array_equal(first[0], again[0])
    assert len(list((tmp_path / "cache").glob("embed-*/*.npy"))) == 1


ORIGINAL = """
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    from musicnn.extractor import batch_data, extractor
    out = {}
    for name in ("quiet", "loud"):
        wav = os.path.join(sys.argv[1], name + ".wav")
        _, _, feats = extractor(wav, model="MSD_musicnn", input_length=3, extract_features=True)
        batch, _ = batch_data(wav, 187, 187)
        out[name + "_batch"] = batch.astype(np.float32)
        for layer in ("max_pool", "mean_pool", "penultimate"):
            out[name + "_" + layer] = feats[layer]
    np.savez(os.path.join(sys.argv[1], "original.npz"), **out)
"""


def test_agrees_with_original_extractor(tmp_path):
    """Same network numbers as musicnn.extractor (run in a subprocess: it disables eager mode)."""
    quiet_y, loud_y = tone(9.5), loud(6.5)
    sf.write(tmp_path / "quiet.wav", quiet_y, SR, subtype="FLOAT")
    sf.write(tmp_path / "loud.wav", loud_y, SR, subtype="FLOAT")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(ORIGINAL), str(tmp_path)], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    ref = np.load(tmp_path / "original.npz")
    for layer in musicnn.LAYERS:
        # the network itself, on musicnn's own (float16-rounded) spectrogram patches: within 1e-4
        ours = musicnn.embed_patches(ref["quiet_batch"], layer=layer)
        rows = slice(0, 1) if layer == "penultimate" else slice(None)  # musicnn repeats row 0 (its bug)
        assert np.abs(ours[rows] - ref["quiet_" + layer][rows]).max() <= 1e-4, layer
        # end to end: only the float16 rounding of musicnn's spectrogram (about 2e-3 at 4.0) differs
        full = musicnn.embed(quiet_y, layer=layer)
        assert full.shape == ref["quiet_" + layer].shape
        assert np.abs(full[rows] - ref["quiet_" + layer][rows]).max() <= 5e-3 * np.abs(full).max(), layer
    # the loud clip: musicnn's float16 path overflows, ours does not
    assert not np.all(np.isfinite(ref["loud_max_pool"]))
    assert np.all(np.isfinite(musicnn.embed(loud_y)))


def _tiny_dataset(root: Path) -> Path:
    """A GTZAN-layout folder: two good clips, one too short for a segment, one that is not audio."""
    import json
    (root / "disco").mkdir(parents=True)
    (root / "jazz").mkdir()
    sf.write(root / "disco" / "disco.00000.wav", tone(6.5, freq=330), SR, subtype="FLOAT")
    sf.write(root / "jazz" / "jazz.00000.wav", tone(3.5, freq=550), SR, subtype="FLOAT")
    sf.write(root / "jazz" / "jazz.00001.wav", tone(1.0), SR, subtype="FLOAT")
    (root / "disco" / "disco.00001.wav").write_text("not audio")
    (root / "dataset.json").write_text(json.dumps({"name": "tiny", "default_split": "s"}))
    (root / "splits" / "s").mkdir(parents=True)
    (root / "splits" / "s" / "train.txt").write_text("disco/disco.00000.wav\njazz/jazz.00001.wav\n")
    (root / "splits" / "s" / "test.txt").write_text("jazz/jazz.00000.wav\ndisco/disco.00001.wav\n")
    return root


def test_extract_script(tmp_path, capsys):
    """data_scripts.extract_musicnn fills the cache, skips and lists bad clips, fails in one line."""
    from data_scripts import extract_musicnn as script
    root = _tiny_dataset(tmp_path / "tiny")
    cache_dir = tmp_path / "cache"
    args = ["--data", str(root), "--layer", "penultimate", "--cache-dir", str(cache_dir)]
    assert script.main(args) == 0
    out = capsys.readouterr()
    assert "2 clips of tiny:s train+test cached, 2 skipped" in out.out and out.err == ""
    assert "jazz.00001.wav: audio too short" in out.out and "disco.00001.wav: cannot decode" in out.out
    clips = [c for c in script.data.open_dataset(str(root)).clips("test") if c.genre == "jazz"]
    feats, _, _ = cache.features(script.embedder("MSD_musicnn", "penultimate", 3.0), clips,
                                 cache_dir=cache_dir, progress=False)
    assert feats[0].shape == (1, 200)
    assert len(list(cache_dir.glob("embed-*/*.npy"))) == 2  # nothing recomputed under another key

    assert script.main(["--data", str(root), "--split-subset", "valid", "--cache-dir", str(cache_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "valid" in err
    assert script.main(["--data", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
