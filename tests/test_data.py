import numpy as np
import pytest

from genrekit import config, data
from conftest import tone, write_wav


def test_load_audio_resamples_and_downmixes(tmp_path):
    stereo = np.stack([tone(2.0, 44100), tone(2.0, 44100)], axis=1)
    path = write_wav(tmp_path / "s.wav", stereo, sr=44100)
    y = data.load_audio(path)
    assert y.dtype == np.float32 and y.shape == (2 * config.SAMPLE_RATE,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * config.SAMPLE_RATE / len(y) - 440) < 2


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage that is not audio"), "cannot decode"),
    (lambda p: p.write_bytes(b""), "cannot decode"),
    (lambda p: write_wav(p, np.zeros(0)), "no audio samples"),
    (lambda p: write_wav(p, np.zeros(22050)), "silent"),
])
def test_bad_files_name_the_file(tmp_path, make, reason):
    path = tmp_path / "jazz" / "jazz.00054.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    with pytest.raises(data.AudioError) as err:
        data.load_audio(path)
    message = str(err.value)
    assert str(path) in message and reason in message and "\n" not in message


def test_dataset_index(tiny_synth):
    ds = data.Dataset(tiny_synth)
    assert ds.spec == "synthetic-5x3s-seed0:default", "a build of other sizes is named by them (its own thresholds)"
    clip = ds.clips("train")[0]
    assert clip.path.is_file() and clip.label == config.GENRE_TO_LABEL[clip.genre]
    assert ds.labels("test").dtype == np.int64 and len(ds.labels("test")) == 16
    assert "synthetic-5x3s-seed0:default" in repr(ds)


def test_synthetic_builds_are_named_by_their_arguments():
    """Thresholds and reference outputs are kept per dataset name: builds that differ never share one."""
    from genrekit import synth
    assert synth.name_of(26, 15, 0) == "synthetic" and synth.name_of(26, 8.0, 0) == "synthetic-small"
    assert synth.name_of(26, 15, 1) == "synthetic-26x15s-seed1" and synth.name_of(12, 2.5, 0) == "synthetic-12x2.5s-seed0"
    assert set(synth.PRESETS) <= set(data.NAMED)


def test_open_dataset_by_name_builds_synthetic_once(tmp_path, monkeypatch):
    calls = []
    from genrekit import synth
    real_build = synth.build
    monkeypatch.setitem(synth.PRESETS, "synthetic", {"clips_per_genre": 4, "seconds": 1.0, "seed": 0})
    monkeypatch.setattr(synth, "build", lambda out, **kw: calls.append(out) or real_build(out, progress=False, **kw))
    ds = data.open_dataset("synthetic", data_dir=tmp_path)
    assert ds.root == tmp_path / "synthetic" and len(calls) == 1
    data.open_dataset("synthetic", data_dir=tmp_path)
    assert len(calls) == 1, "the synthetic dataset was rebuilt although it existed"
    assert data.open_dataset(str(tmp_path / "synthetic")).root == tmp_path / "synthetic"
    # one made by an older generator (or with other sizes) is rebuilt, not silently reused
    monkeypatch.setattr(synth, "SYNTH_VERSION", synth.SYNTH_VERSION + 1)
    data.open_dataset("synthetic", data_dir=tmp_path)
    assert len(calls) == 2


def test_dataset_errors_are_one_line(tmp_path, tiny_synth):
    with pytest.raises(data.DatasetError, match="dataset.json: not found"):
        data.Dataset(tmp_path)
    with pytest.raises(data.DatasetError, match="no split set 'nope'"):
        data.Dataset(tiny_synth, "nope")
    with pytest.raises(data.DatasetError, match="unknown dataset"):
        data.open_dataset("imagenet", data_dir=tmp_path)
    with pytest.raises(data.DatasetError, match="make data-gtzan"):
        data.open_dataset("gtzan8", data_dir=tmp_path)


def test_split_list_with_unknown_genre(tmp_path, tiny_synth):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    (root / "splits" / "default" / "test.txt").write_text("blues/blues.00000.wav\n")
    with pytest.raises(data.DatasetError, match=r"test.txt:1: 'blues/blues.00000.wav' is not one of the 8 genres"):
        data.Dataset(root).clips("test")


def test_load_skips_and_reports_bad_clips(tmp_path, tiny_synth, capsys):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    ds = data.Dataset(root)
    broken = ds.clips("test")[2]
    broken.path.write_bytes(b"not audio")
    with pytest.raises(data.AudioError, match=broken.path.name):
        ds.load("test", progress=False)
    waves, labels, kept = ds.load("test", skip_bad=True, progress=False)
    assert len(waves) == len(labels) == len(kept) == 15 and broken not in kept
    assert f"skipped: {broken.path}" in capsys.readouterr().out


def test_names_never_resolve_to_the_current_folder(tmp_path, tiny_synth, monkeypatch):
    import shutil

    from genrekit import synth
    monkeypatch.setitem(synth.PRESETS, "synthetic", {"clips_per_genre": 5, "seconds": 3.0, "seed": 0})  # no rebuild
    shutil.copytree(tiny_synth, tmp_path / "cwd" / "synthetic")
    shutil.copytree(tiny_synth, tmp_path / "data" / "synthetic")
    monkeypatch.chdir(tmp_path / "cwd")
    assert data.open_dataset("synthetic", data_dir=tmp_path / "data").root == tmp_path / "data" / "synthetic"
    assert data.open_dataset("./synthetic").root == __import__("pathlib").Path("./synthetic")


def test_resampling_never_leaves_minus_one_to_one(tmp_path):
    """A full-scale square wave overshoots when resampled (Gibbs); loaded audio stays in [-1, 1]."""
    t = np.arange(22050) / 22050
    path = write_wav(tmp_path / "square.wav", 0.999 * np.sign(np.sin(2 * np.pi * 220 * t)), sr=22050)
    y = data.load_audio(path)
    assert len(y) == config.SAMPLE_RATE and np.abs(y).max() <= 1.0
