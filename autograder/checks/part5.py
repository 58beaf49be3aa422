"""Hidden checks of part 5: finetuning an ImageNet ResNet on log-mels.

One check per idea; each builds its own inputs (a seeded random-init ResNet in torchvision's layout
stands in for the ImageNet one) and, where a stub works on a model, the checker's own model, frozen
by the checker, so that a mistake in one stub never costs the points of another:

    check_adapt_first_conv      adapt_resnet: conv1's RGB kernels summed into one channel, rest kept
    check_adapt_head            adapt_resnet: a fresh Linear(512, n_classes) head
    check_log_mel_scaler        LogMelScaler: one mean and one std, buffers, (x - mean) / std
    check_fit_scaler            fit_scaler: statistics of the training split only
    check_set_trainable         set_trainable: which parameters train in each stage
    check_batchnorm_frozen      freeze_batchnorm_stats: frozen batch norms in eval mode, stats unchanged
    check_param_groups_members  param_groups: every trainable parameter once, no frozen one
    check_param_groups_lr       param_groups: head at head_lr, the rest at backbone_lr

Each check is a probe and a verdict (:mod:`autograder.checks.common`). The probe calls the student's
code and records what came back as plain values: conv1's kernel and its output on a fixed input, the
head's sizes, flags and first rows, an exact digest of every other tensor of the adapted network, the
scaler's buffers and outputs, the names of the parameters that require gradients after each stage, the
mode and running statistics of every batch norm, the parameter names and learning rate of each group.
The verdict rebuilds the seeded networks and inputs itself and compares: the expected kernel, the kept
layers' digests and the pretrained running statistics come from its own copy, never from the record.
A step of the student's code that raises is recorded and reported when the verdict reaches it, so the
messages keep their order (a wrong first stage is reported before a crash in the second).

Checkpoint level (the grader's measurement, :mod:`autograder.pipelines_finetune`):
:func:`verify_checkpoint` says in one line what differs (a ResNet34 where the code builds a ResNet18, a
head of the wrong size, a weights record whose hash does not match its name) and which starting weights
the thresholds must use. It runs in the measurement child on the student's class, in no hidden cell, so
it is not split into a probe and a verdict.
"""

from __future__ import annotations

import collections
import functools
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks.common import failure_message, hidden, plain, probe
from genrekit import checkpoint, config, resnet

ADAPT = "genre.finetune.adapt_resnet"
SCALER = "genre.finetune.LogMelScaler"
FIT_SCALER = "genre.finetune.fit_scaler"
SET_TRAINABLE = "genre.finetune.set_trainable"
FREEZE_BN = "genre.finetune.freeze_batchnorm_stats"
PARAM_GROUPS = "genre.finetune.param_groups"


# --- the checker's own pieces (never released) -------------------------------------------------------

def _plain(x) -> torch.Tensor:
    """The checker's own tensor (or a record's array) as a plain float64 torch tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return torch.from_numpy(np.array(x, dtype=np.float64))


def _imagenet_like(seed: int, arch: str = "resnet18") -> nn.Module:
    """A 3-channel, 1000-class ResNet with seeded weights and non-trivial batch-norm statistics.

    The seed is set just before the network is built, with no student code in between: the probe and
    the verdict (another process) build the same network."""
    torch.manual_seed(seed)
    net = resnet.resnet(arch)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


class _Scaler(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def fit(self, x):
        x = torch.as_tensor(np.asarray(x.detach() if isinstance(x, torch.Tensor) else x, dtype=np.float64))
        self.std.fill_(float(x.std(correction=0)))
        self.mean.fill_(float(x.mean()))
        return self

    def forward(self, x):
        return (x - self.mean) / self.std


class _Model(nn.Module):
    """The layout of ResNetClassifier (scaler + adapted net), built by the checker alone."""

    def __init__(self, seed: int, n_classes: int = config.NUM_CLASSES):
        super().__init__()
        net = _imagenet_like(seed)
        rgb = net.conv1.weight.detach()
        net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        with torch.no_grad():
            net.conv1.weight.copy_(rgb.sum(dim=1, keepdim=True))
        net.fc = nn.Linear(resnet.EMBEDDING_DIM, n_classes)
        self.scaler, self.net = _Scaler(), net

    def forward(self, x):
        return self.net(self.scaler(x))


@functools.lru_cache(maxsize=1)
def _model_names() -> tuple[str, ...]:
    """The parameter names of a _Model, in order: the verdicts' own list (the seed does not matter)."""
    return tuple(n for n, _ in _Model(seed=0).named_parameters())


_TRAINABLE = {  # stage -> does parameter `name` (of a _Model) train?
    "head": lambda name: name.startswith("net.fc."),
    "last": lambda name: name.startswith(("net.fc.", "net.layer4.")),
    "all": lambda name: True,
}


def _freeze(model: nn.Module, stage: str) -> nn.Module:
    for name, p in model.named_parameters():
        p.requires_grad_(_TRAINABLE[stage](name))
    return model


def _names(names, n: int = 2) -> str:
    names = sorted(map(str, names))
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _step(rec: dict, key: str, fn) -> bool:
    """Probe: run one step of the student's code; its facts (a dict) go into the record, or, when it
    raises, its one-line failure under ``key + "_error"``, reported by the verdict when it reaches that
    step (a mistake in an earlier step is reported first, as when the check ran in one piece)."""
    try:
        facts = fn()
    except Exception as err:
        rec[f"{key}_error"] = failure_message(err, key)
        return False
    rec.update(facts or {})
    return True


def _reached(rec: dict, key: str) -> None:
    """Verdict: at step ``key``; if the student's code raised there, that is the failure."""
    error = rec.get(f"{key}_error")
    if error is not None:
        raise AssertionError(str(error)[:300] or f"{key} failed")


def _digest(value) -> int:
    """An exact digest of a tensor's values as float32 (-0.0 counted as 0.0): the sum, modulo 2**64, of
    each value's bits times an odd weight drawn from a generator seeded by the number of values. Any one
    changed value changes it; the probe and the verdict compute it alike, whatever their threads."""
    bits = (plain(value, np.float32).ravel() + np.float32(0)).view(np.uint32).astype(np.uint64)
    weights = np.random.default_rng(bits.size).integers(0, 2**64, bits.size, dtype=np.uint64) | np.uint64(1)
    return int((bits * weights).sum(dtype=np.uint64))


# --- 5.1 adapt_resnet --------------------------------------------------------------------------------

FIRST_CONV_X = (2, 1, 24, 32)


def _first_conv_input() -> torch.Tensor:
    return torch.randn(*FIRST_CONV_X, generator=torch.Generator().manual_seed(5))


def _kept(state: dict) -> dict:
    """The entries of a ResNet state_dict that adapt_resnet must leave alone."""
    return {k: v for k, v in state.items() if not str(k).startswith(("conv1.", "fc."))}


@probe(ADAPT)
def check_adapt_first_conv(adapt_resnet) -> dict:
    out = adapt_resnet(_imagenet_like(seed=51), 5)
    rec = {"is_module": isinstance(out, nn.Module), "type": type(out).__name__[:100]}
    if not rec["is_module"]:
        return rec
    conv = getattr(out, "conv1", None)
    rec["conv_found"] = isinstance(conv, nn.Conv2d)
    if not rec["conv_found"]:
        return rec
    rec.update(in_channels=int(conv.in_channels), weight=plain(conv.weight, np.float64))

    def forward():
        with torch.no_grad():
            return {"out": plain(conv(_first_conv_input()), np.float64)}

    def kept():
        state = _kept(out.state_dict())
        return {"kept_names": [str(k)[:200] for k in state],
                "kept_shapes": [[int(d) for d in v.shape] for v in state.values()],
                "kept_digests": np.array([_digest(v) for v in state.values()], dtype=np.uint64)}

    _step(rec, "out", forward)
    _step(rec, "kept", kept)
    return rec


@check_adapt_first_conv.verdict
def _adapt_first_conv(rec) -> None:
    assert rec["is_module"], f"adapt_resnet should return the adapted network, got {rec['type']}"
    assert rec["conv_found"], "adapt_resnet: net.conv1 should still be an nn.Conv2d"
    assert rec["in_channels"] == 1, \
        f"adapt_resnet: conv1 should take 1 input channel (a log-mel), got {rec['in_channels']}"
    w = _plain(rec["weight"])
    assert tuple(w.shape) == (64, 1, 7, 7), f"adapt_resnet: conv1's kernel should be (64, 1, 7, 7), got {tuple(w.shape)}"
    net = _imagenet_like(seed=51)  # the verdict's own copy of the network the probe adapted
    rgb = _plain(net.conv1.weight)  # (64, 3, 7, 7)
    summed = rgb.sum(dim=1, keepdim=True)
    if not torch.allclose(w, summed, atol=1e-5):
        if torch.allclose(w, rgb.mean(dim=1, keepdim=True), atol=1e-5):
            raise AssertionError("adapt_resnet: conv1's kernels are the MEAN of the RGB kernels: sum them, so that a "
                                 "grey input x gives the response of (x, x, x) and the pretrained scale is kept")
        if any(torch.allclose(w, rgb[:, c:c + 1], atol=1e-5) for c in range(3)):
            raise AssertionError("adapt_resnet: conv1's kernels are those of ONE colour channel: sum the three "
                                 "RGB kernels (one channel throws two thirds of each pretrained filter away)")
        raise AssertionError("adapt_resnet: conv1's kernels should be the pretrained RGB kernels summed over the colour "
                             "axis; yours are not (a new, randomly initialised convolution discards them)")
    _reached(rec, "out")
    got = _plain(rec["out"])
    ref = F.conv2d(_first_conv_input().double().expand(-1, 3, -1, -1), rgb, stride=2, padding=3)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-4), \
        "adapt_resnet: conv1 should keep the stem's stride 2 and padding 3 (a grey x must act as (x, x, x))"
    _reached(rec, "kept")
    names, shapes, digests = rec["kept_names"], rec["kept_shapes"], np.asarray(rec["kept_digests"]).reshape(-1)
    assert len(names) == len(shapes) == len(digests), "adapt_resnet: the adapted network's state_dict could not be read"
    state = {str(n): (tuple(s), int(d)) for n, s, d in zip(names, shapes, digests)}
    changed = [k for k, v in _kept(net.state_dict()).items() if state.get(k) != (tuple(v.shape), _digest(v))]
    assert not changed, (f"adapt_resnet must keep the pretrained layers other than conv1 and fc; changed or missing: "
                         f"{_names(changed)}")


HEAD_CASES = ((5, 52), (None, 53))  # (n_classes passed, or None for the default; seed of the network)
HEAD_ROWS = 16  # rows of the new head's weight in the record (a head left with 1000 rows stays small)


def _head_input() -> torch.Tensor:
    return torch.randn(3, resnet.EMBEDDING_DIM, generator=torch.Generator().manual_seed(7))


@probe(ADAPT)
def check_adapt_head(adapt_resnet) -> dict:
    rec = {}
    for n_classes, seed in HEAD_CASES:
        net = _imagenet_like(seed)
        found = {}

        def adapt():
            out = adapt_resnet(net, n_classes) if n_classes else adapt_resnet(net)
            fc = getattr(out, "fc", None) if isinstance(out, nn.Module) else None
            found["fc"] = fc
            facts = {f"{seed}.is_module": isinstance(out, nn.Module), f"{seed}.type": type(out).__name__[:100],
                     f"{seed}.fc_found": isinstance(fc, nn.Linear)}
            if isinstance(fc, nn.Linear):
                facts.update({f"{seed}.in_features": int(fc.in_features), f"{seed}.out_features": int(fc.out_features),
                              f"{seed}.has_bias": fc.bias is not None,
                              f"{seed}.weight": plain(fc.weight, np.float64)[:HEAD_ROWS],
                              f"{seed}.requires_grad": [bool(p.requires_grad) for p in fc.parameters()]})
            return facts

        def logits():
            with torch.no_grad():
                return {f"{seed}.logits": plain(found["fc"](_head_input()), np.float64)}

        if not _step(rec, f"{seed}.adapt", adapt):
            break
        if found["fc"] is not None and isinstance(found["fc"], nn.Linear):
            _step(rec, f"{seed}.logits", logits)
    return rec


@check_adapt_head.verdict
def _adapt_head(rec) -> None:
    for n_classes, seed in HEAD_CASES:
        _reached(rec, f"{seed}.adapt")
        fact = {k[len(f"{seed}."):]: v for k, v in rec.items() if k.startswith(f"{seed}.")}
        assert fact["is_module"], f"adapt_resnet should return the adapted network, got {fact['type']}"
        want = n_classes or config.NUM_CLASSES
        assert fact["fc_found"], "adapt_resnet: net.fc should be an nn.Linear (the new head)"
        fan_in, fan_out = fact["in_features"], fact["out_features"]
        assert fan_out != 1000 or want == 1000, \
            "adapt_resnet: the head still has the 1000 ImageNet outputs: replace net.fc by a new nn.Linear(512, n_classes)"
        assert (fan_in, fan_out) == (resnet.EMBEDDING_DIM, want), \
            (f"adapt_resnet(net{', ' + str(n_classes) if n_classes else ''}): the head should be Linear(512, {want}), "
             f"got Linear({fan_in}, {fan_out})" + ("" if n_classes else " (default n_classes=config.NUM_CLASSES)"))
        _reached(rec, f"{seed}.logits")
        shape = tuple(np.shape(fact["logits"]))
        assert shape == (3, want), f"adapt_resnet: the head maps (3, 512) to {shape}, expected (3, {want})"
        assert fact["has_bias"], "adapt_resnet: the new head should have a bias, as nn.Linear has by default"
        w = _plain(fact["weight"])
        assert tuple(w.shape) == (want, resnet.EMBEDDING_DIM), \
            f"adapt_resnet: the head's weight is {tuple(w.shape)}, expected ({want}, {resnet.EMBEDDING_DIM})"
        old = _plain(_imagenet_like(seed).fc.weight)  # the verdict's own copy of the ImageNet classifier
        assert not torch.allclose(w, old[:want]), \
            "adapt_resnet: the head reuses rows of the ImageNet classifier: genres need a FRESH nn.Linear(512, n_classes)"
        flags = list(fact["requires_grad"])
        assert flags and all(flag is True for flag in flags), \
            "adapt_resnet: the new head's parameters should require gradients"


# --- 5.2 scaling -------------------------------------------------------------------------------------

def _db_like(shape, mean, std, seed) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, shape).astype(np.float32)


def _scaler_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fit set, the set it scales, and the second fit set (numpy) of check_log_mel_scaler."""
    return (_db_like((6, 1, config.N_MELS, 40), -37.2, 11.3, 1), _db_like((3, 1, config.N_MELS, 33), -20.0, 5.0, 2),
            _db_like((4, 1, config.N_MELS, 21), 3.0, 2.0, 3))


@probe(SCALER)
def check_log_mel_scaler(scaler_cls) -> dict:
    x, xt, x2 = _scaler_inputs()
    xt = torch.from_numpy(xt)
    scaler = scaler_cls()
    scaler.fit(torch.from_numpy(x))
    state = scaler.state_dict()
    rec = {"state_keys": sorted(str(k)[:100] for k in state)}
    rec.update({k: plain(state[k], np.float64) for k in ("mean", "std") if k in state})

    def forward():
        with torch.no_grad():
            return {"y": plain(scaler(xt), np.float64)}

    def fresh():
        new = scaler_cls()
        new.load_state_dict(state)
        with torch.no_grad():
            return {"fresh_y": plain(new(xt), np.float64)}

    def refit():
        scaler.fit(x2)  # numpy input, refit
        return {"refit_mean": plain(scaler.state_dict()["mean"], np.float64)}

    for key, step in (("y", forward), ("fresh_y", fresh), ("refit_mean", refit)):
        if not _step(rec, key, step):
            break
    return rec


@check_log_mel_scaler.verdict
def _log_mel_scaler(rec) -> None:
    keys = list(rec["state_keys"])
    assert {"mean", "std"} <= set(keys), \
        (f"LogMelScaler should store mean and std as buffers (register_buffer) so the checkpoint carries them; "
         f"its state_dict holds {keys or 'nothing'}")
    mean, std = np.asarray(rec["mean"], dtype=np.float64), np.asarray(rec["std"], dtype=np.float64)
    assert mean.size == 1 and std.size == 1, \
        (f"LogMelScaler: one mean and one std over all values (a log-mel is one channel), got shapes "
         f"{tuple(mean.shape)} and {tuple(std.shape)}")
    x, xt, x2 = _scaler_inputs()
    x64 = x.astype(np.float64)
    mean, std = float(mean.reshape(-1)[0]), float(std.reshape(-1)[0])
    assert abs(mean - x64.mean()) < 1e-3 * abs(x64.mean()), \
        f"LogMelScaler.fit: mean {mean:.3f}, expected the mean of all training values {x64.mean():.3f}"
    assert abs(std - x64.std()) < 1e-3 * x64.std(), \
        f"LogMelScaler.fit: std {std:.3f}, expected the standard deviation of all training values {x64.std():.3f}"
    _reached(rec, "y")
    y = _plain(rec["y"])
    ref = (_plain(xt) - x64.mean()) / x64.std()
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-3), \
        "LogMelScaler.forward should return (x - mean) / std with the fitted statistics, same shape as x"
    _reached(rec, "fresh_y")
    fresh = _plain(rec["fresh_y"])
    assert fresh.shape == y.shape and torch.allclose(fresh, y, atol=1e-5), \
        "LogMelScaler: a new scaler loading the state_dict should scale like the fitted one (buffers, not attributes)"
    _reached(rec, "refit_mean")
    refit = np.asarray(rec["refit_mean"], dtype=np.float64)
    assert refit.size == 1 and abs(float(refit.reshape(-1)[0]) - x2.astype(np.float64).mean()) < 1e-2, \
        "LogMelScaler.fit should accept a numpy array and replace the statistics of an earlier fit"


def _fit_splits(case: int) -> dict:
    """The splits of case 0 (tensors: train, valid, test) and case 1 (numpy: test, train) of check_fit_scaler."""
    train = _db_like((7, 1, config.N_MELS, 30), -31.0, 9.0, 11)
    valid = _db_like((3, 1, config.N_MELS, 30), -12.0, 4.0, 12)
    test = _db_like((3, 1, config.N_MELS, 30), -55.0, 15.0, 13)
    if case == 0:
        return {"train": torch.from_numpy(train), "valid": torch.from_numpy(valid), "test": torch.from_numpy(test)}
    return {"test": test, "train": train}


FIT_CASES = (0, 1)


@probe(FIT_SCALER)
def check_fit_scaler(fit_scaler) -> dict:
    rec = {}
    for case in FIT_CASES:
        model = _Model(seed=54)

        def fit():
            fit_scaler(model, _fit_splits(case))  # fresh arrays: a fit that changes them in place spoils nothing
            return {f"{case}.mean": plain(model.scaler.mean, np.float64),
                    f"{case}.std": plain(model.scaler.std, np.float64)}

        if not _step(rec, f"case{case}", fit):
            break
    return rec


@check_fit_scaler.verdict
def _fit_scaler(rec) -> None:
    for case in FIT_CASES:
        _reached(rec, f"case{case}")
        mean, std = np.asarray(rec[f"{case}.mean"], dtype=np.float64), np.asarray(rec[f"{case}.std"], dtype=np.float64)
        assert mean.size == 1 and std.size == 1, "fit_scaler: model.scaler should hold one mean and one std"
        mean, std = float(mean.reshape(-1)[0]), float(std.reshape(-1)[0])
        splits = {k: np.asarray(v) for k, v in _fit_splits(case).items()}
        t = splits["train"].astype(np.float64)
        if abs(mean - t.mean()) < 1e-2 and abs(std - t.std()) < 1e-2:
            continue
        if abs(mean - splits["test"].astype(np.float64).mean()) < 1e-2:
            raise AssertionError("fit_scaler: the scaling statistics come from the TEST split: fit on splits['train'] "
                                 "only, or the test data leaks into the model")
        both = np.concatenate([np.ravel(v) for v in splits.values()]).astype(np.float64)
        if abs(mean - both.mean()) < 1e-2:
            raise AssertionError("fit_scaler: the scaling statistics come from all splits together: fit on "
                                 "splits['train'] only, or validation and test data leak into the model")
        raise AssertionError(f"fit_scaler: model.scaler holds mean {mean:.2f}, std {std:.2f}; expected the training "
                             f"split's {t.mean():.2f}, {t.std():.2f}")


# --- 5.3 freezing ------------------------------------------------------------------------------------

SET_STAGES = ("head", "last", "all", "head", "all", "last")


@probe(SET_TRAINABLE)
def check_set_trainable(set_trainable) -> dict:
    model = _Model(seed=55)
    rec = {}
    for i, stage in enumerate(SET_STAGES):
        def run():
            set_trainable(model, stage)
            return {f"on{i}": [n for n, p in model.named_parameters() if p.requires_grad]}

        if not _step(rec, f"stage{i}", run):
            break
    return rec


@check_set_trainable.verdict
def _set_trainable(rec) -> None:
    what = {"head": "only net.fc trains (the backbone stays frozen while the new head learns)",
            "last": "only net.fc and net.layer4 train", "all": "every parameter trains"}
    names = _model_names()
    for i, stage in enumerate(SET_STAGES):
        _reached(rec, f"stage{i}")
        on = {str(n) for n in rec[f"on{i}"]}
        want = {n for n in names if _TRAINABLE[stage](n)}
        extra, missing = on - want, want - on
        assert not extra, (f"set_trainable(model, {stage!r}): {what[stage]}, but {len(extra)} more tensors are "
                           f"trainable ({_names(extra)})")
        assert not missing, (f"set_trainable(model, {stage!r}): {what[stage]}, but {len(missing)} of those tensors are "
                             f"frozen ({_names(missing)})")


BN_STAGES = ("head", "last", "all")


def _bn_stats(m: nn.Module) -> np.ndarray:
    """A batch norm's running mean and variance, one float32 vector."""
    return np.concatenate([plain(m.running_mean, np.float32).ravel(), plain(m.running_var, np.float32).ravel()])


@probe(FREEZE_BN)
def check_batchnorm_frozen(freeze_batchnorm_stats) -> dict:
    model = _Model(seed=56)
    gen = torch.Generator().manual_seed(6)
    rec = {}

    def step(stage):
        _freeze(model, stage).train()
        freeze_batchnorm_stats(model)
        bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.1)
        x = 3 * torch.randn(4, 1, 64, 64, generator=gen) + 1
        loss = F.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        facts = {f"{stage}.{n}.training": bool(m.training) for n, m in bns.items()}
        facts.update({f"{stage}.{n}.stats": _bn_stats(m) for n, m in bns.items()})
        return facts

    def final():
        model.eval()
        freeze_batchnorm_stats(model)
        return {"switched": [n for n, m in model.named_modules() if m.training]}

    for stage in BN_STAGES:
        if not _step(rec, stage, lambda: step(stage)):
            return rec
    _step(rec, "eval", final)
    return rec


@check_batchnorm_frozen.verdict
def _batchnorm_frozen(rec) -> None:
    # the pretrained statistics, from the verdict's own copy of the network: a frozen batch norm keeps them
    pretrained = {f"net.{n}": _bn_stats(m) for n, m in _imagenet_like(seed=56).named_modules()
                  if isinstance(m, nn.BatchNorm2d)}
    for stage in BN_STAGES:
        _reached(rec, stage)
        for n, stats in pretrained.items():
            assert f"{stage}.{n}.training" in rec and f"{stage}.{n}.stats" in rec, \
                f"stage {stage!r}: the batch norm {n} is no longer in the model"
            training = rec[f"{stage}.{n}.training"]
            assert isinstance(training, bool), f"stage {stage!r}: the mode of the batch norm {n} could not be read"
            if not _TRAINABLE[stage](n + ".weight"):
                after = np.asarray(rec[f"{stage}.{n}.stats"])
                moved = after.shape != stats.shape or not np.array_equal(after, stats)
                assert not training and not moved, \
                    (f"stage {stage!r}: the frozen batch norm {n} " + ("updated its running statistics" if moved else
                     "is in training mode") + ": put batch norms whose weight and bias are frozen in eval mode")
            else:
                assert training, (f"stage {stage!r}: the trainable batch norm {n} was put in eval mode: only "
                                  f"batch norms with frozen weight and bias should be")
    _reached(rec, "eval")
    switched = list(rec["switched"])
    assert not switched, f"freeze_batchnorm_stats switched modules to training mode ({_names(switched)}): it must only set eval"


# --- 5.4 parameter groups ----------------------------------------------------------------------------

def _groups(param_groups, model, head_lr, backbone_lr, stage: str, normalised: list, lrs: bool) -> dict:
    """Probe: call param_groups; record whether it is a list of dicts with 'params', then each group's
    members as parameter names of ``model`` (None for a tensor that is not one) and, with ``lrs``, its
    'lr' as a float (None when absent). ``normalised`` receives the groups with 'params' as lists."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, head_lr, backbone_lr)
    ok = isinstance(groups, (list, tuple)) and all(isinstance(g, dict) and "params" in g for g in groups)
    facts = {f"{stage}.ok": ok}
    if not ok:
        return facts
    for g in groups:
        params = g["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        normalised.append({**g, "params": params})
    facts[f"{stage}.members"] = [[names.get(id(p)) for p in g["params"]] for g in normalised]
    if lrs:
        facts[f"{stage}.lrs"] = [None if g.get("lr") is None else float(g.get("lr")) for g in normalised]
    return facts


GROUP_STAGES = ("head", "last", "all")


@probe(PARAM_GROUPS)
def check_param_groups_members(param_groups) -> dict:
    model = _Model(seed=57)
    rec = {}
    for stage in GROUP_STAGES:
        _freeze(model, stage)
        groups: list = []
        if not _step(rec, stage, lambda: _groups(param_groups, model, 2e-3, 1e-4, stage, groups, lrs=False)):
            break
        if not rec[f"{stage}.ok"]:
            break

        def optimizer():
            torch.optim.AdamW([g for g in groups if g["params"]] or [{"params": [nn.Parameter(torch.zeros(1))]}])

        if not _step(rec, f"{stage}.optimizer", optimizer):
            break
    return rec


@check_param_groups_members.verdict
def _param_groups_members(rec) -> None:
    names = _model_names()
    for stage in GROUP_STAGES:
        _reached(rec, stage)
        assert rec[f"{stage}.ok"], "param_groups should return a list of dicts, each with a 'params' entry"
        seen = [m for g in rec[f"{stage}.members"] for m in g]
        foreign = [m for m in seen if m not in names]
        assert not foreign, f"stage {stage!r}: param_groups holds {len(foreign)} tensors that are not parameters of the model"
        counts = collections.Counter(seen)
        listed = set(seen)
        twice = {n for n, c in counts.items() if c > 1}
        frozen = {n for n in names if not _TRAINABLE[stage](n)} & listed
        left = {n for n in names if _TRAINABLE[stage](n)} - listed
        assert not frozen, (f"stage {stage!r}: param_groups includes {len(frozen)} frozen parameters ({_names(frozen)}): "
                            f"leave parameters with requires_grad False out")
        assert not left, f"stage {stage!r}: {len(left)} trainable parameters are in no group ({_names(left)})"
        assert not twice, f"stage {stage!r}: parameters in more than one group ({_names(twice)})"
        _reached(rec, f"{stage}.optimizer")


LR_STAGES = ("last", "all", "head")
HEAD_LR, BACKBONE_LR = 3e-3, 2e-4


@probe(PARAM_GROUPS)
def check_param_groups_lr(param_groups) -> dict:
    model = _Model(seed=58)
    rec = {}
    for stage in LR_STAGES:
        _freeze(model, stage)
        if not _step(rec, stage, lambda: _groups(param_groups, model, HEAD_LR, BACKBONE_LR, stage, [], lrs=True)):
            break
        if not rec[f"{stage}.ok"]:
            break
    return rec


@check_param_groups_lr.verdict
def _param_groups_lr(rec) -> None:
    names = _model_names()
    for stage in LR_STAGES:
        _reached(rec, stage)
        assert rec[f"{stage}.ok"], "param_groups should return a list of dicts, each with a 'params' entry"
        members, group_lrs = rec[f"{stage}.members"], rec[f"{stage}.lrs"]
        assert len(members) == len(group_lrs), "param_groups: the groups could not be read"
        lrs = {}
        for group, lr in zip(members, group_lrs):
            for name in group:
                lrs.setdefault(name, lr)
        for name in names:
            if not _TRAINABLE[stage](name) or name not in lrs:
                continue
            head = name.startswith("net.fc.")
            lr, want = lrs[name], HEAD_LR if head else BACKBONE_LR
            assert lr is not None, "param_groups: give every group its own 'lr'"
            part = "head (net.fc)" if head else "backbone"
            assert abs(float(lr) - want) <= 1e-12 + 1e-9 * want, \
                (f"stage {stage!r}: the {part} parameter {name} gets lr {float(lr):g}, expected {want:g}: the head trains "
                 f"at head_lr, the pretrained backbone at the smaller backbone_lr")


# --- checkpoint level --------------------------------------------------------------------------------

_LAYER = re.compile(r"(?:^|\.)layer([1-4])\.(\d+)\.")


def _blocks(state: dict) -> tuple[int, ...]:
    """Blocks per stage of a ResNet state_dict, e.g. (2, 2, 2, 2)."""
    count = [0, 0, 0, 0]
    for key in state:
        m = _LAYER.search(key)
        if m:
            count[int(m.group(1)) - 1] = max(count[int(m.group(1)) - 1], int(m.group(2)) + 1)
    return tuple(count)


def _arch_name(blocks: tuple[int, ...]) -> str:
    for name, layout in resnet.ARCHS.items():
        if tuple(layout) == blocks:
            return name
    return f"ResNet of {blocks} blocks"


def _head_outputs(state: dict):
    keys = [k for k in state if (k == "fc.weight" or k.endswith(".fc.weight")) and getattr(state[k], "ndim", 0) == 2]
    return int(state[keys[0]].shape[0]) if keys else None


def start_weights_kind(record, arch: str) -> tuple[str, str]:
    """('random' | 'imagenet' | 'other' | 'unknown', file name) from a checkpoint's start_weights record.

    Raises ValueError (one line) when a torchvision-named file's recorded SHA-256 does not match its
    name, or when the ImageNet file is another architecture's.
    """
    if not isinstance(record, dict) or "name" not in record:
        return "unknown", ""
    name = str(record.get("name"))
    if name == "random":
        return "random", name
    digest = str(record.get("sha256") or "")
    match = re.search(r"-([0-9a-f]{8,64})\.pth?$", name)
    if match and not digest.startswith(match.group(1)):
        raise ValueError(f"started from {name}, whose recorded SHA-256 {digest[:16] or 'none'}... does not start with "
                         f"{match.group(1)} as the name says (a corrupt or different weights file)")
    if name in resnet.WEIGHT_FILES.values():
        if name != resnet.WEIGHT_FILES.get(arch):
            raise ValueError(f"started from {name}, the ImageNet weights of another architecture than its {arch}")
        return "imagenet", name
    return "other", name


def verify_checkpoint(path, model_cls) -> dict:
    """Check a part-5 checkpoint against the student's model class; returns facts for grading.

    Returns ``{"arch", "n_classes", "start", "weights_file"}`` with ``start`` one of ``"random"``,
    ``"imagenet"`` (a torchvision file whose recorded hash matches), ``"other"`` (another file) or
    ``"unknown"`` (no ``extra["start_weights"]`` record): the grader picks thresholds by it.
    Raises checkpoint.CheckpointError with one line naming the file and what differs: weights of
    one architecture where the class builds another, a head of the wrong size, a start-weights record
    whose hash does not match its name, weights that do not load.
    """
    ckpt = checkpoint.load(path)
    kwargs, state = ckpt["model"]["kwargs"], ckpt["state_dict"]
    call = f"{getattr(model_cls, '__name__', model_cls)}(**{kwargs})"
    saved_blocks, saved_head = _blocks(state), _head_outputs(state)
    if saved_head is None:
        raise checkpoint.CheckpointError(f"{path}: no ResNet head (fc.weight) in the checkpoint's weights")
    if saved_head != config.NUM_CLASSES:
        raise checkpoint.CheckpointError(f"{path}: the head has {saved_head} outputs, expected {config.NUM_CLASSES} "
                                         f"(one per genre)")
    try:
        model = model_cls(**kwargs)
    except Exception as err:
        first = (str(err).splitlines() or [""])[0][:150]
        raise checkpoint.CheckpointError(f"{path}: cannot build {call} ({type(err).__name__}: {first})") from None
    built = model.state_dict()
    built_blocks, built_head = _blocks(built), _head_outputs(built)
    if built_blocks != saved_blocks:
        raise checkpoint.CheckpointError(
            f"{path}: the weights are a {_arch_name(saved_blocks)} ({', '.join(map(str, saved_blocks))} blocks per stage) "
            f"but {call} builds a {_arch_name(built_blocks)} ({', '.join(map(str, built_blocks))})")
    if built_head != saved_head:
        raise checkpoint.CheckpointError(f"{path}: the checkpoint's head has {saved_head} outputs but {call} builds "
                                         f"{built_head}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = str(err).splitlines()
        raise checkpoint.CheckpointError(f"{path}: weights do not fit {call} "
                                         f"({(lines[1] if len(lines) > 1 else lines[0]).strip()[:160]})") from None
    arch = _arch_name(saved_blocks)
    try:
        start, name = start_weights_kind((ckpt.get("extra") or {}).get("start_weights"), arch)
    except ValueError as err:
        raise checkpoint.CheckpointError(f"{path}: {err}") from None
    return {"arch": arch, "n_classes": saved_head, "start": start, "weights_file": name}


@hidden
def check_checkpoint(path, model_cls) -> None:
    try:
        verify_checkpoint(Path(path), model_cls)
    except checkpoint.CheckpointError as err:
        raise AssertionError(str(err)) from None
