"""Shared fixtures: every test writes datasets and caches under pytest's tmp folders, never ~/.cache."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the torch import (see the Makefile)

import numpy as np
import pytest
import soundfile as sf



@pytest.fixture(autouse=True, scope="session")
def _private_dirs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GENREKIT_DATA_DIR", str(tmp_path_factory.mktemp("datasets")))
    mp.setenv("GENREKIT_CACHE_DIR", str(tmp_path_factory.mktemp("features")))
    mp.delenv("GENRE_DATASET", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A synthetic dataset of 8 genres x 5 clips x 3 s (2 train, 1 valid, 2 test per genre)."""
    from genrekit import synth
    return synth.build(tmp_path_factory.mktemp("tiny") / "synthetic", clips_per_genre=5, seconds=3.0,
                       seed=0, progress=False)


def write_wav(path, y, sr=22050, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(y, dtype=np.float32), sr, subtype=subtype)
    return path


def tone(seconds=1.0, sr=22050, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# The tests' end-to-end runs use the 8 s-clip build of the synthetic dataset: every part trains and is
# graded for real in half the time of the course's 15 s clips, against thresholds calibrated on it.
TEST_DATA = "synthetic-small"


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """The reference notebooks of every part executed for real, once per test session, on the
    ``synthetic-small`` dataset (the slow end-to-end run that grading tests share; the segment-length sweep is
    skipped). Returns the executed assignment folder, checkpoints included."""
    from autograder import reference
    from autograder.course import ASSIGNMENT
    folder = reference.copy_solution(tmp_path_factory.mktemp("reference") / ASSIGNMENT)
    reference.execute(folder, TEST_DATA, seed=0, env_extra={"GENRE_SWEEP": "0"}, notebooks=reference.notebooks())
    return folder
