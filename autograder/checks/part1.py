"""Hidden checks of part 1: the log-mel front end and the baseline CNN."""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks.common import hidden, plain, plain_tensor
from genrekit import config


def _signal(n: int, seed: int) -> np.ndarray:
    """A chirp plus coloured noise, length n, at an unusual level: inputs students have not seen."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / config.SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (100 + 1500 * t) * t)
    noise = np.cumsum(rng.standard_normal(n)) * 1e-3
    return (0.23 * chirp + noise - noise.mean()).astype(np.float32)


def _reference_log_mel(y: np.ndarray) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=y, sr=config.SAMPLE_RATE, n_fft=config.N_FFT, hop_length=config.HOP_LENGTH, n_mels=config.N_MELS,
        fmin=config.F_MIN, fmax=config.F_MAX, power=2.0)
    return librosa.power_to_db(power, ref=np.max, top_db=config.TOP_DB)


@hidden
def check_log_mel_shape(log_mel) -> None:
    for n in (7_777, 3 * config.SAMPLE_RATE + 5):
        out = plain(log_mel(_signal(n, n), config.SAMPLE_RATE))
        expected = (config.N_MELS, 1 + n // config.HOP_LENGTH)
        assert out.shape == expected, f"log_mel of {n} samples: expected shape {expected}, got {out.shape}"
        assert out.dtype == np.float32, "log_mel must return float32"


@hidden
def check_log_mel_values(log_mel) -> None:
    y = _signal(2 * config.SAMPLE_RATE + 123, 7)
    out = plain(log_mel(y, config.SAMPLE_RATE), np.float64)
    ref = _reference_log_mel(y)
    assert out.shape == ref.shape, f"log_mel shape {out.shape}, expected {ref.shape}"
    loud = ref > -config.TOP_DB + 10  # ignore the clipped floor, where dB conversions may differ slightly
    err = np.abs(out - ref)[loud].max()
    assert err < 0.05, (f"log_mel differs from the expected log-mel by up to {err:.2f} dB: check the mel parameters "
                        f"(config.N_FFT, HOP_LENGTH, N_MELS, F_MIN, F_MAX), power=2 and dB relative to the maximum")


def _find(module: nn.Module, kind, name: str):
    found = [m for m in module.modules() if isinstance(m, kind)]
    assert found, f"no {kind.__name__} found in {type(module).__name__} ({name})"
    return found[0]


@hidden
def check_conv_block(conv_block_cls) -> None:
    torch.manual_seed(11)
    block = conv_block_cls(4, 7)
    conv, bn = _find(block, nn.Conv2d, "the convolution"), _find(block, nn.BatchNorm2d, "the batch norm")
    assert conv.kernel_size == (3, 3) and conv.padding in ((1, 1), "same"), "the convolution should be 3x3 with padding 1"
    assert conv.bias is None, "the convolution should have no bias (the batch norm has one)"
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 4, 12, 18)
    for training in (True, False):
        block.train(training)
        with torch.no_grad():
            out = plain_tensor(block(x))
            stats = (None, None) if training else (bn.running_mean, bn.running_var)
            ref = F.max_pool2d(F.relu(F.batch_norm(F.conv2d(x, conv.weight, padding=1), *stats, bn.weight, bn.bias,
                                                   training=training, eps=bn.eps)), 2)
        assert out.shape == ref.shape, f"ConvBlock(4, 7) on {tuple(x.shape)}: expected {tuple(ref.shape)}, got {tuple(out.shape)}"
        assert torch.allclose(out, ref, atol=1e-5), \
            "ConvBlock should compute max_pool(relu(batch_norm(conv(x)))) in this order"


@hidden
def check_baseline_forward(baseline_cls) -> None:
    torch.manual_seed(3)
    model = baseline_cls(n_classes=5, channels=(4, 8, 8, 12), dropout=0.0).eval()
    blocks = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [b.out_channels for b in blocks] == [4, 8, 8, 12], \
        f"BaselineCNN(channels=(4, 8, 8, 12)) should have 4 convolutions of those widths, got {[b.out_channels for b in blocks]}"
    for frames in (16, 37, 250):
        with torch.no_grad():
            logits = plain_tensor(model(torch.randn(2, 1, config.N_MELS, frames)))
        assert logits.shape == (2, 5), f"BaselineCNN(n_classes=5) on {frames} frames: expected (2, 5), got {tuple(logits.shape)}"
    x = torch.randn(4, 1, config.N_MELS, 48)
    with torch.no_grad():
        assert torch.allclose(plain_tensor(model(x)), plain_tensor(model.classifier(model.embed(x))), atol=1e-5), \
            "forward should be classifier(dropout(embed(x)))"


@hidden
def check_baseline_embed(baseline_cls) -> None:
    torch.manual_seed(5)
    model = baseline_cls(n_classes=3, channels=(4, 4, 8, 6), dropout=0.5).eval()
    with torch.no_grad():
        for p in model.input_bn.parameters():
            p.uniform_(0.5, 1.5)
        x = 10 * torch.randn(2, 1, config.N_MELS, 45) - 40  # dB-like values
        emb = plain_tensor(model.embed(x))
        ref = plain_tensor(model.blocks(model.input_bn(x)).mean(dim=(2, 3)))
    assert emb.shape == ref.shape, f"embed should return (batch, channels[-1]) = {tuple(ref.shape)}, got {tuple(emb.shape)}"
    assert torch.allclose(emb, ref, atol=1e-5), \
        "embed should average the last block's output over mel bands and frames (axes 2 and 3), after input_bn"
