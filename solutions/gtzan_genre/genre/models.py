"""Part 1: the baseline CNN, built from small named blocks.

Spec table (the notebook shows it too)::

    stage     layer(s)                                            output shape (B, C, mels, frames)
    input     log-mel, 1 channel                                  (B, 1, 96, T)
    norm      BatchNorm2d(1)                                      (B, 1, 96, T)
    block 1   ConvBlock(1 -> c1):  conv 3x3 pad 1, BN, ReLU, max-pool 2x2    (B, c1, 48, T/2)
    block 2   ConvBlock(c1 -> c2)                                 (B, c2, 24, T/4)
    block 3   ConvBlock(c2 -> c3)                                 (B, c3, 12, T/8)
    block 4   ConvBlock(c3 -> c4)                                 (B, c4, 6, T/16)
    pool      mean over mels and frames (global average pooling)  (B, c4)        <- the embedding
    head      Dropout(p), Linear(c4 -> n_classes)                 (B, n_classes) <- logits

Default channels (c1, c2, c3, c4) = (16, 32, 64, 64). Global pooling makes the model accept any
number of frames T (whole clips or 4 s segments).
"""

from __future__ import annotations

import torch
from torch import nn

from genrekit import config


class ConvBlock(nn.Module):
    """conv 3x3 (padding 1, no bias) -> BatchNorm2d -> ReLU -> MaxPool2d(2).

    Args:
        in_channels, out_channels: channels of the input and of the output.

    forward(x): x of shape (B, in_channels, H, W) float32 -> (B, out_channels, H // 2, W // 2).
    Suggested attributes: ``conv``, ``bn``, ``pool`` (any layout works as long as the computation is
    pool(relu(bn(conv(x))))).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(2)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.pool(torch.relu(self.bn(self.conv(x))))
        ### END SOLUTION


class BaselineCNN(nn.Module):
    """The baseline genre classifier of part 1 (see the spec table in the module docstring).

    Args:
        n_classes: number of genres (default config.NUM_CLASSES = 8).
        channels: output channels of the four ConvBlocks (default (16, 32, 64, 64)).
        dropout: dropout probability before the classifier (default 0.3).

    forward(x): x of shape (B, 1, n_mels, T) float32 log-mel in dB -> logits (B, n_classes).
    embed(x):   same input -> the pooled embedding (B, channels[-1]), before dropout and classifier.
    Attributes: ``input_bn``, ``blocks`` (an nn.Sequential of the four ConvBlocks), ``dropout``,
    ``classifier`` (the nn.Linear).
    """

    def __init__(self, n_classes: int = config.NUM_CLASSES, channels: tuple[int, ...] = (16, 32, 64, 64),
                 dropout: float = 0.3):
        super().__init__()
        self.embedding_dim = channels[-1]
        ### BEGIN SOLUTION
        self.input_bn = nn.BatchNorm2d(1)
        widths = (1, *channels)
        self.blocks = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels[-1], n_classes)
        ### END SOLUTION

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.blocks(self.input_bn(x)).mean(dim=(2, 3))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.classifier(self.dropout(self.embed(x)))
        ### END SOLUTION
