"""Part 5, the final model: late fusion of the clip probabilities of several parts' models (provided).

Provided code: nothing to implement here. Each member is one of your trained parts, named by its part
id (e.g. ``"part5_resnet"``, ``"part4_fusion"``); each gives clip probabilities (clips, classes) of its
own, computed the way that part is measured (its segments, its aggregation). The final model's clip
probabilities are their weighted mean::

    p_final = sum_m  w_m * p_m        w_m >= 0,  sum_m w_m = 1

Example (two members, the weight chosen on the validation set)::

    from genre.final import LateFusion, choose_weight, fuse
    w, table = choose_weight(p_valid["part5_resnet"], p_valid["part3_augmented"], y_valid)
    weights = {"part5_resnet": w, "part3_augmented": 1 - w}
    p_test = fuse({m: p_test_by_member[m] for m in weights}, weights)
    model = LateFusion(list(weights)).set_weights(weights)     # save it with extra={"late_fusion": ...}

The checkpoint of the final model records ``extra={"late_fusion": {"members": {part id: weight}}}``;
the autograder recomputes every member's clip probabilities with that member's own code and checkpoint
and fuses them with these weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)  # 0.00, 0.05, ..., 1.00: candidate weights of the first member


def _check_weights(weights: dict) -> dict[str, float]:
    """``weights`` as {member: float}; ValueError (one line) unless finite, >= 0 and summing to 1."""
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"weights: expected a non-empty dict {{part id: weight}}, got {weights!r}")
    out = {}
    for name, w in weights.items():
        try:
            out[str(name)] = float(w)
        except (TypeError, ValueError):
            raise ValueError(f"weights[{name!r}]: expected a number, got {w!r}") from None
        if not np.isfinite(out[str(name)]) or out[str(name)] < 0:
            raise ValueError(f"weights[{name!r}]: expected a finite weight >= 0, got {w!r}")
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"weights: must sum to 1, they sum to {sum(out.values()):.6g}")
    return out


def fuse(probs: dict, weights: dict) -> np.ndarray:
    """Weighted mean of the members' clip probabilities.

    Args:
        probs: {member: (clips, classes) float array}, the same shape for every member.
        weights: {member: weight}, the same members, weights finite, >= 0, summing to 1.

    Returns:
        float64 (clips, classes): sum over members of weight * probabilities.
    Raises ValueError (one line) for missing members, different shapes or invalid weights.
    """
    weights = _check_weights(weights)
    missing = sorted(set(weights) - set(probs))
    if missing:
        raise ValueError(f"probs: no probabilities for member(s) {', '.join(missing)}")
    arrays = {m: np.asarray(probs[m], dtype=np.float64) for m in weights}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"probs: expected one (clips, classes) shape for all members, got {sorted(shapes)}")
    return sum(w * arrays[m] for m, w in weights.items())


def log_loss(y_true, probs) -> float:
    """Mean negative log-probability of the true class (natural log; probabilities clipped at 1e-12)."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0))))


def choose_weight(probs_a, probs_b, y_true, grid=WEIGHT_GRID) -> tuple[float, list[dict]]:
    """Choose w in ``grid`` for ``w * probs_a + (1 - w) * probs_b`` on labelled (validation) clips.

    Args:
        probs_a, probs_b: (clips, classes) clip probabilities of the two members.
        y_true: (clips,) int labels.
        grid: candidate weights in [0, 1].

    Returns:
        (w, table): the weight with the highest accuracy, ties broken by the lower log-loss, then by
        the weight closest to 0.5 (a validation set of a few dozen clips often ties); ``table`` has one
        ``{"weight", "accuracy", "log_loss"}`` dict per candidate, in grid order.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    table = []
    for w in grid:
        p = fuse({"a": probs_a, "b": probs_b}, {"a": float(w), "b": 1.0 - float(w)})
        table.append({"weight": float(w), "accuracy": float(np.mean(p.argmax(1) == y_true)),
                      "log_loss": log_loss(y_true, p)})
    best = max(table, key=lambda r: (r["accuracy"], -r["log_loss"], -abs(r["weight"] - 0.5)))
    return best["weight"], table


class LateFusion(nn.Module):
    """The final model as a checkpointable module: the member names and their weights (a buffer).

    Args:
        members: the part ids of the members, in order (e.g. ``["part5_resnet", "part3_augmented"]``).

    Buffers: ``weights`` float32 (len(members),), equal weights until ``set_weights``.
    forward(*probs): one (clips, classes) tensor of clip probabilities per member, in ``members``
        order -> (clips, classes) float32, their weighted sum.
    set_weights({member: weight}): sets the buffer (weights finite, >= 0, summing to 1); returns self.
    as_dict(): {member: weight}, what the checkpoint's ``extra["late_fusion"]["members"]`` records.
    """

    def __init__(self, members: list):
        super().__init__()
        members = [str(m) for m in members]
        if not members or len(set(members)) != len(members):
            raise ValueError(f"members: expected distinct part ids, got {members!r}")
        self.members = members
        self.register_buffer("weights", torch.full((len(members),), 1.0 / len(members)))

    def set_weights(self, weights: dict) -> LateFusion:
        weights = _check_weights(weights)
        if set(weights) != set(self.members):
            raise ValueError(f"weights: expected the members {self.members}, got {sorted(weights)}")
        with torch.no_grad():
            self.weights.copy_(torch.tensor([weights[m] for m in self.members]))
        return self

    def as_dict(self) -> dict[str, float]:
        return {m: float(w) for m, w in zip(self.members, self.weights.tolist())}

    def forward(self, *probs: torch.Tensor) -> torch.Tensor:
        if len(probs) != len(self.members):
            raise ValueError(f"expected {len(self.members)} probability tensors ({', '.join(self.members)}), "
                             f"got {len(probs)}")
        stacked = torch.stack([torch.as_tensor(p, dtype=torch.float32) for p in probs])  # (members, clips, classes)
        return torch.einsum("m,mck->ck", self.weights, stacked)
