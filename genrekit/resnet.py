"""ResNet18/34 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) in pure PyTorch,
with torchvision's module names, so torchvision's ImageNet weight files load with ``strict=True``.

Example::

    from genrekit import resnet
    net = resnet.resnet18()                                        # random init, 3 x H x W -> 1000
    net = resnet.resnet18(weights="imagenet")                      # ImageNet: 3 x H x W -> 1000
    grey = resnet.resnet18(in_channels=1, num_classes=8)           # random init, for log-mels
    net = resnet.resnet18(weights="path/to/resnet18-f37072fd.pth")
    logits = net(x)                        # x: (batch, in_channels, H, W) float32 -> (batch, num_classes)
    emb = net.forward_features(x)          # (batch, 512): the pooled vector the fc layer reads

``weights="imagenet"`` reads torchvision's file from :func:`weights_dir` (fetch it once with
``python -m data_scripts.get_resnet_weights``). torchvision itself is not used (it does not import with
the CPU build of torch this project pins).

Pretrained weights load only into the network they were trained as (3 input channels, 1000 classes):
adapting them to one-channel log-mels and 8 genres is the homework's part 5 (``genre.finetune``).
The ImageNet networks expect inputs normalised per channel (mean about 0, std about 1).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

WEIGHTS_ENV = "GENREKIT_WEIGHTS_DIR"  # folder of downloaded pretrained weights
WEIGHT_FILES: dict[str, str] = {      # torchvision's ImageNet files (IMAGENET1K_V1); 8 hex = sha256 prefix
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
}
BASE_URL = "https://download.pytorch.org/models/"
EMBEDDING_DIM = 512  # size of the pooled vector of ResNet18/34


class WeightsError(Exception):
    """A weights file that is missing or does not fit the network; ``str(err)`` is one line naming it."""


def weights_dir() -> Path:
    """Folder of downloaded weights: ``$GENREKIT_WEIGHTS_DIR`` or ``~/.cache/genrekit/weights``."""
    return Path(os.environ.get(WEIGHTS_ENV) or Path.home() / ".cache" / "genrekit" / "weights")


# --- blocks ----------------------------------------------------------------------------------------

def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the input (projected by ``downsample`` when the
    shape changes), then ReLU. (batch, in_planes, H, W) -> (batch, planes, H / stride, W / stride)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


# --- network ---------------------------------------------------------------------------------------

class ResNet(nn.Module):
    """ResNet of BasicBlocks: ``blocks`` per stage, e.g. (2, 2, 2, 2) for ResNet18.

    forward: (batch, in_channels, H, W) float32 -> logits (batch, num_classes); any H, W >= 32.
    forward_features: the same input -> the pooled embedding (batch, 512).
    """

    def __init__(self, blocks: tuple[int, int, int, int], in_channels: int = 3, num_classes: int = 1000):
        super().__init__()
        # stem: /4 in each spatial dimension
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # four stages: 64, 128, 256, 512 channels; stages 2-4 halve H and W
        self.layer1 = self._stage(64, 64, blocks[0], stride=1)
        self.layer2 = self._stage(64, 128, blocks[1], stride=2)
        self.layer3 = self._stage(128, 256, blocks[2], stride=2)
        self.layer4 = self._stage(256, 512, blocks[3], stride=2)
        # head
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(EMBEDDING_DIM, num_classes)
        self._init_weights()

    @staticmethod
    def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(in_planes, planes, stride),
                             *[BasicBlock(planes, planes) for _ in range(n - 1)])

    def _init_weights(self) -> None:
        """torchvision's initialisation: Kaiming-normal convolutions, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, H, W) -> (batch, 512), the input of ``fc``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, H, W) -> logits (batch, num_classes)."""
        return self.fc(self.forward_features(x))


# --- weights ---------------------------------------------------------------------------------------

def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state_dict file (tensors only: ``weights_only=True``) or raise a one-line WeightsError."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors: all mean "not a weights file"
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise WeightsError(f"{path}: not a PyTorch weights file ({type(err).__name__}: {first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state_dict (expected a dict of tensors, got {type(state).__name__})")
    return state


def _list(names, n: int = 3) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _check_matches(path: Path, state: dict, expected: dict, arch: str) -> None:
    """Raise a one-line WeightsError saying how ``state`` differs from ``expected`` (names and shapes)."""
    # files saved before torch 0.4.1 (torchvision's) have no BN step counters: load_state_dict fills them
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = set(expected) - set(state) - optional
    unexpected = set(state) - set(expected)
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys ({_list(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_list(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shapes differ ({'; '.join(shapes[:2])}{' ...' if len(shapes) > 2 else ''})")
    if problems:
        raise WeightsError(f"{path}: not a {arch} state_dict: " + "; ".join(problems))


def resolve_weights(weights, arch: str) -> Path:
    """``"imagenet"`` -> the downloaded torchvision file in :func:`weights_dir`; otherwise the path."""
    if isinstance(weights, str) and weights == "imagenet":
        path = weights_dir() / WEIGHT_FILES[arch]
        if not path.is_file():
            raise WeightsError(f"{path}: weights file not found (fetch it with "
                               f"`python -m data_scripts.get_resnet_weights --arch {arch}`)")
        return path
    return Path(weights).expanduser()


def load_weights(net: ResNet, weights, arch: str) -> ResNet:
    """Load a torchvision-format state_dict into ``net`` (3 input channels, 1000 classes), strictly.

    ``weights``: a file path or ``"imagenet"``. Raises WeightsError (one line naming the file and what
    differs) for a file of another architecture, and for a ``net`` built for other inputs or classes.
    """
    path = resolve_weights(weights, arch)
    if net.conv1.in_channels != 3 or net.fc.out_features != 1000:
        raise WeightsError(f"{path}: pretrained weights load into the ImageNet network (in_channels=3, "
                           f"num_classes=1000), not one with in_channels={net.conv1.in_channels}, "
                           f"num_classes={net.fc.out_features}: load them, then adapt the network")
    state = dict(_read_state_dict(path))
    _check_matches(path, state, net.state_dict(), arch)
    net.load_state_dict(state, strict=True)
    return net


# --- constructors ----------------------------------------------------------------------------------

ARCHS: dict[str, tuple[int, int, int, int]] = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


def _build(arch: str, in_channels: int, num_classes: int) -> ResNet:
    return ResNet(ARCHS[arch], in_channels=in_channels, num_classes=num_classes)


def resnet(arch: str, weights=None, in_channels: int = 3, num_classes: int = 1000) -> ResNet:
    """A ResNet by name (``"resnet18"`` or ``"resnet34"``); see :func:`resnet18` for the arguments."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture '{arch}' (expected one of {', '.join(ARCHS)})")
    net = _build(arch, in_channels, num_classes)
    return net if weights is None else load_weights(net, weights, arch)


def resnet18(weights=None, in_channels: int = 3, num_classes: int = 1000) -> ResNet:
    """ResNet18 (11,689,512 parameters with 3 channels and 1000 classes).

    weights: None (random init), a path to a torchvision-format state_dict file, or ``"imagenet"``.
    in_channels: input channels; num_classes: size of the ``fc`` output (both at their ImageNet
    values when ``weights`` is given).
    Input (batch, in_channels, H, W) float32 -> logits (batch, num_classes).
    """
    return resnet("resnet18", weights, in_channels, num_classes)


def resnet34(weights=None, in_channels: int = 3, num_classes: int = 1000) -> ResNet:
    """ResNet34 (21,797,672 parameters with 3 channels and 1000 classes); arguments as resnet18."""
    return resnet("resnet34", weights, in_channels, num_classes)
