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

    Steps: the mel *power* spectrogram (|STFT|^2 with a Hann window of config.N_FFT samples, hop
    config.HOP_LENGTH, frames centred on their sample with zero padding at the edges, mapped onto
    config.N_MELS mel bands between config.F_MIN and config.F_MAX with librosa's default Slaney mel
    scale and area-normalised filters), then power to decibels, 10 log10(power / max power), clipped
    at config.TOP_DB below 0.
    Hint: librosa.feature.melspectrogram and librosa.power_to_db (their defaults are the ones above).
    """
    # YOUR CODE HERE
    raise NotImplementedError()
