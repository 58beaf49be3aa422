"""The one configuration module: labels, audio and feature constants, locations.

Every other module imports its constants from here (``from genrekit import config``); nothing is
duplicated. Each cached feature file and checkpoint records the values it was made with
(:func:`feature_config`), so a change here invalidates caches and is caught when loading checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path

# --- labels -------------------------------------------------------------------------------------
GENRES: tuple[str, ...] = (  # label order: index i is class i everywhere (targets, logits, plots)
    "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
)
NUM_CLASSES: int = len(GENRES)
GENRE_TO_LABEL: dict[str, int] = {g: i for i, g in enumerate(GENRES)}

# --- audio --------------------------------------------------------------------------------------
SAMPLE_RATE: int = 16_000     # Hz; every clip is resampled to this on load (musicnn's rate too)
CLIP_SECONDS: float = 30.0    # length of a GTZAN clip; the synthetic set defaults to shorter clips

# --- log-mel front end (part 1) -------------------------------------------------------------------
N_FFT: int = 1024             # STFT window, samples (64 ms at 16 kHz)
HOP_LENGTH: int = 512         # STFT hop, samples (32 ms); 30 s -> 938 frames
N_MELS: int = 96              # mel bands (as musicnn)
F_MIN: float = 0.0            # Hz, lowest mel band edge
F_MAX: float = SAMPLE_RATE / 2  # Hz, highest mel band edge (Nyquist)
TOP_DB: float = 80.0          # dB range kept below the peak by the dB conversion

# --- segments (part 2) ----------------------------------------------------------------------------
SEGMENT_SECONDS: float = 4.0  # segment length; 3-5 s is the useful range for GTZAN
SEGMENT_HOP_SECONDS: float = 2.0  # hop between segment starts (50 % overlap)


def seconds_to_frames(seconds: float) -> int:
    """Log-mel frames spanned by ``seconds`` of audio (4.0 s -> 125 frames of 32 ms), at least 1."""
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return max(1, int(round(seconds * SAMPLE_RATE / HOP_LENGTH)))

# --- locations ------------------------------------------------------------------------------------
# Datasets and feature caches live outside the repository; override with environment variables.
DATA_DIR_ENV = "GENREKIT_DATA_DIR"        # folder holding dataset folders (synthetic/, gtzan8/)
CACHE_DIR_ENV = "GENREKIT_CACHE_DIR"      # folder holding cached features
DATASET_ENV = "GENRE_DATASET"             # which dataset the notebooks use, e.g. "synthetic", "gtzan8:filtered"
DEFAULT_DATASET = "synthetic"


def data_dir() -> Path:
    """Folder holding the dataset folders: ``$GENREKIT_DATA_DIR`` or ``~/.cache/genrekit/data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "genrekit" / "data")


def cache_dir() -> Path:
    """Folder of the feature cache: ``$GENREKIT_CACHE_DIR`` or ``~/.cache/genrekit/features``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "genrekit" / "features")


def feature_config() -> dict:
    """The audio/feature constants a log-mel feature depends on, as stored in caches and checkpoints."""
    return {
        "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": N_MELS,
        "f_min": F_MIN, "f_max": F_MAX, "top_db": TOP_DB,
    }
