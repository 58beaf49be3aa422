"""Part 5: finetuning an ImageNet ResNet on log-mel spectrograms.

A network pretrained on a million photographs already knows edges, textures and their combinations;
a log-mel spectrogram is an image of a sort, so those filters are a better start than random ones
on a small dataset. Four things must be adapted with care, one function each:

- ``adapt_resnet``: the input has 1 channel, not 3 (fold the RGB kernels of the first convolution)
  and the output 8 genres, not 1000 ImageNet classes (a fresh head);
- ``LogMelScaler`` and ``fit_scaler``: the network saw inputs of mean about 0 and standard deviation
  about 1; a log-mel in dB lies in [-80, 0]; the statistics come from the training split only;
- ``set_trainable`` and ``freeze_batchnorm_stats``: train the new head first with the backbone
  frozen, then unfreeze (the last stage, or everything); a frozen part's batch norms must not drift;
- ``param_groups``: when the backbone trains, it gets a smaller learning rate than the head.

``ResNetClassifier`` (provided) puts them together; ``load_backbone`` (provided) loads the ImageNet
weights into it through your ``adapt_resnet``.

The layout of a torchvision ResNet (``genrekit.resnet``; module names as in torchvision)::

    conv1 (64, 3, 7, 7), stride 2 -> bn1 -> relu -> maxpool      the stem, /4
    layer1 (64) -> layer2 (128) -> layer3 (256) -> layer4 (512)  four stages, /2 each from layer2
    avgpool -> fc Linear(512, 1000)                              the head
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genrekit import config, resnet

STAGES = ("head", "last", "all")  # set_trainable: fc only; fc + layer4; everything


# --- 5.1 one input channel, n_classes outputs ------------------------------------------------------

def adapt_resnet(net: nn.Module, n_classes: int = config.NUM_CLASSES) -> nn.Module:
    """Adapt an ImageNet ResNet (3-channel input, 1000 classes) to log-mels and ``n_classes`` genres.

    Args:
        net: a torchvision-layout ResNet as built by ``genrekit.resnet.resnet18(weights=...)`` or
            ``resnet34`` with the default ``in_channels=3``, ``num_classes=1000``: ``net.conv1`` is an
            ``nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)`` with weight
            (64, 3, 7, 7) float32, ``net.fc`` an ``nn.Linear(512, 1000)``. Pretrained or not.
        n_classes: number of outputs of the new head (default config.NUM_CLASSES = 8), >= 1.

    Returns:
        ``net`` itself, changed in place, so that ``net(x)`` maps x of shape (B, 1, H, W) float32 to
        logits (B, n_classes):
        - ``net.conv1`` is a new ``nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)``
          whose kernel (64, 1, 7, 7) is the SUM over the colour axis of the pretrained RGB kernels;
        - ``net.fc`` is a fresh ``nn.Linear(512, n_classes)`` (PyTorch's default initialisation);
        - every other layer (bn1, layer1 ... layer4) is kept as it is, with its pretrained weights.
        The new modules are on the device and dtype of the old ones.

    Why the sum: a grey image x then gives conv1(x) = sum_c W_c * x, exactly the response the
    pretrained network gave to the colour image (x, x, x), so bn1 and everything after it see the
    activations they were trained on. Averaging divides every activation by 3 and breaks the
    batch-norm statistics learnt in pretraining; keeping one channel throws two thirds of each
    filter away; a new random convolution throws away the filters themselves.

    Raises:
        ValueError: ``net`` has no 3-channel ``conv1`` / no ``fc``, or ``n_classes`` < 1.
    """
    _check_rgb_resnet(net, n_classes)
    ### BEGIN SOLUTION
    old = net.conv1
    conv = nn.Conv2d(1, old.out_channels, kernel_size=old.kernel_size, stride=old.stride, padding=old.padding,
                     bias=False).to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(old.weight.sum(dim=1, keepdim=True))
    net.conv1 = conv
    net.fc = nn.Linear(net.fc.in_features, n_classes).to(device=net.fc.weight.device, dtype=net.fc.weight.dtype)
    return net
    ### END SOLUTION


def _check_rgb_resnet(net, n_classes) -> None:
    """One-line ValueErrors for adapt_resnet's arguments (provided)."""
    conv, fc = getattr(net, "conv1", None), getattr(net, "fc", None)
    if not isinstance(conv, nn.Conv2d) or conv.in_channels != 3:
        found = f"in_channels={conv.in_channels}" if isinstance(conv, nn.Conv2d) else "no conv1"
        raise ValueError(f"net: expected a ResNet with a 3-channel conv1 (ImageNet layout), got {found}")
    if not isinstance(fc, nn.Linear):
        raise ValueError("net: expected a ResNet with an nn.Linear head named fc")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes: expected a positive integer, got {n_classes!r}")


# --- 5.2 scaling the input --------------------------------------------------------------------------

def _finite_tensor(x, name: str) -> torch.Tensor:
    """``x`` (numpy array or tensor) as a float32 tensor; one-line ValueError if empty, not finite or constant."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().to(torch.float32)
    if t.numel() == 0:
        raise ValueError(f"{name}: empty array")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains {int((~torch.isfinite(t)).sum())} non-finite values (NaN or inf)")
    if t.min() == t.max():
        raise ValueError(f"{name}: every value is {float(t.min()):g}: a constant cannot be standardised (std 0)")
    return t


class LogMelScaler(nn.Module):
    """Standardise log-mels: ``(x - mean) / std`` with ONE mean and ONE std fitted on training data.

    ImageNet networks were trained on images normalised per colour channel to mean about 0 and
    standard deviation about 1. A log-mel has one channel, in dB in [-config.TOP_DB, 0]: one mean and
    one standard deviation over every value of the training set (all examples, mel bands, frames).

    Buffers (``register_buffer``, so that ``state_dict()`` and thus the checkpoint carry them):
        ``mean``, ``std``: 0-dim float32 tensors; before ``fit`` 0 and 1 (the identity).

    fit(x_train): x_train (N, 1, n_mels, T) or any shape, numpy array or tensor, in dB. Sets ``mean`` to
        the mean and ``std`` to the standard deviation (divide by the number of values) of all its
        values; returns ``self``. Raises ValueError (naming ``x_train``) if it is empty, holds a NaN or
        an infinity, or is constant (std 0).
    forward(x): x of any shape, float32 tensor -> (x - mean) / std, same shape, float32.
    """

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        ### END SOLUTION

    def fit(self, x_train) -> LogMelScaler:
        x = _finite_tensor(x_train, "x_train")  # x_train as a float32 tensor: not empty, finite, not constant
        ### BEGIN SOLUTION
        std, mean = torch.std_mean(x, correction=0)
        with torch.no_grad():
            self.mean.copy_(mean)
            self.std.copy_(std)
        return self
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return (x - self.mean) / self.std
        ### END SOLUTION


def fit_scaler(model: nn.Module, splits: dict) -> dict:
    """Fit ``model.scaler`` (a LogMelScaler) on the right split of the data, before training.

    Args:
        model: a ResNetClassifier, or any module with a ``scaler`` attribute that has ``fit(x)``.
        splits: the log-mel segments of every split the notebook has, e.g.
            ``{"train": X_train, "valid": X_valid, "test": X_test}``, each (N, 1, n_mels, T) float32
            (tensor or numpy), in dB. ``"train"`` is always present; the others may be missing.

    Returns:
        ``{"mean": float, "std": float}``: the statistics now stored in ``model.scaler``.

    The statistics must come from the TRAINING split only: anything computed from validation or test
    data leaks them into the model, and the test accuracy no longer measures unseen data.

    Raises:
        ValueError: ``splits`` has no ``"train"`` entry (and whatever ``scaler.fit`` raises).
    """
    if "train" not in splits:
        raise ValueError(f"splits: no 'train' entry (got {', '.join(map(str, splits)) or 'nothing'})")
    ### BEGIN SOLUTION
    model.scaler.fit(splits["train"])
    ### END SOLUTION
    return {"mean": float(model.scaler.mean), "std": float(model.scaler.std)}  # what your code stored


# --- 5.3 freezing and unfreezing --------------------------------------------------------------------

def set_trainable(model: nn.Module, stage: str) -> nn.Module:
    """Choose which parameters train, by stage of the finetuning.

    Args:
        model: a ResNetClassifier, or any module whose attribute ``net`` is a torchvision-layout ResNet
            (``net.fc`` the head, ``net.layer4`` the last stage of the backbone).
        stage: ``"head"``: only ``net.fc`` trains (stage one: the new head learns on frozen features);
            ``"last"``: ``net.fc`` and ``net.layer4``; ``"all"``: every parameter of ``model``.

    Returns:
        ``model``, changed in place: ``requires_grad`` is True for the parameters of the stage and
        False for every other parameter of ``model`` (so a call undoes the previous stage: "all" then
        "head" freezes the backbone again).

    Batch norm: freezing the weights does not freeze a BatchNorm's running statistics, which any
    forward pass in training mode updates. ``freeze_batchnorm_stats`` handles that; ResNetClassifier
    calls it from ``train()``, which ``genrekit.train.fit`` calls at every epoch.

    Raises:
        ValueError: ``stage`` is not one of STAGES.
    """
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {', '.join(STAGES)}, got {stage!r}")
    ### BEGIN SOLUTION
    trainable = {"head": [model.net.fc], "last": [model.net.fc, model.net.layer4], "all": [model]}[stage]
    for p in model.parameters():
        p.requires_grad_(False)
    for part in trainable:
        for p in part.parameters():
            p.requires_grad_(True)
    return model
    ### END SOLUTION


def freeze_batchnorm_stats(module: nn.Module) -> nn.Module:
    """Keep the batch norms of frozen layers in eval mode, so their running statistics stay pretrained.

    In training mode a BatchNorm normalises with the statistics of the current batch and updates its
    ``running_mean`` / ``running_var`` buffers, whether or not its weight and bias require gradients.
    A frozen layer must not change: its batch norms must use, and keep, their stored statistics.

    Args:
        module: any nn.Module (a ResNetClassifier, a ResNet), usually just after ``module.train()``.

    Returns:
        ``module``, changed in place: every ``nn.BatchNorm2d`` (or other ``nn.modules.batchnorm._BatchNorm``)
        inside it whose ``weight`` and ``bias`` both have ``requires_grad`` False is put in eval mode;
        every other module keeps its mode (a trainable batch norm in training mode stays in training
        mode and adapts its statistics to log-mels; nothing is ever switched to training mode).
    """
    ### BEGIN SOLUTION
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()
    return module
    ### END SOLUTION


# --- 5.4 discriminative learning rates --------------------------------------------------------------

def param_groups(model: nn.Module, head_lr: float, backbone_lr: float) -> list[dict]:
    """Optimizer parameter groups: the head at ``head_lr``, the trainable backbone at ``backbone_lr``.

    Args:
        model: a ResNetClassifier, or any module whose attribute ``net`` is a torchvision-layout ResNet
            (``net.fc`` is the head; every other parameter of ``model`` is the backbone).
        head_lr: learning rate of the new head, > 0 (e.g. 1e-3).
        backbone_lr: learning rate of the pretrained layers, > 0, usually 3-30x smaller (e.g. 1e-4):
            they are already good and must move less than the random head.

    Returns:
        A list of dicts for ``torch.optim.AdamW(groups, ...)``: ``{"params": [...], "lr": head_lr}`` with
        the trainable parameters of ``net.fc``, and ``{"params": [...], "lr": backbone_lr}`` with every
        other trainable parameter of ``model``. Parameters with ``requires_grad`` False are in no group
        (they do not train); each trainable parameter is in exactly one group; a group that would be
        empty may be left out. Other keys (e.g. ``"name"``) are allowed.

    Raises:
        ValueError: a learning rate that is not a positive finite number (naming it).
    """
    for name, lr in (("head_lr", head_lr), ("backbone_lr", backbone_lr)):
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"{name}: expected a positive learning rate, got {lr!r}")
    ### BEGIN SOLUTION
    head_ids = {id(p) for p in model.net.fc.parameters()}
    head = [p for p in model.net.fc.parameters() if p.requires_grad]
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": head_lr, "name": "head"},
              {"params": backbone, "lr": backbone_lr, "name": "backbone"}]
    return [g for g in groups if g["params"]]
    ### END SOLUTION


# --- the model (provided) ----------------------------------------------------------------------------

RANDOM = {"name": "random", "sha256": None}  # start_weights of a network that was not pretrained


class ResNetClassifier(nn.Module):
    """A ResNet18/34 for log-mels: ``LogMelScaler`` -> ResNet adapted by ``adapt_resnet`` -> logits.

    Args:
        arch: ``"resnet18"`` or ``"resnet34"``.
        n_classes: number of genres (default config.NUM_CLASSES = 8).
        input_pool: the scaled log-mel is average-pooled by ``input_pool`` x ``input_pool`` (mel bands x
            frames) before the ResNet: 2 makes a (96, 126) segment (48, 63), about half the compute per
            epoch on a CPU, for some loss of detail; 1 (the default) keeps the full resolution.

    Built with random weights (the checkpoint's state_dict, or ``load_backbone``, fills them in), so
    ``genrekit.checkpoint.load_model`` can rebuild it from its keyword arguments.
    forward(x): x (B, 1, n_mels, T) float32 log-mel in dB -> logits (B, n_classes); T, n_mels >= 32 * input_pool.
    embed(x): same input -> the pooled embedding (B, 512) that ``net.fc`` reads.
    Attributes: ``scaler`` (LogMelScaler), ``net`` (the adapted ResNet), ``arch``, ``n_classes``,
    ``start_weights``: ``{"name": "random", "sha256": None}``, or the weights file's name and SHA-256
    after ``load_backbone`` (save it in the checkpoint: the grader picks its thresholds by it).
    ``train(mode)`` also applies ``freeze_batchnorm_stats`` in training mode.
    """

    def __init__(self, arch: str = "resnet18", n_classes: int = config.NUM_CLASSES, input_pool: int = 1):
        super().__init__()
        if arch not in resnet.ARCHS:
            raise ValueError(f"arch: expected one of {', '.join(resnet.ARCHS)}, got {arch!r}")
        if isinstance(input_pool, bool) or not isinstance(input_pool, int) or input_pool < 1:
            raise ValueError(f"input_pool: expected a positive integer, got {input_pool!r}")
        self.arch, self.n_classes, self.input_pool = arch, n_classes, input_pool
        self.start_weights = dict(RANDOM)
        self.scaler = LogMelScaler()
        self.net = adapt_resnet(resnet.resnet(arch), n_classes)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scaler(x)
        return x if self.input_pool == 1 else nn.functional.avg_pool2d(x, self.input_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._input(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self._input(x))

    def train(self, mode: bool = True) -> ResNetClassifier:
        super().train(mode)
        if mode:  # eval mode needs nothing: every batch norm is in eval mode already
            freeze_batchnorm_stats(self)
        return self


def sha256_of(path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_backbone(model: ResNetClassifier, weights="imagenet") -> dict:
    """Start ``model`` from pretrained weights: load them into a 3-channel, 1000-class ResNet, adapt it
    with ``adapt_resnet`` (your fold of the RGB kernels, a fresh head) and copy it into ``model.net``.

    Args:
        model: a ResNetClassifier (its ``arch`` picks the file).
        weights: ``"imagenet"`` (torchvision's file in ``genrekit.resnet.weights_dir()``, fetched by
            ``python -m data_scripts.get_resnet_weights``) or the path of a torchvision-format state_dict.

    Returns:
        ``model.start_weights``, now ``{"name": file name, "sha256": hex digest}``.

    Raises:
        genrekit.resnet.WeightsError: one line naming the file: missing, not a state_dict of this
            architecture, or a torchvision-named file (``NAME-HEX.pth``) whose SHA-256 does not start
            with HEX. ``model`` is unchanged then.
    """
    path = resnet.resolve_weights(weights, model.arch)
    if not path.is_file():
        raise resnet.WeightsError(f"{path}: weights file not found")
    digest = sha256_of(path)
    expected = _hash_in_name(path)
    if expected and not digest.startswith(expected):
        raise resnet.WeightsError(f"{path}: SHA-256 {digest[:16]}... does not start with {expected} as its name "
                                  f"says (a corrupt or different file)")
    net = adapt_resnet(resnet.resnet(model.arch, weights=path), model.n_classes)
    model.net.load_state_dict(net.state_dict(), strict=True)
    model.start_weights = {"name": path.name, "sha256": digest}
    return model.start_weights


def _hash_in_name(path: Path) -> str:
    """'f37072fd' for 'resnet18-f37072fd.pth' (torchvision's naming); '' when the name has none."""
    match = re.search(r"-([0-9a-f]{8,64})\.pth?$", Path(path).name)
    return match.group(1) if match else ""
