"""Real-GTZAN preparation (genrekit.gtzan, data_scripts.prepare_gtzan), tested without the network.

A fake GTZAN tree with the real clip names (all 730 clips of the split, 0.5 s synthetic tones, .au and
.wav, blues and rock present, a few clips outside the split) is built once; its messy clips are a
corrupt jazz.00054.wav, a missing reggae.00099, a truncated classical.00030.wav, and stereo / 44.1 kHz
files. Downloads are faked by replacing the downloader or urllib's urlretrieve (what mirdata calls).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_scripts import prepare_gtzan
from genrekit import config, gtzan
from genrekit.data import Dataset, open_dataset

SECONDS = 0.5          # length of the fake clips (prepare is told clip_seconds=SECONDS)
CORRUPT = "jazz/jazz.00054.wav"
ABSENT = "reggae/reggae.00099.wav"
TRUNCATED = "classical/classical.00031.wav"
STEREO = "disco/disco.00005.wav"
RATE_44K = "pop/pop.00010.wav"
STEREO_44K = "metal/metal.00002.wav"
OUTSIDE_SPLIT = "jazz/jazz.00033.wav"   # a GTZAN clip the fault-filtered split leaves out
# Per-genre counts of the README of the shared split lists.
README_COUNTS = {
    "train": [48, 45, 42, 47, 43, 44, 41, 43],
    "valid": [20, 23, 22, 18, 17, 20, 13, 17],
    "test": [31, 30, 29, 27, 27, 27, 30, 26],
}


# --- building fake GTZAN copies -------------------------------------------------------------------

def tone(clip: str, sr: int, channels: int = 1) -> np.ndarray:
    """A short deterministic tone + noise, shape (samples, channels), different for every clip."""
    number = int(Path(clip).stem.split(".")[1])
    t = np.arange(int(SECONDS * sr)) / sr
    rng = np.random.default_rng(number)
    y = 0.3 * np.sin(2 * np.pi * (110 + 7 * number) * t) + 0.01 * rng.standard_normal(t.size)
    return np.stack([y * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def write_clip(folder: Path, clip: str, suffix: str, sr: int = 22_050, channels: int = 1) -> Path:
    path = folder / Path(clip).with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # encoded in memory: libsndfile fsyncs every file it closes (slow)
    sf.write(buffer, tone(clip, sr, channels), sr, format="AU" if suffix == ".au" else "WAV", subtype="PCM_16")
    path.write_bytes(buffer.getvalue())
    return path


def build_tree(genres: Path, clips) -> Path:
    """Write ``clips`` (ids) into ``genres``: even numbers as .au, odd as .wav, 22050 Hz mono."""
    for clip in clips:
        number = int(Path(clip).stem.split(".")[1])
        write_clip(genres, clip, ".au" if number % 2 == 0 else ".wav")
    return genres


def build_messy_tree(genres: Path) -> Path:
    """All 730 split clips plus blues, rock and an out-of-split clip, with the messy clips described above."""
    build_tree(genres, [c for c in gtzan.all_clips() if c not in (ABSENT, CORRUPT)])
    build_tree(genres, ["blues/blues.00000.wav", "blues/blues.00001.wav", "rock/rock.00002.wav", OUTSIDE_SPLIT])
    for clip in (STEREO, RATE_44K, STEREO_44K):
        for old in (genres / clip).parent.glob(Path(clip).stem + ".*"):
            old.unlink()
    write_clip(genres, STEREO, ".wav", channels=2)
    write_clip(genres, RATE_44K, ".wav", sr=44_100)
    write_clip(genres, STEREO_44K, ".au", sr=44_100, channels=2)
    (genres / CORRUPT).write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    truncated = gtzan.locate_clip(genres, TRUNCATED)
    truncated.write_bytes(truncated.read_bytes()[: int(truncated.stat().st_size * 0.3)])
    return genres


def file_table(genres: Path, clips) -> dict:
    """A checksum table {clip id: (file name, md5)} of the files as they are in ``genres``."""
    table = {}
    for clip in clips:
        path = gtzan.locate_clip(genres, clip)
        table[clip] = (path.name, hashlib.md5(path.read_bytes()).hexdigest())
    return table


def subset(n_per_genre: int = 2) -> list[str]:
    """A few train clips per genre (fast preparations)."""
    train = gtzan.split_lists("filtered")["train"]
    return [c for g in config.GENRES for c in [c for c in train if c.startswith(g + "/")][:n_per_genre]]


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = prepare_gtzan.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """The messy fake tree prepared once through the CLI: (source, out root, exit code, stdout, stderr)."""
    base = tmp_path_factory.mktemp("gtzan")
    source = build_messy_tree(base / "copy" / "genres")
    out = base / "data" / "gtzan8"
    with pytest.MonkeyPatch.context() as mp:  # no checksum table, even where mirdata's index is on disk
        mp.setattr(gtzan, "local_mirdata_checksums", lambda: (None, ""))
        code, stdout, stderr = run_cli(["--out", str(out), "--source", str(source.parent), "--no-progress",
                                        "--clip-seconds", str(SECONDS)])
    return source, out, code, stdout, stderr


# --- the encoded split ------------------------------------------------------------------------------

def test_filtered_split_matches_the_published_counts():
    """353/150/227 clips, per-genre counts as in the split's README, 730 distinct clips, 8 genres only."""
    lists = gtzan.split_lists("filtered")
    for subset_name, counts in README_COUNTS.items():
        got = [sum(c.startswith(g + "/") for c in lists[subset_name]) for g in config.GENRES]
        assert got == counts, subset_name
    all_ids = [c for rels in lists.values() for c in rels]
    assert len(all_ids) == len(set(all_ids)) == 730, "a clip is in two lists"
    assert {c.split("/")[0] for c in all_ids} == set(config.GENRES)
    assert not any(c.startswith(("blues/", "rock/")) for c in all_ids)
    assert all(c == gtzan.clip_id(c.split("/")[0], int(c.split(".")[1])) for c in all_ids)
    assert CORRUPT in lists["train"], "the mirrors' unreadable jazz.00054 is a train clip"


def test_580_variant_is_train_plus_test_and_valid_as_test():
    """The second-year split: train = filtered train + test (580), test = filtered valid (150), no valid."""
    filtered, v580 = gtzan.split_lists("filtered"), gtzan.split_lists("580")
    assert set(v580) == {"train", "test"}
    assert (len(v580["train"]), len(v580["test"])) == (580, 150)
    assert set(v580["train"]) == set(filtered["train"]) | set(filtered["test"])
    assert v580["test"] == filtered["valid"]
    assert gtzan.SPLIT_NAMES == ("filtered", "580")
    with pytest.raises(gtzan.GtzanError, match="unknown GTZAN split set"):
        gtzan.split_lists("random")


# --- the full preparation of a messy copy -----------------------------------------------------------

def test_incomplete_copy_exits_nonzero_with_one_line(messy):
    """The missing and the unreadable clip make the run incomplete: exit 1, one line naming them."""
    _, _, code, stdout, stderr = messy
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: incomplete:")
    assert "3 clip(s)" in lines[0] and "Traceback" not in stderr


def test_output_layout_and_manifest(messy):
    """dataset.json, both split sets, 8 genre folders only (no blues/rock, no out-of-split clip)."""
    _, out, *_ = messy
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["name"] == "gtzan8" and manifest["default_split"] == "filtered"
    assert manifest["sample_rate"] == config.SAMPLE_RATE and manifest["complete"] is False
    assert "Kereliuk" in manifest["split_source"] and manifest["source"].startswith("folder ")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted([*config.GENRES, "splits"])
    assert sorted(p.name for p in (out / "splits").iterdir()) == ["580", "filtered"]
    assert not (out / OUTSIDE_SPLIT).exists()
    assert len(list(out.glob("*/*.wav"))) == 730 - 3
    assert not list(out.rglob("*.part")) and not list(out.glob(".extract-*"))


def test_dataset_reads_what_was_written(messy, monkeypatch):
    """genrekit.data reads both split sets; missing clips are left out of the lists, not listed broken."""
    _, out, *_ = messy
    ds = Dataset(out)
    assert ds.spec == "gtzan8:filtered"
    assert [len(ds.clips(s)) for s in ("train", "valid", "test")] == [353 - 2, 150 - 1, 227]
    assert CORRUPT not in {c.rel for c in ds.clips("train")}
    monkeypatch.setenv(config.DATA_DIR_ENV, str(out.parent))
    assert open_dataset("gtzan8").spec == "gtzan8:filtered"
    ds580 = open_dataset("gtzan8:580")
    assert not ds580.has("valid") and (len(ds580.clips("train")), len(ds580.clips("test"))) == (580 - 2, 150 - 1)
    waves, labels, kept = ds.load("test", progress=False)
    assert len(waves) == 227 and labels.dtype == np.int64
    assert abs(len(waves[0]) - SECONDS * config.SAMPLE_RATE) <= 2


def test_written_audio_is_16bit_mono_at_the_project_rate(messy):
    """Every written clip, including the stereo and 44.1 kHz ones, is PCM_16 mono at SAMPLE_RATE."""
    _, out, *_ = messy
    for path in out.glob("*/*.wav"):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (config.SAMPLE_RATE, 1, "PCM_16"), path
    for clip in (STEREO, RATE_44K, STEREO_44K):
        assert abs(sf.info(str(out / clip)).frames - SECONDS * config.SAMPLE_RATE) <= 2


def test_problems_are_reported_by_name_with_the_action(messy):
    """Summary and dataset.json name each messy clip with what was done; missing clips are recorded."""
    _, out, _, stdout, _ = messy
    expected = {
        CORRUPT: ("cannot decode", "skipped"),
        ABSENT: ("not found", "skipped"),
        TRUNCATED: ("truncated", "skipped"),
        STEREO: ("2 channels", "downmixed"),
        RATE_44K: ("44100 Hz", "resampled"),
    }
    for clip, (problem, action) in expected.items():
        assert any(clip in line and problem in line and line.endswith(f"-> {action}") for line in stdout.splitlines()), clip
    manifest = json.loads((out / "dataset.json").read_text())
    recorded = {(p["clip"], p["action"]) for p in manifest["problems"]}
    assert {(STEREO_44K, "resampled"), (STEREO_44K, "downmixed"), (CORRUPT, "skipped")} <= recorded
    assert manifest["missing"]["filtered"] == {"train": [TRUNCATED, CORRUPT], "valid": [ABSENT], "test": []}
    assert manifest["missing"]["580"] == {"train": [TRUNCATED, CORRUPT], "test": [ABSENT]}
    assert "blues" not in stdout and "checksums: not verified" in stdout


def test_summary_table_counts_clips_per_genre(messy):
    """The table has one row per split set and list with per-genre counts, clips and missing."""
    _, _, _, stdout, _ = messy
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in stdout.splitlines() if line.startswith(("filtered", "580"))}
    assert rows[("filtered", "valid")] == [str(n) for n in README_COUNTS["valid"][:-1]] + ["16", "149", "1"]
    assert rows[("580", "train")][-2:] == ["578", "2"]
    assert "727 clips" in stdout


def test_rerun_reuses_prepared_clips_and_keeps_their_problems(messy):
    """A second run writes nothing new, reports the same problems, and is still incomplete."""
    source, out, *_ = messy
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*.wav")}
    report = gtzan.prepare(out, source, clip_seconds=SECONDS, progress=False)
    assert report.reused == 727 and not report.complete
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*.wav")} == before
    assert {(p.clip, p.action) for p in report.problems} >= {(STEREO, "downmixed"), (RATE_44K, "resampled"), (CORRUPT, "skipped")}


# --- sources: archives, layouts, checksums ----------------------------------------------------------

def test_targz_archive_source(tmp_path):
    """A genres.tar.gz (with blues) is extracted to a temporary folder and prepared completely."""
    clips = subset()
    build_tree(tmp_path / "src" / "genres", clips + ["blues/blues.00000.wav"])
    archive = tmp_path / "genres.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "genres", arcname="genres")
    report = gtzan.prepare(tmp_path / "out", archive, clips=clips, clip_seconds=SECONDS, progress=False)
    assert report.complete and sorted(report.durations) == sorted(clips)
    assert report.origin == f"archive {archive}"
    assert not (tmp_path / "out" / "blues").exists() and not list((tmp_path / "out").glob(".extract-*"))


def test_zip_archive_with_genres_original_layout(tmp_path):
    """Another mirror's layout: a zip holding Data/genres_original/<genre>/<genre>.NNNNN.wav."""
    clips = subset(1)
    build_tree(tmp_path / "src" / "Data" / "genres_original", clips)
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "src").rglob("*.*"):
            zf.write(path, path.relative_to(tmp_path / "src").as_posix())
    report = gtzan.prepare(tmp_path / "out", archive, clips=clips, clip_seconds=SECONDS, progress=False)
    assert report.complete and len(report.durations) == len(clips)


def test_archive_with_path_traversal_is_rejected(tmp_path):
    """A member named ../x or /x rejects the whole archive with a one-line SourceError."""
    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.wav"
    payload.write_bytes(b"x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="genres/jazz/jazz.00000.wav")
        tar.add(payload, arcname="../../escaped/jazz/jazz.00001.wav")
    with pytest.raises(gtzan.SourceError, match="unsafe path in archive") as err:
        gtzan.prepare(tmp_path / "out", archive, clips=subset(1), progress=False)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.rglob("escaped"))


def test_local_copy_with_differing_checksums_is_counted_and_prepared(tmp_path):
    """A re-encoded mirror: checksums differ for some files; reported as a count, still prepared."""
    clips = subset()
    genres = build_tree(tmp_path / "genres", clips)
    table = file_table(genres, clips)
    for clip in clips[:3]:
        table[clip] = (table[clip][0], "0" * 32)
    report = gtzan.prepare(tmp_path / "out", genres, checksums=table, clips=clips, clip_seconds=SECONDS, progress=False)
    assert report.complete
    assert (report.checksums.matched, sorted(report.checksums.differing)) == (len(clips) - 3, sorted(clips[:3]))
    assert f"{len(clips) - 3} match, 3 differ" in gtzan.format_summary(report)


def test_checksum_index_file_in_mirdata_format(tmp_path):
    """--checksums reads a mirdata gtzan_genre index (track id -> audio [path, md5]); blues ignored."""
    index = {"version": "1.0", "tracks": {
        "jazz.00054": {"audio": ["gtzan_genre/genres/jazz/jazz.00054.wav", "a" * 32]},
        "blues.00000": {"audio": ["gtzan_genre/genres/blues/blues.00000.wav", "b" * 32]},
    }}
    path = tmp_path / "gtzan_genre_index_1.0.json"
    path.write_text(json.dumps(index))
    assert gtzan.read_checksum_index(path) == {CORRUPT: ("jazz.00054.wav", "a" * 32)}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(gtzan.SourceError, match="bad.json"):
        gtzan.read_checksum_index(tmp_path / "bad.json")


# --- downloads ----------------------------------------------------------------------------------------

def fake_downloader(genres: Path, table: dict):
    """A downloader that 'downloads' by pointing at a local tree, with a strict checksum table."""
    def download(cache: Path) -> gtzan.Source:
        cache.mkdir(parents=True, exist_ok=True)
        return gtzan.Source(genres, "fake download", table, "fake index", strict=True)
    return download


def test_download_with_matching_checksums(tmp_path):
    """A download whose files match the index is prepared completely; the 8 genres only."""
    clips = subset()
    genres = build_tree(tmp_path / "genres", clips + ["rock/rock.00000.wav"])
    report = gtzan.prepare(tmp_path / "out", downloader=fake_downloader(genres, file_table(genres, clips)),
                           clips=clips, clip_seconds=SECONDS, progress=False)
    assert report.complete and report.checksums.matched == len(clips) and not report.checksums.differing


def test_download_with_a_checksum_mismatch_is_a_one_line_error(tmp_path):
    """One downloaded file differing from the index stops the preparation, naming the file."""
    clips = subset()
    genres = build_tree(tmp_path / "genres", clips)
    table = file_table(genres, clips)
    table[clips[5]] = (table[clips[5]][0], "f" * 32)
    with pytest.raises(gtzan.DownloadError) as err:
        gtzan.prepare(tmp_path / "out", downloader=fake_downloader(genres, table), clips=clips, progress=False)
    message = str(err.value)
    assert "\n" not in message and "checksum mismatch" in message and table[clips[5]][0] in message


def test_mirdata_download_unreachable(tmp_path, monkeypatch):
    """mirdata's real download path with the network unreachable: one line naming the URL."""
    pytest.importorskip("mirdata")

    def unreachable(url, filename=None, reporthook=None, data=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlretrieve", unreachable)
    code, stdout, stderr = run_cli(["--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 1 and "Traceback" not in stderr and "mirdata failed" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: cannot download GTZAN from http")
    assert "name resolution" in stderr.strip().splitlines()[-1]


def test_mirdata_download_checksum_mismatch(tmp_path, monkeypatch):
    """mirdata's real download path, the server sending other bytes: one line naming genres.tar.gz."""
    pytest.importorskip("mirdata")

    def wrong_bytes(url, filename=None, reporthook=None, data=None):
        Path(filename).write_bytes(b"not the GTZAN archive")
        return filename, None
    monkeypatch.setattr(urllib.request, "urlretrieve", wrong_bytes)
    with pytest.raises(gtzan.DownloadError) as err:
        gtzan.prepare(tmp_path / "out", progress=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith("checksum mismatch") and "genres.tar.gz" in message
    assert not list((tmp_path / "out").rglob("genres.tar.gz")), "the corrupt download is not kept"


def test_download_without_mirdata_says_how_to_install(monkeypatch):
    """No mirdata installed: a one-line error saying what to install or to pass --source."""
    import builtins
    real_import = builtins.__import__

    def no_mirdata(name, *args, **kwargs):
        if name == "mirdata" or name.startswith("mirdata."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_mirdata)
    with pytest.raises(gtzan.DownloadError, match="needs mirdata.*--source"):
        gtzan.mirdata_download(Path("unused"))


# --- the command line ---------------------------------------------------------------------------------

def test_cli_complete_run_exits_zero_and_reruns_without_the_source(tmp_path):
    """A complete copy: exit 0 and a summary; a second run reuses everything, even with the source gone."""
    source = build_tree(tmp_path / "copy" / "genres_original", gtzan.all_clips())
    argv = ["--out", str(tmp_path / "gtzan8"), "--source", str(source.parent), "--clip-seconds", str(SECONDS)]
    code, stdout, stderr = run_cli(argv)
    assert (code, stderr) == (0, "") and "problems: 0 (none)" in stdout and "730 clips" in stdout
    assert json.loads((tmp_path / "gtzan8" / "dataset.json").read_text())["complete"] is True
    for path in source.rglob("*.*"):
        path.unlink()
    code, stdout, stderr = run_cli(argv)
    assert (code, stderr) == (0, "") and "(730 already prepared)" in stdout
    assert Dataset(tmp_path / "gtzan8", "580").labels("train").shape == (580,)


def test_cli_bad_source_is_a_one_line_error(tmp_path):
    """A source that does not exist or holds no GTZAN: exit 1 and one line, no traceback."""
    code, _, stderr = run_cli(["--out", str(tmp_path / "out"), "--source", str(tmp_path / "nowhere")])
    assert code == 1 and stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such file or folder"
    code, _, stderr = run_cli(["--out", str(tmp_path / "out"), "--source", str(tmp_path)])
    assert code == 1 and "no GTZAN genre folders found" in stderr and len(stderr.strip().splitlines()) == 1
