"""Hidden checks: the reference passes, plausible mistakes fail with a message, correct variants pass."""

import sys

import numpy as np
import pytest
import torch
from torch import nn

from autograder.checks import part1
from autograder.course import ASSIGNMENT, SOLUTIONS

sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))  # the reference package, for this test module only
from genre import features, models  # noqa: E402

sys.path.pop(0)


def test_reference_passes_every_check():
    part1.check_log_mel_shape(features.log_mel)
    part1.check_log_mel_values(features.log_mel)
    part1.check_conv_block(models.ConvBlock)
    part1.check_baseline_forward(models.BaselineCNN)
    part1.check_baseline_embed(models.BaselineCNN)


class SameBlock(nn.Module):
    """A correct ConvBlock written differently: padding='same', an nn.Sequential, an nn.ReLU module."""
    def __init__(self, i, o):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(i, o, 3, padding="same", bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                                  nn.MaxPool2d(2))

    def forward(self, x):
        return self.body(x)


def test_correct_variants_pass():
    part1.check_conv_block(SameBlock)

    def manual_db(y, sr):
        import librosa
        from genrekit import config
        p = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.N_FFT, hop_length=config.HOP_LENGTH,
                                           n_mels=config.N_MELS)
        db = 10 * np.log10(np.maximum(p, 1e-10) / p.max())
        return np.maximum(db, -80).astype(np.float32)
    part1.check_log_mel_values(manual_db)


def test_a_failure_shows_the_message_not_the_check():
    class NoRelu(SameBlock):
        def __init__(self, i, o):
            super().__init__(i, o)
            self.body[2] = nn.Identity()
    with pytest.raises(AssertionError) as err:
        part1.check_conv_block(NoRelu)
    assert "pool(relu(batch_norm(conv(x))))" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert [f.name for f in __import__("traceback").extract_tb(err.value.__traceback__)][-1] == "run"

    def crashing(y, sr):
        raise ValueError("boom\nsecond line")
    with pytest.raises(AssertionError, match="your code raised ValueError: boom$"):
        part1.check_log_mel_shape(crashing)
