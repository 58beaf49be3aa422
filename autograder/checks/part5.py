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

Checkpoint level (the grader and the notebook's last test cell): :func:`verify_checkpoint` says in one
line what differs (a ResNet34 where the code builds a ResNet18, a head of the wrong size, a weights
record whose hash does not match its name) and which starting weights the thresholds must use.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks.common import hidden
from genrekit import checkpoint, config, resnet


# --- the checker's own pieces (never released) -------------------------------------------------------

def _plain(x) -> torch.Tensor:
    """A student's tensor as a plain float64 torch tensor (a subclass cannot lie through numpy)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return torch.from_numpy(np.array(x, dtype=np.float64))


def _imagenet_like(seed: int, arch: str = "resnet18") -> nn.Module:
    """A 3-channel, 1000-class ResNet with seeded weights and non-trivial batch-norm statistics."""
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
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# --- 5.1 adapt_resnet --------------------------------------------------------------------------------

@hidden
def check_adapt_first_conv(adapt_resnet) -> None:
    net = _imagenet_like(seed=51)
    rgb = _plain(net.conv1.weight)  # (64, 3, 7, 7)
    kept = {k: _plain(v) for k, v in net.state_dict().items() if not k.startswith(("conv1.", "fc."))}
    out = adapt_resnet(net, 5)
    assert isinstance(out, nn.Module), f"adapt_resnet should return the adapted network, got {type(out).__name__}"
    conv = getattr(out, "conv1", None)
    assert isinstance(conv, nn.Conv2d), "adapt_resnet: net.conv1 should still be an nn.Conv2d"
    assert conv.in_channels == 1, f"adapt_resnet: conv1 should take 1 input channel (a log-mel), got {conv.in_channels}"
    w = _plain(conv.weight)
    assert tuple(w.shape) == (64, 1, 7, 7), f"adapt_resnet: conv1's kernel should be (64, 1, 7, 7), got {tuple(w.shape)}"
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
    x = torch.randn(2, 1, 40, 52, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = _plain(conv(x))
        ref = F.conv2d(x.double().expand(-1, 3, -1, -1), rgb, stride=2, padding=3)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-4), \
        "adapt_resnet: conv1 should keep the stem's stride 2 and padding 3 (a grey x must act as (x, x, x))"
    state = out.state_dict()
    changed = [k for k, v in kept.items() if k not in state or _plain(state[k]).shape != v.shape
               or not torch.equal(_plain(state[k]), v)]
    assert not changed, (f"adapt_resnet must keep the pretrained layers other than conv1 and fc; changed or missing: "
                         f"{_names(changed)}")


@hidden
def check_adapt_head(adapt_resnet) -> None:
    for n_classes, seed in ((5, 52), (None, 53)):
        net = _imagenet_like(seed)
        old = _plain(net.fc.weight)
        out = adapt_resnet(net, n_classes) if n_classes else adapt_resnet(net)
        assert isinstance(out, nn.Module), f"adapt_resnet should return the adapted network, got {type(out).__name__}"
        want = n_classes or config.NUM_CLASSES
        fc = getattr(out, "fc", None)
        assert isinstance(fc, nn.Linear), "adapt_resnet: net.fc should be an nn.Linear (the new head)"
        assert fc.out_features != 1000 or want == 1000, \
            "adapt_resnet: the head still has the 1000 ImageNet outputs: replace net.fc by a new nn.Linear(512, n_classes)"
        assert (fc.in_features, fc.out_features) == (resnet.EMBEDDING_DIM, want), \
            (f"adapt_resnet(net{', ' + str(n_classes) if n_classes else ''}): the head should be Linear(512, {want}), "
             f"got Linear({fc.in_features}, {fc.out_features})" + ("" if n_classes else " (default n_classes=config.NUM_CLASSES)"))
        with torch.no_grad():
            logits = fc(torch.randn(3, resnet.EMBEDDING_DIM))
        assert tuple(logits.shape) == (3, want), f"adapt_resnet: the head maps (3, 512) to {tuple(logits.shape)}, expected (3, {want})"
        assert fc.bias is not None, "adapt_resnet: the new head should have a bias, as nn.Linear has by default"
        w = _plain(fc.weight)
        assert not torch.allclose(w, old[:want]), \
            "adapt_resnet: the head reuses rows of the ImageNet classifier: genres need a FRESH nn.Linear(512, n_classes)"
        assert all(p.requires_grad for p in fc.parameters()), "adapt_resnet: the new head's parameters should require gradients"


# --- 5.2 scaling -------------------------------------------------------------------------------------

def _db_like(shape, mean, std, seed) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, shape).astype(np.float32)


@hidden
def check_log_mel_scaler(scaler_cls) -> None:
    x = _db_like((6, 1, config.N_MELS, 40), -37.2, 11.3, 1)
    scaler = scaler_cls()
    scaler.fit(torch.from_numpy(x))
    state = scaler.state_dict()
    assert {"mean", "std"} <= set(state), \
        (f"LogMelScaler should store mean and std as buffers (register_buffer) so the checkpoint carries them; "
         f"its state_dict holds {sorted(state) or 'nothing'}")
    mean, std = _plain(state["mean"]), _plain(state["std"])
    assert mean.numel() == 1 and std.numel() == 1, \
        (f"LogMelScaler: one mean and one std over all values (a log-mel is one channel), got shapes "
         f"{tuple(mean.shape)} and {tuple(std.shape)}")
    x64 = x.astype(np.float64)
    assert abs(float(mean) - x64.mean()) < 1e-3 * abs(x64.mean()), \
        f"LogMelScaler.fit: mean {float(mean):.3f}, expected the mean of all training values {x64.mean():.3f}"
    assert abs(float(std) - x64.std()) < 1e-3 * x64.std(), \
        f"LogMelScaler.fit: std {float(std):.3f}, expected the standard deviation of all training values {x64.std():.3f}"
    xt = torch.from_numpy(_db_like((3, 1, config.N_MELS, 33), -20.0, 5.0, 2))
    with torch.no_grad():
        y = _plain(scaler(xt))
    ref = (xt.double() - x64.mean()) / x64.std()
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-3), \
        "LogMelScaler.forward should return (x - mean) / std with the fitted statistics, same shape as x"
    fresh = scaler_cls()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(_plain(fresh(xt)), y, atol=1e-5), \
            "LogMelScaler: a new scaler loading the state_dict should scale like the fitted one (buffers, not attributes)"
    x2 = _db_like((4, 1, config.N_MELS, 21), 3.0, 2.0, 3)
    scaler.fit(x2)  # numpy input, refit
    assert abs(float(_plain(scaler.state_dict()["mean"])) - x2.astype(np.float64).mean()) < 1e-2, \
        "LogMelScaler.fit should accept a numpy array and replace the statistics of an earlier fit"


@hidden
def check_fit_scaler(fit_scaler) -> None:
    train = _db_like((7, 1, config.N_MELS, 30), -31.0, 9.0, 11)
    valid = _db_like((3, 1, config.N_MELS, 30), -12.0, 4.0, 12)
    test = _db_like((3, 1, config.N_MELS, 30), -55.0, 15.0, 13)
    for splits in ({"train": torch.from_numpy(train), "valid": torch.from_numpy(valid), "test": torch.from_numpy(test)},
                   {"test": test, "train": train}):
        model = _Model(seed=54)
        fit_scaler(model, splits)
        mean, std = float(_plain(model.scaler.mean)), float(_plain(model.scaler.std))
        t = train.astype(np.float64)
        if abs(mean - t.mean()) < 1e-2 and abs(std - t.std()) < 1e-2:
            continue
        if abs(mean - test.astype(np.float64).mean()) < 1e-2:
            raise AssertionError("fit_scaler: the scaling statistics come from the TEST split: fit on splits['train'] "
                                 "only, or the test data leaks into the model")
        both = np.concatenate([np.ravel(v) for v in splits.values()]).astype(np.float64)
        if abs(mean - both.mean()) < 1e-2:
            raise AssertionError("fit_scaler: the scaling statistics come from all splits together: fit on "
                                 "splits['train'] only, or validation and test data leak into the model")
        raise AssertionError(f"fit_scaler: model.scaler holds mean {mean:.2f}, std {std:.2f}; expected the training "
                             f"split's {t.mean():.2f}, {t.std():.2f}")


# --- 5.3 freezing ------------------------------------------------------------------------------------

@hidden
def check_set_trainable(set_trainable) -> None:
    model = _Model(seed=55)
    what = {"head": "only net.fc trains (the backbone stays frozen while the new head learns)",
            "last": "only net.fc and net.layer4 train", "all": "every parameter trains"}
    for stage in ("head", "last", "all", "head", "all", "last"):
        set_trainable(model, stage)
        on = {n for n, p in model.named_parameters() if p.requires_grad}
        want = {n for n, _ in model.named_parameters() if _TRAINABLE[stage](n)}
        extra, missing = on - want, want - on
        assert not extra, (f"set_trainable(model, {stage!r}): {what[stage]}, but {len(extra)} more tensors are "
                           f"trainable ({_names(extra)})")
        assert not missing, (f"set_trainable(model, {stage!r}): {what[stage]}, but {len(missing)} of those tensors are "
                             f"frozen ({_names(missing)})")


@hidden
def check_batchnorm_frozen(freeze_batchnorm_stats) -> None:
    model = _Model(seed=56)
    gen = torch.Generator().manual_seed(6)

    def step(stage):
        _freeze(model, stage).train()
        freeze_batchnorm_stats(model)
        bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        before = {n: _plain(m.running_mean) for n, m in bns.items()}
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.1)
        x = 3 * torch.randn(4, 1, 64, 64, generator=gen) + 1
        loss = F.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        for n, m in bns.items():
            trainable = _TRAINABLE[stage](n + ".weight")
            moved = not torch.equal(_plain(m.running_mean), before[n])
            if not trainable:
                assert not m.training and not moved, \
                    (f"stage {stage!r}: the frozen batch norm {n} " + ("updated its running statistics" if moved else
                     "is in training mode") + ": put batch norms whose weight and bias are frozen in eval mode")
            else:
                assert m.training, (f"stage {stage!r}: the trainable batch norm {n} was put in eval mode: only "
                                    f"batch norms with frozen weight and bias should be")

    step("head")
    step("last")
    step("all")
    model.eval()
    freeze_batchnorm_stats(model)
    switched = [n for n, m in model.named_modules() if m.training]
    assert not switched, f"freeze_batchnorm_stats switched modules to training mode ({_names(switched)}): it must only set eval"


# --- 5.4 parameter groups ----------------------------------------------------------------------------

def _groups(param_groups, model, head_lr, backbone_lr) -> list[dict]:
    groups = param_groups(model, head_lr, backbone_lr)
    assert isinstance(groups, (list, tuple)) and all(isinstance(g, dict) and "params" in g for g in groups), \
        "param_groups should return a list of dicts, each with a 'params' entry"
    out = []
    for g in groups:
        params = g["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        out.append({**g, "params": params})
    return out


@hidden
def check_param_groups_members(param_groups) -> None:
    model = _Model(seed=57)
    names = {id(p): n for n, p in model.named_parameters()}
    for stage in ("head", "last", "all"):
        _freeze(model, stage)
        groups = _groups(param_groups, model, 2e-3, 1e-4)
        seen = [id(p) for g in groups for p in g["params"]]
        foreign = [p for p in seen if p not in names]
        assert not foreign, f"stage {stage!r}: param_groups holds {len(foreign)} tensors that are not parameters of the model"
        listed = {names[p] for p in seen}
        twice = {names[p] for p in seen if seen.count(p) > 1}
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad} & listed
        left = {n for n, p in model.named_parameters() if p.requires_grad} - listed
        assert not frozen, (f"stage {stage!r}: param_groups includes {len(frozen)} frozen parameters ({_names(frozen)}): "
                            f"leave parameters with requires_grad False out")
        assert not left, f"stage {stage!r}: {len(left)} trainable parameters are in no group ({_names(left)})"
        assert not twice, f"stage {stage!r}: parameters in more than one group ({_names(twice)})"
        torch.optim.AdamW([g for g in groups if g["params"]] or [{"params": [nn.Parameter(torch.zeros(1))]}])


@hidden
def check_param_groups_lr(param_groups) -> None:
    model = _Model(seed=58)
    head_lr, backbone_lr = 3e-3, 2e-4
    head_ids = {id(p) for p in model.net.fc.parameters()}
    for stage in ("last", "all", "head"):
        _freeze(model, stage)
        groups = _groups(param_groups, model, head_lr, backbone_lr)
        lrs = {}
        for g in groups:
            for p in g["params"]:
                lrs.setdefault(id(p), g.get("lr"))
        for name, p in model.named_parameters():
            if not p.requires_grad or id(p) not in lrs:
                continue
            lr, want = lrs[id(p)], head_lr if id(p) in head_ids else backbone_lr
            assert lr is not None, "param_groups: give every group its own 'lr'"
            part = "head (net.fc)" if id(p) in head_ids else "backbone"
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
