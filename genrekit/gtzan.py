"""Real GTZAN, 8 genres: the fault-filtered split, and preparation of a dataset folder from GTZAN.

The split
---------
:func:`split_lists` returns the "fault-filtered" GTZAN split of Kereliuk, Sturm & Larsen (2015),
"Deep learning and music adversaries" (IEEE Transactions on Multimedia 17(11)), with the blues and rock
clips removed: 353 train / 150 valid / 227 test clips of the 8 genres in ``config.GENRES``. The original
10-genre lists (443/197/290) are public in the dnn-mgr repository (``gtzan/train_filtered.txt``,
``valid_filtered.txt``, ``test_filtered.txt``); torchaudio's GTZAN loader and sota-music-tagging-models
use the same lists. It keeps each artist inside one list and drops GTZAN's known faulty clips (repeats,
distortions, mislabellings). The ``580`` split set is the one the original homework used in its second
year: train = filtered train + filtered test (580 clips), test = filtered valid (150 clips), no valid list.

Preparation
-----------
:func:`prepare` turns a copy of GTZAN into the project's dataset folder (see :mod:`genrekit.data`)::

    OUT/dataset.json                       name "gtzan8", default split "filtered", provenance, problems
    OUT/<genre>/<genre>.NNNNN.wav          16-bit PCM, mono, config.SAMPLE_RATE Hz
    OUT/splits/filtered/{train,valid,test}.txt
    OUT/splits/580/{train,test}.txt

Example::

    from genrekit import gtzan
    report = gtzan.prepare("~/data/gtzan8", source="~/Downloads/genres.tar.gz")
    print(gtzan.format_summary(report))      # clips per genre per split, duration, problems
    report.complete                          # False when a clip of a split list could not be prepared

The source is a GTZAN folder (``genres/<genre>/<genre>.NNNNN.au`` or ``.wav``; the ``genres_original``
and ``Data/genres_original`` layouts of other mirrors too), a ``.tar.gz`` / ``.zip`` archive of one,
or, with no source, a download through mirdata's ``gtzan_genre`` loader (``pip install mirdata``).
Checksums come from mirdata's gtzan_genre index (one MD5 per clip): a downloaded file that differs is an
error; a local copy that differs (mirrors re-encode GTZAN) is counted in the report and still prepared.
Unreadable, missing and truncated clips are skipped and reported by name; other sample rates and
stereo are resampled / downmixed and reported. Re-running skips clips already written correctly.

Expected failures raise :class:`GtzanError` (or its subclasses), whose message is one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

import numpy as np

from genrekit import config
from genrekit.data import AudioError, MANIFEST, SPLITS, load_audio, write_split_lists

DATASET_NAME = "gtzan8"
SPLIT_NAMES = ("filtered", "580")
DEFAULT_SPLIT = "filtered"
DROPPED_GENRES = ("blues", "rock")
SOURCE_RATE = 22_050  # Hz: every GTZAN clip; other rates are reported as problems
SPLIT_SOURCE = ("fault-filtered split of Kereliuk, Sturm & Larsen (2015), 'Deep learning and music "
                "adversaries' (dnn-mgr repository, gtzan/*_filtered.txt), blues and rock removed")
MIRDATA_DATASET = "gtzan_genre"
AUDIO_SUFFIXES = (".wav", ".au")
# Layouts of GTZAN copies, relative to the source folder, searched in this order.
LAYOUTS = ("", "genres", "genres_original", "Data/genres_original", "gtzan_genre/genres",
           "data/genres_original", "GTZAN/genres_original")

# --- the split ------------------------------------------------------------------------------------
# Clip numbers NNNNN of genre/genre.NNNNN.wav per list and genre, as ranges ("5 15-20" = 5, 15..20).
_FILTERED: dict[str, dict[str, str]] = {
    "train": {
        "classical": "30-33 43-48 50-67 80-99",
        "country": "19-26 28-29 65-99",
        "disco": "5 15-20 22-37 39-45 47 49 53-54 56-57 59 61 70 73-74 89",
        "hiphop": "2-25 28-29 31-38 41-42 55-61 77-80",
        "jazz": "0-1 11-24 41 47-72",
        "metal": "2-3 5 21 24 35 46-57 59-66 69 71-72 79-80 84 86 89-99",
        "pop": "2-9 11-12 16-20 23-29 31-36 38-42 44 46 49-50 80 97-99",
        "reggae": "0-2 4 6 9 11-12 14-32 42-45 49-51 54-60 63 69",
    },
    "valid": {
        "classical": "0-10 68-76",
        "country": "0-7 9-18 27 41-42 45 49",
        "disco": "0 2-4 6-14 46 48 52 67-68 72 75 90 95",
        "hiphop": "81-98",
        "jazz": "2-10 25-32",
        "metal": "0-1 6-11 16-20 36-37 68 76-77 81-82",
        "pop": "10 53 55 58-62 81 83-86",
        "reggae": "61-62 70 72 74 76-78 85 92-99",
    },
    "test": {
        "classical": "11-29 34-41 49 77-79",
        "country": "30-40 43-44 46-48 50-51 53-64",
        "disco": "1 21 58 62-66 69 76-88 91-94 96-97 99",
        "hiphop": "0 26-27 30 40 43-45 51-54 62-75 99",
        "jazz": "73-99",
        "metal": "12-15 22-23 25-33 38-39 67 70 73-75 78 83 85 87-88",
        "pop": "0-1 13-14 43 63-66 69-79 82 88-96",
        "reggae": "34-40 46-48 52-53 64-68 71 79 82-84 87-90",
    },
}


def clip_id(genre: str, number: int) -> str:
    """The project's id (path relative to the dataset root) of a GTZAN clip: 'disco/disco.00012.wav'."""
    return f"{genre}/{genre}.{number:05d}.wav"


def _expand(ranges: str) -> list[int]:
    numbers = []
    for part in ranges.split():
        first, _, last = part.partition("-")
        numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


def _filtered() -> dict[str, list[str]]:
    return {subset: [clip_id(g, n) for g in config.GENRES for n in _expand(_FILTERED[subset][g])]
            for subset in SPLITS}


def split_lists(name: str = DEFAULT_SPLIT) -> dict[str, list[str]]:
    """The clip ids of split set ``name`` ('filtered' or '580'): {subset: ['genre/genre.NNNNN.wav', ...]}.

    'filtered' has train (353), valid (150) and test (227); '580' has train (580) and test (150) only.
    Lists are sorted (genre in label order, then clip number).
    """
    lists = _filtered()
    if name == "filtered":
        return lists
    if name == "580":
        return {"train": sorted(lists["train"] + lists["test"]), "test": lists["valid"]}
    raise GtzanError(f"unknown GTZAN split set '{name}' (expected one of {', '.join(SPLIT_NAMES)})")


def all_clips() -> list[str]:
    """Every clip id used by any split set (730 clips), sorted."""
    return sorted({c for lists in map(split_lists, SPLIT_NAMES) for rels in lists.values() for c in rels})


# --- errors and records ---------------------------------------------------------------------------

class GtzanError(Exception):
    """Preparation cannot go on; ``str(err)`` is one line saying why."""


class SourceError(GtzanError):
    """The given GTZAN copy (folder or archive) cannot be used."""


class DownloadError(GtzanError):
    """The download failed: unreachable, mirdata missing, or a checksum that does not match."""


@dataclass(frozen=True)
class Problem:
    """One clip that was not a clean 22050 Hz mono GTZAN file, and what preparation did about it."""
    clip: str     # clip id, e.g. 'jazz/jazz.00054.wav'
    problem: str  # what is wrong, one line
    action: str   # 'skipped', 'resampled', 'downmixed' or 'kept'

    def __str__(self) -> str:
        return f"{self.clip}: {self.problem} -> {self.action}"


@dataclass
class Source:
    """A GTZAN copy ready to read: ``folder`` holds ``<genre>/<genre>.NNNNN.{au,wav}``.

    ``checksums`` maps clip id -> (file name, md5) from mirdata's index, or is None when unknown.
    ``strict``: a checksum mismatch is an error (downloads) rather than a reported count (local copies).
    """
    folder: Path
    origin: str
    checksums: dict[str, tuple[str, str]] | None = None
    checksum_table: str = ""
    strict: bool = False


@dataclass
class ChecksumReport:
    """Result of comparing a source with the checksum table: counts, and the clips that differ."""
    table: str = ""                                  # where the table came from; '' = no table
    matched: int = 0
    differing: list[str] = field(default_factory=list)
    unchecked: int = 0                               # file name differs from the table's (.au vs .wav)

    def summary(self) -> str:
        if not self.table:
            return "checksums: not verified (no checksum table; install mirdata or pass --checksums)"
        text = f"checksums ({self.table}): {self.matched} match, {len(self.differing)} differ"
        if self.differing:
            text += f" (e.g. {', '.join(self.differing[:3])}; a re-encoded mirror?)"
        if self.unchecked:
            text += f", {self.unchecked} not comparable (other file format than the table's)"
        return text


@dataclass
class Report:
    """What :func:`prepare` did. ``complete`` is True when every clip of every split list is there."""
    root: Path
    origin: str
    durations: dict[str, float]            # clip id -> seconds, for every clip now in the folder
    reused: int                            # clips already prepared by an earlier run
    problems: list[Problem]
    missing: list[str]                     # clip ids of the split lists that could not be prepared
    checksums: ChecksumReport

    @property
    def complete(self) -> bool:
        return not self.missing

    def reason(self) -> str:
        """One line: why the preparation is incomplete ('' when complete)."""
        if self.complete:
            return ""
        shown = ", ".join(self.missing[:3]) + (", ..." if len(self.missing) > 3 else "")
        return (f"{len(self.missing)} clip(s) of the split lists could not be prepared ({shown}); "
                f"the rest is in {self.root}, details in {self.root / MANIFEST}")


# --- locating GTZAN in a folder or archive --------------------------------------------------------

def find_genres_folder(path) -> Path:
    """The folder holding GTZAN's genre subfolders inside ``path`` (any of the known ``LAYOUTS``).

    Raises SourceError when ``path`` is missing or no such folder is found.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise SourceError(f"{path}: no such folder")
    for layout in LAYOUTS:
        candidate = path / layout if layout else path
        if any((candidate / genre).is_dir() for genre in config.GENRES):
            return candidate
    raise SourceError(f"{path}: no GTZAN genre folders found (expected e.g. genres/jazz/jazz.00000.au)")


def locate_clip(folder: Path, clip: str, preferred_name: str = "") -> Path | None:
    """The source file of ``clip`` in a genres folder (.wav or .au; ``preferred_name`` first), or None."""
    genre, stem = clip.split("/")[0], PurePosixPath(clip).stem
    names = ([preferred_name] if preferred_name else []) + [stem + s for s in AUDIO_SUFFIXES]
    for name in names:
        candidate = folder / genre / name
        if candidate.is_file():
            return candidate
    return None


_MEMBER = re.compile(r"(^|/)(?P<genre>[a-z]+)/(?P=genre)\.\d{5}\.(au|wav)$")


def _wanted_member(name: str) -> bool:
    match = _MEMBER.search(name)
    return bool(match) and match.group("genre") in config.GENRES


def _check_member_name(archive: Path, name: str) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        raise SourceError(f"{archive}: unsafe path in archive ({name!r}); refusing to extract")


def extract_archive(archive, dest) -> Path:
    """Extract the 8 genres' audio files of a GTZAN ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into ``dest``.

    Only regular files named ``<genre>/<genre>.NNNNN.{au,wav}`` are written. Any member with an absolute
    path or a '..' component makes the whole archive rejected (SourceError, nothing extracted); so does
    an archive that cannot be read. Returns ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise SourceError(f"{archive}: cannot read archive ({type(err).__name__}: {str(err)[:120]})") from None
    return dest


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member_name(archive, member.name)
        for member in members:
            if member.isfile() and _wanted_member(member.name):
                _write_member(dest / member.name, tar.extractfile(member))


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_name(archive, info.filename)
        for info in infos:
            if not info.is_dir() and _wanted_member(info.filename):
                with zf.open(info) as handle:
                    _write_member(dest / info.filename, handle)


def _write_member(target: Path, handle) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(handle, out)


# --- checksums ------------------------------------------------------------------------------------

def md5(path) -> str:
    """Hex MD5 of a file's bytes."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums_from_index(index: dict) -> dict[str, tuple[str, str]]:
    """{clip id: (file name, md5)} for the 8 genres, from a mirdata gtzan_genre index (parsed JSON).

    The index maps track ids ('jazz.00054') to {'audio': [relative path, md5], ...}.
    """
    table = {}
    for track_id, entry in index.get("tracks", {}).items():
        genre, _, number = track_id.partition(".")
        audio = entry.get("audio") or [None, None]
        if genre in config.GENRES and number.isdigit() and audio[0] and audio[1]:
            table[clip_id(genre, int(number))] = (PurePosixPath(audio[0]).name, audio[1])
    return table


def read_checksum_index(path) -> dict[str, tuple[str, str]]:
    """:func:`checksums_from_index` of a mirdata gtzan_genre index JSON file (SourceError if unusable)."""
    path = Path(path).expanduser()
    try:
        table = checksums_from_index(json.loads(path.read_text()))
    except (OSError, ValueError, AttributeError) as err:
        raise SourceError(f"{path}: not a readable mirdata gtzan_genre index ({type(err).__name__})") from None
    if not table:
        raise SourceError(f"{path}: no GTZAN audio checksums in this file")
    return table


def local_mirdata_checksums() -> tuple[dict[str, tuple[str, str]] | None, str]:
    """The checksum table of an installed mirdata whose gtzan_genre index is already on disk.

    Never downloads. Returns (table, description) or (None, '') when mirdata or its index is absent.
    """
    try:
        from mirdata.datasets import gtzan_genre
        index = gtzan_genre.INDEXES[gtzan_genre.INDEXES["default"]]
        path = Path(index.get_path())
    except Exception:  # mirdata absent or laid out differently: no table, verification is optional
        return None, ""
    try:
        return read_checksum_index(path), f"mirdata {index.filename}"
    except SourceError:  # not downloaded yet (or damaged): verification is optional for local copies
        return None, ""


def verify_checksums(source: Source, clips: Iterable[str]) -> ChecksumReport:
    """Compare the source files of ``clips`` with ``source.checksums``.

    A file whose name differs from the table's (e.g. .au where the table lists .wav) is 'unchecked'.
    With ``source.strict`` the first differing file raises DownloadError naming it.
    """
    if not source.checksums:
        return ChecksumReport()
    report = ChecksumReport(table=source.checksum_table or "checksum table")
    for clip in clips:
        if clip not in source.checksums:
            continue
        name, expected = source.checksums[clip]
        path = source.folder / clip.split("/")[0] / name
        if not path.is_file():
            report.unchecked += int(locate_clip(source.folder, clip) is not None)
            continue
        actual = md5(path)
        if actual == expected:
            report.matched += 1
            continue
        if source.strict:
            raise DownloadError(f"checksum mismatch: {path} has MD5 {actual}, expected {expected} "
                                f"({report.table}); the download is corrupt or changed upstream")
        report.differing.append(clip)
    return report


# --- download through mirdata ---------------------------------------------------------------------

def _import_mirdata():
    try:
        import mirdata
    except ImportError:
        raise DownloadError("downloading GTZAN needs mirdata (pip install --no-deps mirdata==1.0.0 "
                            "smart_open chardet Deprecated); or pass --source with a local copy") from None
    return mirdata


def mirdata_download(cache) -> Source:
    """Download GTZAN with mirdata's gtzan_genre loader into ``cache`` (mirdata's data_home).

    mirdata checks the archive's MD5; the per-clip MD5s of its index are checked by :func:`prepare`
    (strict). An existing, valid download in ``cache`` is reused. Raises DownloadError (one line) when
    mirdata is missing, the server cannot be reached, or a checksum does not match.
    """
    mirdata = _import_mirdata()
    dataset = mirdata.initialize(MIRDATA_DATASET, data_home=str(cache))
    remote = dataset.remotes["all"]
    print(f"downloading GTZAN (about 1.2 GB) with mirdata from {remote.url} into {cache}")
    try:
        with _quiet_logging():
            dataset.download(partial_download=["all"])
        checksums = checksums_from_index(dataset._index)  # mirdata's parsed index (downloaded above)
    except Exception as err:  # urllib, mirdata and OS errors: all mean "download failed"
        raise DownloadError(_download_failure(Path(cache), remote, err)) from None
    folder = find_genres_folder(Path(cache) / (remote.destination_dir or ""))
    return Source(folder, f"mirdata {MIRDATA_DATASET} download ({remote.url})", checksums,
                  f"mirdata {MIRDATA_DATASET} index", strict=True)


@contextlib.contextmanager
def _quiet_logging():
    """Mute mirdata's multi-line log messages (its errors become our one-line DownloadError)."""
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _download_failure(cache: Path, remote, err: Exception) -> str:
    """One line describing a failed mirdata download: a checksum mismatch, or why it was unreachable.

    An archive whose checksum does not match is deleted (it is only a cache), so a retry downloads anew.
    """
    archive = cache / (remote.destination_dir or "") / remote.filename
    if archive.is_file() and (actual := md5(archive)) != remote.checksum:
        archive.unlink()
        return (f"checksum mismatch: downloaded {remote.filename} has MD5 {actual}, expected "
                f"{remote.checksum} (deleted; retry, or pass --source with a copy you trust)")
    reason = getattr(err, "reason", None) or err
    first_line = (str(reason).strip().splitlines() or [type(err).__name__])[0][:160]
    return f"cannot download GTZAN from {remote.url} ({type(err).__name__}: {first_line})"


# --- converting one clip --------------------------------------------------------------------------

def _probe(path: Path):
    import soundfile as sf
    try:
        return sf.info(str(path))
    except Exception as err:  # soundfile raises several types; all mean "cannot decode"
        raise AudioError(path, f"cannot decode audio ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None


def convert_clip(src: Path, dst: Path, clip: str, clip_seconds: float = config.CLIP_SECONDS,
                 sr: int = config.SAMPLE_RATE) -> tuple[float, list[Problem]]:
    """Write ``src`` as 16-bit PCM mono at ``sr`` Hz to ``dst``; return (seconds, problems).

    Problems: another rate than GTZAN's 22050 Hz ('resampled'), more than one channel ('downmixed'),
    shorter than 90 % of ``clip_seconds`` ('kept'). Raises AudioError (nothing written) when the file
    cannot be decoded, is empty or silent, or is shorter than half of ``clip_seconds`` (truncated).
    """
    info = _probe(src)
    y = load_audio(src, sr=sr)
    seconds = len(y) / sr
    if seconds < 0.5 * clip_seconds:
        raise AudioError(src, f"truncated ({seconds:.1f} s of ~{clip_seconds:g} s)")
    problems = []
    if info.samplerate != SOURCE_RATE:
        problems.append(Problem(clip, f"sample rate {info.samplerate} Hz (GTZAN is {SOURCE_RATE})", "resampled"))
    if info.channels != 1:
        problems.append(Problem(clip, f"{info.channels} channels", "downmixed"))
    if seconds < 0.9 * clip_seconds:
        problems.append(Problem(clip, f"short ({seconds:.1f} s of ~{clip_seconds:g} s)", "kept"))
    _write_wav(dst, y, sr)
    return seconds, problems


def _write_wav(dst: Path, y: np.ndarray, sr: int) -> None:
    """Write 16-bit PCM wav atomically (encoded in memory: libsndfile fsyncs every file it closes)."""
    import soundfile as sf
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, dst)


def prepared_seconds(path: Path, sr: int = config.SAMPLE_RATE) -> float | None:
    """Duration of an already prepared clip (16-bit mono wav at ``sr``), or None if it is not one."""
    import soundfile as sf
    try:
        info = sf.info(str(path))
    except Exception:  # unreadable or absent: not prepared
        return None
    ok = info.samplerate == sr and info.channels == 1 and info.subtype == "PCM_16" and info.frames > 0
    return info.frames / sr if ok else None


# --- the whole preparation ------------------------------------------------------------------------

def prepare(out, source=None, *, downloader: Callable[[Path], Source] | None = None, checksums=None,
            clips: Iterable[str] | None = None, clip_seconds: float = config.CLIP_SECONDS,
            force: bool = False, progress: bool = True) -> Report:
    """Prepare the gtzan8 dataset folder ``out`` from GTZAN; return a :class:`Report`.

    ``source``: a GTZAN folder or archive; None downloads with ``downloader(cache_dir)`` (default
    :func:`mirdata_download`, cache ``out/.download``). ``checksums``: a mirdata index JSON path or a
    {clip id: (name, md5)} table for a local source (default: an installed mirdata's index, if on disk).
    ``clips``: restrict to these clip ids (default all 730). Clips already written correctly are kept;
    when an earlier run was complete the source is not even opened. ``force``: rewrite every clip.
    Writes audio, split lists (only clips that were prepared) and dataset.json even when incomplete.
    Raises GtzanError (one line) when the source cannot be used at all.
    """
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    wanted = sorted(set(clips) if clips is not None else all_clips())
    report = None if force else _reuse_complete(out, wanted)
    if report is None:
        with tempfile.TemporaryDirectory(prefix=".extract-", dir=out) as scratch:
            src = _open_source(out, source, downloader, checksums, Path(scratch))
            check = verify_checksums(src, wanted)
            report = _convert_all(out, src, wanted, check, clip_seconds, force, progress)
    _write_outputs(report)
    return report


def _reuse_complete(out: Path, wanted: list[str]) -> Report | None:
    """The report of an earlier complete run when every wanted clip is prepared (no source needed)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        checksums = ChecksumReport(**manifest["checksums"])
        origin = manifest["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    durations = {clip: prepared_seconds(out / clip) for clip in wanted}
    if not manifest.get("complete") or None in durations.values():
        return None
    problems = [p for clip_problems in _previous_problems(out).values() for p in clip_problems
                if p.clip in durations]
    return Report(out, origin, durations, len(durations), problems, [], checksums)


def _open_source(out: Path, source, downloader, checksums, scratch: Path) -> Source:
    if source is None:
        return (downloader or mirdata_download)(out / ".download")
    path = Path(source).expanduser()
    if path.is_file():
        folder, origin = find_genres_folder(extract_archive(path, scratch)), f"archive {path}"
    elif path.is_dir():
        folder, origin = find_genres_folder(path), f"folder {path}"
    else:
        raise SourceError(f"{path}: no such file or folder")
    table, description = _checksum_table(checksums)
    return Source(folder, origin, table, description, strict=False)


def _checksum_table(checksums) -> tuple[dict | None, str]:
    if checksums is None:
        return local_mirdata_checksums()
    if isinstance(checksums, dict):
        return checksums, "given checksum table"
    return read_checksum_index(checksums), f"checksum index {Path(checksums).name}"


def _convert_all(out, src, wanted, check, clip_seconds, force, progress) -> Report:
    from genrekit.progress import bar
    previous = _previous_problems(out)
    durations, problems, missing, reused = {}, [], [], 0
    for clip in bar(wanted, desc=f"prepare {DATASET_NAME}", disable=not progress):
        dst = out / clip
        seconds = None if force else prepared_seconds(dst)
        if seconds is not None:
            durations[clip], reused = seconds, reused + 1
            problems.extend(previous.get(clip, []))
            continue
        path = locate_clip(src.folder, clip, (src.checksums or {}).get(clip, ("",))[0])
        if path is None:
            problems.append(Problem(clip, "not found in the source", "skipped"))
            missing.append(clip)
            continue
        try:
            durations[clip], clip_problems = convert_clip(path, dst, clip, clip_seconds)
        except AudioError as err:
            problems.append(Problem(clip, err.reason, "skipped"))
            missing.append(clip)
            continue
        problems.extend(clip_problems)
    return Report(out, src.origin, durations, reused, problems, missing, check)


def _previous_problems(out: Path) -> dict[str, list[Problem]]:
    """Problems recorded by an earlier run, per clip (kept for clips that are reused, not rewritten)."""
    try:
        recorded = json.loads((out / MANIFEST).read_text()).get("problems", [])
        problems = [Problem(p["clip"], p["problem"], p["action"]) for p in recorded]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    grouped: dict[str, list[Problem]] = {}
    for problem in problems:
        if problem.action != "skipped":
            grouped.setdefault(problem.clip, []).append(problem)
    return grouped


def _write_outputs(report: Report) -> None:
    for name in SPLIT_NAMES:
        present = {s: [c for c in rels if c in report.durations] for s, rels in split_lists(name).items()}
        write_split_lists(report.root, name, present)
    (report.root / MANIFEST).write_text(json.dumps(_manifest(report), indent=1) + "\n")


def _manifest(report: Report) -> dict:
    missing = {name: {s: [c for c in rels if c in report.missing] for s, rels in split_lists(name).items()}
               for name in SPLIT_NAMES}
    return {
        "name": DATASET_NAME,
        "default_split": DEFAULT_SPLIT,
        "splits": list(SPLIT_NAMES),
        "split_source": SPLIT_SOURCE,
        "genres": list(config.GENRES),
        "sample_rate": config.SAMPLE_RATE,
        "channels": 1,
        "subtype": "PCM_16",
        "source": report.origin,
        "checksums": asdict(report.checksums),
        "complete": report.complete,
        "clips": len(report.durations),
        "total_seconds": round(sum(report.durations.values()), 2),
        "missing": missing,
        "problems": [asdict(p) for p in report.problems],
        "created_by": "genrekit.gtzan.prepare",
    }


# --- the summary ----------------------------------------------------------------------------------

def format_summary(report: Report) -> str:
    """A table of clips per genre per split set and list, then duration, checksums and problems."""
    short = {g: g[:9] for g in config.GENRES}
    header = f"{'split':<10}{'list':<7}" + "".join(f"{short[g]:>10}" for g in config.GENRES) + f"{'clips':>8}{'missing':>9}"
    lines = [header]
    for name in SPLIT_NAMES:
        for subset, rels in split_lists(name).items():
            present = [c for c in rels if c in report.durations]
            counts = [sum(c.startswith(g + "/") for c in present) for g in config.GENRES]
            lines.append(f"{name:<10}{subset:<7}" + "".join(f"{n:>10}" for n in counts)
                         + f"{len(present):>8}{len(rels) - len(present):>9}")
    hours = sum(report.durations.values()) / 3600
    lines.append(f"{len(report.durations)} clips, {hours:.2f} h of audio at {config.SAMPLE_RATE} Hz mono "
                 f"({report.reused} already prepared) from {report.origin}")
    lines.append(report.checksums.summary())
    lines.append(f"problems: {len(report.problems)}" + ("" if report.problems else " (none)"))
    lines.extend(f"  {p}" for p in report.problems)
    return "\n".join(lines)
