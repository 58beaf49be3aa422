"""Part 1: the log-mel front end.

The network never sees the waveform: it sees a log-compressed mel spectrogram, a picture of how the
energy of the sound is spread over perceptually spaced frequency bands and over time.
"""

from __future__ import annotations

import librosa
import numpy as np

from genrekit import config


def log_mel(y: np.ndarray, sr: int = config.SAMPLE_RATE) -> np.ndarray:
    """Log-mel spectrogram of a mono waveform, in decibels relative to its loudest bin.

    Args:
        y: waveform, shape (samples,), float32, values in [-1, 1], sampled at ``sr`` Hz.
        sr: sample rate in Hz (``config.SAMPLE_RATE`` = 16000).

    Returns:
        float32 array of shape (config.N_MELS, frames) with frames = 1 + samples // config.HOP_LENGTH
        (centred frames), values in dB in [-config.TOP_DB, 0]: 0 dB is the loudest time-frequency
        bin of this clip, anything quieter than -TOP_DB is clipped to -TOP_DB.

    Steps: the mel *power* spectrogram (|STFT|^2 with window config.N_FFT, hop config.HOP_LENGTH,
    mapped onto config.N_MELS mel bands between config.F_MIN and config.F_MAX), then the conversion of
    power to decibels (10 log10) relative to the maximum, limited to config.TOP_DB below it.
    Hint: librosa.feature.melspectrogram and librosa.power_to_db.
    """
    # YOUR CODE HERE
    raise NotImplementedError()
