"""genrekit.musicnn (PyTorch port) and genrekit.tfcheckpoint: golden outputs of the TensorFlow
implementation, batch independence, loud and short audio, damaged checkpoints, the converted-weights
cache, the feature cache, and a fresh process that never imports TensorFlow and writes nothing to stderr."""

import functools
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_scripts import musicnn_golden as golden
from genrekit import cache, musicnn, tfcheckpoint
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


def relative(a, b):
    """max |a - b| relative to max(1, max |b|) (the golden fixture's measure)."""
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


# --- equal to the TensorFlow implementation --------------------------------------------------------

@pytest.fixture(scope="module")
def fixture():
    with np.load(golden.FIXTURE) as f:
        return dict(f)


@pytest.mark.parametrize("model", musicnn.MODELS)
def test_golden_outputs(fixture, model):
    """Every layer equals the TensorFlow implementation's recorded output (tones, noise, a loud square
    wave, synth clips, 22.05 kHz input, odd lengths, a 4 s/1.5 s hop, two clips shorter than a patch)."""
    ours = golden.port_outputs(golden.signals(fixture), models=[model])
    assert len(ours) == len(golden.CASES) * len(musicnn.LAYERS)
    diffs = golden.differences(fixture, ours)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= golden.TOLERANCE, f"{worst}: {diffs[worst]:.2e} > {golden.TOLERANCE:g}"


def test_cache_key_names_the_implementation():
    """Embeddings cached by the TensorFlow version are not reused: the key hashes the module source,
    which names its implementation."""
    from data_scripts import musicnn_tf
    assert musicnn.IMPLEMENTATION in inspect.getsource(musicnn)
    ours, _ = cache.function_identity(functools.partial(musicnn.embed, layer="max_pool"))
    theirs, _ = cache.function_identity(functools.partial(musicnn_tf.embed, layer="max_pool"))
    assert ours["source_sha1"] != theirs["source_sha1"]


# --- behaviour -------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, dim", [("max_pool", 753), ("mean_pool", 753), ("penultimate", 200),
                                        ("taggram", 50)])
def test_shapes_and_dtype(layer, dim):
    """9.5 s with 3 s segments -> 3 rows of the layer's size, float32, finite; tags are probabilities."""
    emb = musicnn.embed(tone(9.5), layer=layer)
    assert emb.shape == (3, dim) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb))
    if layer == "taggram":
        assert np.all((emb >= 0) & (emb <= 1))


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
    """A clip's features are the same alone and inside batches of other clips (within float32 rounding)."""
    a, b, c = tone(6.5, freq=330), loud(9.5), tone(1.2, freq=440, seed=3)
    for layer in ("max_pool", "taggram"):
        alone = musicnn.embed(a, layer=layer)
        batch = musicnn.embed_batch([b, a, c], layer=layer)
        assert [x.shape[0] for x in batch] == [3, 2, 1]
        assert relative(batch[1], alone) <= 1e-6, layer
        assert relative(musicnn.embed_batch([a, c, a, b], layer=layer)[2], alone) <= 1e-6, layer
        assert relative(batch[2], musicnn.embed(c, layer=layer)) <= 1e-6, layer


def test_worker_threads_change_nothing_but_speed():
    """On the CPU the patches run on one-thread workers: the rows equal those computed on the calling
    thread alone, the caller keeps its torch thread count, and NumPy's BLAS threads are restored after
    the log-mel."""
    import torch
    from threadpoolctl import threadpool_info
    clip = loud(9.5)
    def blas_threads():
        return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
    musicnn.embed(clip)                  # loads every library the embedding uses
    blas_before = blas_threads()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        on_workers = musicnn.embed(clip)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)  # no workers: the calling thread computes every patch
        inline = musicnn.embed(clip)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(on_workers, inline)
    assert blas_threads() == blas_before


def test_timbral_chunks_change_nothing(monkeypatch):
    """The timbral filters' max over mel positions, taken a chunk of positions at a time, equals the
    max over all positions at once (the same convolution outputs, compared in another order)."""
    import torch
    block = musicnn.network().net.frontend.timbral[1]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, musicnn.N_MELS, 60)).astype(np.float32))
    with torch.inference_mode():
        chunked = block(x)
        monkeypatch.setitem(musicnn.BAND_CHUNK, "cpu", 10**6)
        whole = block(x)
    assert torch.equal(chunked, whole)


def test_short_clips_are_repeat_padded():
    """A clip shorter than one patch gives one row: its log-mel frames repeated to fill the patch."""
    y = tone(1.0, freq=440)                                   # 63 frames, a patch needs 187
    spec = musicnn.log_mel(y)
    padded = musicnn.patches(spec, 187)
    assert padded.shape == (1, 187, 96)
    assert np.array_equal(padded[0], np.concatenate([spec, spec, spec])[:187])
    assert np.array_equal(musicnn.patches(spec[:5], 12)[0], spec[[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]])
    emb = musicnn.embed(y, layer="penultimate")
    assert emb.shape == (1, 200)
    assert np.array_equal(emb, musicnn.embed_patches(padded, layer="penultimate"))
    zero_padded = np.concatenate([spec, np.zeros((187 - len(spec), 96), np.float32)])[None]
    assert not np.allclose(emb, musicnn.embed_patches(zero_padded, layer="penultimate"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # librosa's "n_fft too large" would reach stderr
        assert musicnn.embed(y[:10]).shape == (1, 753)        # a single frame is still a clip


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
    """Empty, silent, stereo and NaN audio raise one-line BadAudioErrors, naming the clip in a batch."""
    with pytest.raises(musicnn.BadAudioError, match="no samples") as info:
        musicnn.embed(np.zeros(0, np.float32))
    assert "\n" not in str(info.value)
    with pytest.raises(musicnn.BadAudioError, match="clip 1: audio is silent"):
        musicnn.embed_batch([tone(3.5), np.zeros(SR, np.float32)])
    with pytest.raises(musicnn.BadAudioError, match="mono"):
        musicnn.embed(np.stack([tone(3.5), tone(3.5)]))
    bad = tone(3.5)
    bad[10] = np.nan
    with pytest.raises(musicnn.BadAudioError, match="NaN"):
        musicnn.embed(bad)


# --- checkpoint reader and converted weights -------------------------------------------------------

def test_crc32c():
    """CRC-32C check value and TensorFlow's masking; lanes of any length agree with a byte loop."""
    assert tfcheckpoint.crc32c(b"123456789") == 0xE3069283
    assert tfcheckpoint.crc32c(b"") == 0
    assert tfcheckpoint.mask(0) == 0xA282EAD8

    def slow(data):
        reg = 0xFFFFFFFF
        for byte in data:
            reg = int(tfcheckpoint._TABLE[(reg ^ byte) & 0xFF]) ^ (reg >> 8)
        return reg ^ 0xFFFFFFFF

    rng = np.random.default_rng(0)
    for n in (1, 3, 4, 17, 1000, 5000, 300_000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tfcheckpoint.crc32c(data) == slow(data), n


def test_reader_reads_every_variable():
    """All 150 variables of the shipped checkpoint, with their shapes, checksums verified."""
    folder = musicnn.package_dir() / "MSD_musicnn"
    tensors = tfcheckpoint.load(str(folder) + os.sep)
    assert len(tensors) == 150
    assert tensors["conv2d/kernel"].shape == (7, 38, 1, 204) and tensors["conv2d/kernel"].dtype == np.float32
    assert tensors["dense_1/kernel"].shape == (200, 50)
    assert tensors["batch_normalization_9/moving_variance"].min() > 0


def _copy_model(tmp_path, name="MSD_musicnn"):
    dest = tmp_path / name
    shutil.copytree(musicnn.package_dir() / name, dest)
    return dest


def _embed_error(folder) -> str:
    musicnn.clear()
    with pytest.raises(musicnn.MusicnnError) as info:
        musicnn.embed(tone(3.5), model_dir=folder)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_corrupted_index(tmp_path):
    """A flipped byte in the index table, or a broken footer, is one line naming the .index file."""
    folder = _copy_model(tmp_path)
    index = folder / ".index"
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    index.write_bytes(bytes(raw))
    message = _embed_error(folder)
    assert str(index) in message and "checksum" in message
    index.write_bytes(bytes(raw[:-8]))
    assert "footer magic" in _embed_error(folder)


def test_truncated_or_altered_data(tmp_path):
    """A truncated or altered weights file is one line naming the data file (never random weights)."""
    folder = _copy_model(tmp_path)
    data = folder / ".data-00000-of-00001"
    intact = data.read_bytes()
    data.write_bytes(intact[: len(intact) // 2])
    message = _embed_error(folder)
    assert str(data) in message and "truncated" in message
    offset = tfcheckpoint.Checkpoint(str(folder) + os.sep).entries["conv2d/kernel"]["offset"]
    altered = bytearray(intact)
    altered[offset + 100] ^= 0x01
    data.write_bytes(bytes(altered))
    message = _embed_error(folder)
    assert str(data) in message and "checksum mismatch for variable 'conv2d/kernel'" in message
    data.unlink()
    assert str(data) in _embed_error(folder)
    assert "no musicnn checkpoint" in _embed_error(tmp_path / "missing")


def test_converted_weights_are_cached_and_checked(tmp_path, monkeypatch):
    """The first load converts into cache_dir()/musicnn/<model>-<key>.pt (with the sources' sha256);
    later loads read it; a changed checkpoint or a tampered file is converted again."""
    import torch
    monkeypatch.setenv("GENREKIT_CACHE_DIR", str(tmp_path / "cache"))
    folder = _copy_model(tmp_path)
    musicnn.clear()
    y = tone(3.5)
    first = musicnn.embed(y, model_dir=folder)
    [converted] = (tmp_path / "cache" / "musicnn").glob("MSD_musicnn-*.pt")
    record = torch.load(converted, weights_only=True)
    assert set(record["sources"]) == {".index", ".data-00000-of-00001"}
    assert record["implementation"] == musicnn.IMPLEMENTATION

    def no_reading(self, name):
        raise AssertionError("read the checkpoint although a valid conversion was cached")
    with monkeypatch.context() as m:
        m.setattr(tfcheckpoint.Checkpoint, "tensor", no_reading)
        musicnn.clear()
        assert np.array_equal(musicnn.embed(y, model_dir=folder), first)

    record["state_dict"]["backend.logits.bias"] += 1.0          # tampered cache file: converted again
    torch.save(record, converted)
    musicnn.clear()
    assert np.array_equal(musicnn.embed(y, model_dir=folder, layer="taggram"),
                          musicnn.embed(y, layer="taggram"))
    data = folder / ".data-00000-of-00001"                        # the checkpoint changed: converted again
    data.write_bytes(data.read_bytes()[:-4])
    assert "truncated" in _embed_error(folder)


def test_model_dir_copy_gives_same_numbers(tmp_path):
    """Pointing at an intact copy of the weights gives the packaged model's numbers."""
    y = tone(3.5)
    assert np.array_equal(musicnn.embed(y, model_dir=_copy_model(tmp_path)), musicnn.embed(y))


# --- no TensorFlow, quiet --------------------------------------------------------------------------

def test_fresh_process_has_no_tensorflow_and_quiet_stderr():
    """A fresh process that embeds a clip never imports TensorFlow and writes nothing to stderr."""
    code = """
        import sys
        import numpy as np
        from genrekit import musicnn
        y = np.random.default_rng(0).standard_normal(16000 * 4).astype("float32") * 0.1
        print(musicnn.embed(y).shape, musicnn.embed(y[:8000], layer="taggram").shape)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")))
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stderr == b"", proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split("\n")[:2] == ["(1, 753) (1, 50)", "[]"]


def test_nothing_on_stderr_in_process(capfd):
    """embed writes nothing to stderr (nbgrader scores a test cell 0 for any)."""
    musicnn.clear()
    musicnn.embed(tone(3.5))
    assert capfd.readouterr().err == ""


# --- feature cache and the extraction script --------------------------------------------------------

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


def _tiny_dataset(root: Path) -> Path:
    """A GTZAN-layout folder: two clips, one shorter than a patch, one silent, one that is not audio."""
    import json
    (root / "disco").mkdir(parents=True)
    (root / "jazz").mkdir()
    sf.write(root / "disco" / "disco.00000.wav", tone(6.5, freq=330), SR, subtype="FLOAT")
    sf.write(root / "jazz" / "jazz.00000.wav", tone(3.5, freq=550), SR, subtype="FLOAT")
    sf.write(root / "jazz" / "jazz.00001.wav", tone(1.0), SR, subtype="FLOAT")
    sf.write(root / "jazz" / "jazz.00002.wav", np.zeros(SR, np.float32), SR, subtype="FLOAT")
    (root / "disco" / "disco.00001.wav").write_text("not audio")
    (root / "dataset.json").write_text(json.dumps({"name": "tiny", "default_split": "s"}))
    (root / "splits" / "s").mkdir(parents=True)
    (root / "splits" / "s" / "train.txt").write_text("disco/disco.00000.wav\njazz/jazz.00001.wav\njazz/jazz.00002.wav\n")
    (root / "splits" / "s" / "test.txt").write_text("jazz/jazz.00000.wav\ndisco/disco.00001.wav\n")
    return root


def test_extract_script(tmp_path, capsys):
    """data_scripts.extract_musicnn fills the cache (short clips padded), skips and lists bad clips,
    fails in one line."""
    from data_scripts import extract_musicnn as script
    root = _tiny_dataset(tmp_path / "tiny")
    cache_dir = tmp_path / "cache"
    args = ["--data", str(root), "--layer", "penultimate", "--cache-dir", str(cache_dir)]
    assert script.main(args) == 0
    out = capsys.readouterr()
    assert "3 clips of tiny:s train+test cached, 2 skipped" in out.out and out.err == ""
    assert "jazz.00002.wav: silent" in out.out and "disco.00001.wav: cannot decode" in out.out
    clips = [c for c in script.data.open_dataset(str(root)).clips("train") if c.genre == "jazz"][:1]
    feats, _, _ = cache.features(script.embedder("MSD_musicnn", "penultimate", 3.0), clips,
                                 cache_dir=cache_dir, progress=False)
    assert feats[0].shape == (1, 200)                          # the 1 s clip: one padded row
    assert len(list(cache_dir.glob("embed-*/*.npy"))) == 3     # nothing recomputed under another key

    assert script.main(["--data", str(root), "--split-subset", "valid", "--cache-dir", str(cache_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "valid" in err
    assert script.main(["--data", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
