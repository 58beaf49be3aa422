"""Dataset index and audio loading for any GTZAN-layout folder.

A dataset folder looks like real GTZAN plus split lists and a small manifest::

    ROOT/dataset.json                      {"name": ..., "default_split": ..., ...}
    ROOT/<genre>/<genre>.NNNNN.wav         audio (.wav or .au), any rate, mono or stereo
    ROOT/splits/<split>/train.txt          one path per line, relative to ROOT
    ROOT/splits/<split>/valid.txt          (optional: some split sets have no validation list)
    ROOT/splits/<split>/test.txt

Example::

    from genrekit import data
    ds = data.open_dataset("synthetic")          # builds the synthetic set on first use
    clips = ds.clips("train")                    # list[Clip]
    y = data.load_audio(clips[0].path)           # float32 mono at config.SAMPLE_RATE

A missing, unreadable, empty or silent file raises :class:`AudioError` naming the file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrekit import config


def warm_up_librosa() -> None:
    """Run once, on 3 s of noise, each librosa function the homework relies on (mel spectrogram, dB,
    time stretch, resampling): numba compiles them here, or loads them from its cache, instead of inside
    a run that is timed."""
    import librosa
    y = np.random.default_rng(0).standard_normal(3 * config.SAMPLE_RATE).astype(np.float32)
    librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=config.SAMPLE_RATE, n_mels=config.N_MELS), ref=np.max)
    librosa.effects.time_stretch(y, rate=1.1)
    librosa.resample(y, orig_sr=22_050, target_sr=config.SAMPLE_RATE)  # GTZAN's own rate to ours

SPLITS = ("train", "valid", "test")
NAMED = ("synthetic", "synthetic-small", "gtzan8")  # dataset names resolved in config.data_dir(), never in the current folder
MANIFEST = "dataset.json"


class AudioError(Exception):
    """A clip that cannot be used; ``str(err)`` is one line naming the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(Exception):
    """A dataset folder, split list or dataset name that cannot be used (one-line message)."""


@dataclass(frozen=True)
class Clip:
    """One clip of a dataset: where it is, its genre and its integer label (index into GENRES)."""
    path: Path
    genre: str
    label: int
    rel: str  # path relative to the dataset root, e.g. "disco/disco.00012.wav" (the clip's id)

    @property
    def id(self) -> str:
        return self.rel


# --- audio ----------------------------------------------------------------------------------------

def load_audio(path, sr: int = config.SAMPLE_RATE, silence_db: float = -60.0) -> np.ndarray:
    """Read an audio file as float32 mono at ``sr`` Hz, shape (samples,), values in [-1, 1].

    Raises AudioError (one line, naming the file) when the file is missing, cannot be decoded, has no
    samples, or is silent (peak below ``silence_db`` dBFS).
    """
    import soundfile as sf  # imported here: keeps `import genrekit` light
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types; all mean "cannot decode"
        raise AudioError(path, f"cannot decode audio ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    if y.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty file)")
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak <= 10 ** (silence_db / 20):
        raise AudioError(path, f"silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS)")
    if file_sr != sr:
        import librosa
        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
        y = np.clip(y, -1.0, 1.0)  # resampling can overshoot a full-scale peak slightly
    return np.ascontiguousarray(y, dtype=np.float32)


# --- dataset index --------------------------------------------------------------------------------

def _genre_of(rel: str) -> str:
    return Path(rel).parts[0] if len(Path(rel).parts) > 1 else Path(rel).name.split(".")[0]


class Dataset:
    """Index of a GTZAN-layout folder and one of its split sets (see the module docstring)."""

    def __init__(self, root, split: str | None = None):
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise DatasetError(f"{manifest_path}: not found (not a dataset folder; build one with "
                               f"`genrekit synth` or `make data-gtzan`)")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{manifest_path}: not valid JSON ({err})") from None
        self.name = self.manifest.get("name", self.root.name)
        available = sorted(p.name for p in (self.root / "splits").glob("*") if p.is_dir())
        self.split = split or self.manifest.get("default_split") or (available[0] if available else "")
        if self.split not in available:
            raise DatasetError(f"{self.root}: no split set '{self.split}' (available: {', '.join(available) or 'none'})")
        self._lists: dict[str, list[Clip]] = {}

    @property
    def spec(self) -> str:
        """The name that selects this dataset and split set, e.g. ``gtzan8:filtered``."""
        return f"{self.name}:{self.split}"

    def has(self, subset: str) -> bool:
        return (self.root / "splits" / self.split / f"{subset}.txt").is_file()

    def clips(self, subset: str) -> list[Clip]:
        """The clips of ``subset`` ('train', 'valid' or 'test') in list order."""
        if subset not in SPLITS:
            raise DatasetError(f"unknown subset '{subset}' (expected one of {', '.join(SPLITS)})")
        if subset not in self._lists:
            list_path = self.root / "splits" / self.split / f"{subset}.txt"
            if not list_path.is_file():
                raise DatasetError(f"{list_path}: split set '{self.split}' has no '{subset}' list")
            clips = []
            for n, line in enumerate(list_path.read_text().splitlines(), 1):
                rel = line.strip()
                if not rel or rel.startswith("#"):
                    continue
                genre = _genre_of(rel)
                if genre not in config.GENRE_TO_LABEL:
                    raise DatasetError(f"{list_path}:{n}: '{rel}' is not one of the {config.NUM_CLASSES} genres")
                clips.append(Clip(self.root / rel, genre, config.GENRE_TO_LABEL[genre], rel))
            self._lists[subset] = clips
        return list(self._lists[subset])

    def labels(self, subset: str) -> np.ndarray:
        """Integer labels of ``subset``, shape (clips,), int64."""
        return np.array([c.label for c in self.clips(subset)], dtype=np.int64)

    def load(self, subset: str, skip_bad: bool = False, progress: bool = True):
        """Load every clip of ``subset``: returns (list of waveforms, labels (clips,), clips kept).

        A bad clip raises AudioError, or with ``skip_bad=True`` is reported (one line, stdout) and left
        out of all three results.
        """
        from genrekit.progress import bar
        waves, kept = [], []
        for clip in bar(self.clips(subset), desc=f"load {subset}", disable=not progress):
            try:
                waves.append(load_audio(clip.path))
            except AudioError as err:
                if not skip_bad:
                    raise
                print(f"skipped: {err}")
                continue
            kept.append(clip)
        return waves, np.array([c.label for c in kept], dtype=np.int64), kept

    def __repr__(self) -> str:
        counts = {s: len(self.clips(s)) for s in SPLITS if self.has(s)}
        return f"Dataset({self.spec!r}, root={str(self.root)!r}, clips={counts})"


def write_split_lists(root, split: str, lists: dict[str, list[str]]) -> None:
    """Write ``ROOT/splits/<split>/<subset>.txt`` for each subset in ``lists`` (paths relative to ROOT)."""
    folder = Path(root) / "splits" / split
    folder.mkdir(parents=True, exist_ok=True)
    for subset, rels in lists.items():
        if subset not in SPLITS:
            raise DatasetError(f"unknown subset '{subset}'")
        (folder / f"{subset}.txt").write_text("".join(f"{r}\n" for r in rels))


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'gtzan8:filtered' -> ('gtzan8', 'filtered'); 'synthetic' -> ('synthetic', None)."""
    name, _, split = spec.partition(":")
    return name, (split or None)


def _current_synthetic(folder: Path, name: str) -> bool:
    """Whether the synthetic dataset in ``folder`` is what today's generator builds for ``name``."""
    from genrekit import synth
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    preset = synth.PRESETS[name]
    return (manifest.get("version") == synth.SYNTH_VERSION and manifest.get("name") == name
            and manifest.get("seed") == preset["seed"] and manifest.get("clips_per_genre") == preset["clips_per_genre"]
            and manifest.get("seconds") == preset["seconds"])


def open_dataset(spec: str | None = None, data_dir=None) -> Dataset:
    """Open a dataset by name (``synthetic``, ``gtzan8``, ``gtzan8:580``) or by folder path.

    ``spec`` defaults to ``$GENRE_DATASET`` or ``synthetic``. Named datasets live in
    ``config.data_dir()/<name>``; the synthetic ones (``synthetic``, and ``synthetic-small`` with 8 s
    clips for quick runs) are built there on first use.
    """
    import os
    spec = spec or os.environ.get(config.DATASET_ENV) or config.DEFAULT_DATASET
    name, split = parse_spec(spec)
    if name not in NAMED:  # anything but a dataset name is a folder
        as_path = Path(name).expanduser()
        if (as_path / MANIFEST).is_file():
            return Dataset(as_path, split)
    root = Path(data_dir) if data_dir else config.data_dir()
    folder = root / name
    synthetic = name in NAMED and name.startswith("synthetic")
    if synthetic and (folder / MANIFEST).is_file() and not _current_synthetic(folder, name):
        print(f"rebuilding the {name} dataset in {folder} (made by an older generator)")
        from genrekit import synth
        synth.build(folder, **synth.PRESETS[name])
    if not (folder / MANIFEST).is_file():
        if synthetic:
            from genrekit import synth
            print(f"building the {name} dataset in {folder} (first use)")
            synth.build(folder, **synth.PRESETS[name])
        elif name == "gtzan8":
            raise DatasetError(f"{folder}: GTZAN not prepared; run `make data-gtzan DATA={root}/gtzan8` first")
        else:
            raise DatasetError(f"unknown dataset '{spec}' (expected {', '.join(NAMED)}, with ':split', or a dataset folder)")
    return Dataset(folder, split)


def quiet_warnings() -> None:
    """Silence Python warnings (nbgrader scores a test cell 0 when it writes to stderr)."""
    warnings.filterwarnings("ignore")
