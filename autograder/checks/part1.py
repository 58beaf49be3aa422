"""Hidden checks of part 1: the log-mel front end and the baseline CNN."""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks.common import plain, probe
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


LOG_MEL = "genre.features.log_mel"
SHAPE_LENGTHS = (7_777, 3 * config.SAMPLE_RATE + 5)
VALUES_LENGTH = 2 * config.SAMPLE_RATE + 123


def _inputs(seed: int, *shape) -> torch.Tensor:
    """Inputs drawn from a generator of their own: the verdict draws the same ones without the model."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@probe(LOG_MEL)
def check_log_mel_shape(log_mel) -> dict:
    return {f"out_{n}": plain(log_mel(_signal(n, n), config.SAMPLE_RATE)) for n in SHAPE_LENGTHS}


@check_log_mel_shape.verdict
def _log_mel_shape(rec) -> None:
    for n in SHAPE_LENGTHS:
        out = rec[f"out_{n}"]
        expected = (config.N_MELS, 1 + n // config.HOP_LENGTH)
        assert out.shape == expected, f"log_mel of {n} samples: expected shape {expected}, got {out.shape}"
        assert out.dtype == np.float32, "log_mel must return float32"


@probe(LOG_MEL)
def check_log_mel_values(log_mel) -> dict:
    return {"out": plain(log_mel(_signal(VALUES_LENGTH, 7), config.SAMPLE_RATE), np.float64)}


@check_log_mel_values.verdict
def _log_mel_values(rec) -> None:
    out = np.asarray(rec["out"], dtype=np.float64)
    ref = _reference_log_mel(_signal(VALUES_LENGTH, 7))
    assert out.shape == ref.shape, f"log_mel shape {out.shape}, expected {ref.shape}"
    loud = ref > -config.TOP_DB + 10  # ignore the clipped floor, where dB conversions may differ slightly
    err = np.abs(out - ref)[loud].max()
    assert err < 0.05, (f"log_mel differs from the expected log-mel by up to {err:.2f} dB: check the mel parameters "
                        f"(config.N_FFT, HOP_LENGTH, N_MELS, F_MIN, F_MAX), power=2 and dB relative to the maximum")


def _find(module: nn.Module, kind):
    found = [m for m in module.modules() if isinstance(m, kind)]
    return found[0] if found else None


def _layer_facts(layer, prefix: str) -> dict:
    """What a verdict needs to know of a student's convolution or batch norm (None when absent)."""
    if layer is None:
        return {f"{prefix}_found": False}
    facts = {f"{prefix}_found": True}
    for name, value in layer.state_dict().items():
        if name != "num_batches_tracked":
            facts[f"{prefix}.{name}"] = plain(value, np.float64)
    if isinstance(layer, nn.Conv2d):
        facts.update({f"{prefix}_kernel": [int(k) for k in layer.kernel_size],
                      f"{prefix}_padding": layer.padding if isinstance(layer.padding, str) else [int(p) for p in layer.padding],
                      f"{prefix}_has_bias": layer.bias is not None})
    else:
        facts[f"{prefix}_eps"] = float(layer.eps)
    return facts


CONV_BLOCK_X = (3, 4, 12, 18)


@probe("genre.models.ConvBlock")
def check_conv_block(conv_block_cls) -> dict:
    torch.manual_seed(11)
    block = conv_block_cls(4, 7)
    conv, bn = _find(block, nn.Conv2d), _find(block, nn.BatchNorm2d)
    rec = {**_layer_facts(conv, "conv"), **_layer_facts(bn, "bn")}
    if conv is None or bn is None:
        return rec
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    rec.update(_layer_facts(bn, "bn"))
    x = _inputs(12, *CONV_BLOCK_X)
    for training in (True, False):
        block.train(training)
        with torch.no_grad():
            rec[f"out_{training}"] = plain(block(x), np.float64)
    rec.update({f"after.{k}": v for k, v in _layer_facts(bn, "bn").items()})  # running statistics after training
    return rec


@check_conv_block.verdict
def _conv_block(rec) -> None:
    assert rec["conv_found"], "no Conv2d found in ConvBlock (the convolution)"
    assert rec["bn_found"], "no BatchNorm2d found in ConvBlock (the batch norm)"
    assert tuple(rec["conv_kernel"]) == (3, 3) and rec["conv_padding"] in ([1, 1], "same"), \
        "the convolution should be 3x3 with padding 1"
    assert not rec["conv_has_bias"], "the convolution should have no bias (the batch norm has one)"
    x = _inputs(12, *CONV_BLOCK_X).double()
    weight = torch.from_numpy(rec["conv.weight"])
    bn = {k: torch.from_numpy(rec[f"bn.{k}"]) for k in ("weight", "bias")}
    eps = float(rec["bn_eps"])
    for training in (True, False):
        out = torch.from_numpy(rec[f"out_{training}"])
        stats = (None, None) if training else (torch.from_numpy(rec["after.bn.running_mean"]),
                                               torch.from_numpy(rec["after.bn.running_var"]))
        ref = F.max_pool2d(F.relu(F.batch_norm(F.conv2d(x, weight, padding=1), *stats, bn["weight"], bn["bias"],
                                               training=training, eps=eps)), 2)
        assert out.shape == ref.shape, \
            f"ConvBlock(4, 7) on {CONV_BLOCK_X}: expected {tuple(ref.shape)}, got {tuple(out.shape)}"
        assert torch.allclose(out, ref, atol=1e-4), \
            "ConvBlock should compute max_pool(relu(batch_norm(conv(x)))) in this order"


FORWARD_FRAMES = (16, 37, 250)


@probe("genre.models.BaselineCNN")
def check_baseline_forward(baseline_cls) -> dict:
    torch.manual_seed(3)
    model = baseline_cls(n_classes=5, channels=(4, 8, 8, 12), dropout=0.0).eval()
    rec = {"widths": [int(b.out_channels) for b in model.modules() if isinstance(b, nn.Conv2d)]}
    with torch.no_grad():
        for frames in FORWARD_FRAMES:
            rec[f"logits_{frames}"] = plain(model(_inputs(frames, 2, 1, config.N_MELS, frames)), np.float64)
        x = _inputs(48, 4, 1, config.N_MELS, 48)
        rec["forward"] = plain(model(x), np.float64)
        rec["classifier_embed"] = plain(model.classifier(model.embed(x)), np.float64)
    return rec


@check_baseline_forward.verdict
def _baseline_forward(rec) -> None:
    assert list(rec["widths"]) == [4, 8, 8, 12], \
        f"BaselineCNN(channels=(4, 8, 8, 12)) should have 4 convolutions of those widths, got {rec['widths']}"
    for frames in FORWARD_FRAMES:
        shape = rec[f"logits_{frames}"].shape
        assert shape == (2, 5), f"BaselineCNN(n_classes=5) on {frames} frames: expected (2, 5), got {shape}"
    forward, composed = rec["forward"], rec["classifier_embed"]
    assert forward.shape == composed.shape == (4, 5) and np.allclose(forward, composed, atol=1e-5), \
        "forward should be classifier(dropout(embed(x)))"


@probe("genre.models.BaselineCNN")
def check_baseline_embed(baseline_cls) -> dict:
    torch.manual_seed(5)
    model = baseline_cls(n_classes=3, channels=(4, 4, 8, 6), dropout=0.5).eval()
    with torch.no_grad():
        for p in model.input_bn.parameters():
            p.uniform_(0.5, 1.5)
        x = 10 * _inputs(45, 2, 1, config.N_MELS, 45) - 40  # dB-like values
        return {"embed": plain(model.embed(x), np.float64),
                "blocks_mean": plain(model.blocks(model.input_bn(x)).mean(dim=(2, 3)), np.float64)}


@check_baseline_embed.verdict
def _baseline_embed(rec) -> None:
    emb, ref = rec["embed"], rec["blocks_mean"]
    assert emb.shape == ref.shape == (2, 6), \
        f"embed should return (batch, channels[-1]) = (2, 6), got {emb.shape}"
    assert np.allclose(emb, ref, atol=1e-5), \
        "embed should average the last block's output over mel bands and frames (axes 2 and 3), after input_bn"
