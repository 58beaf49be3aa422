"""Plots a person would rather look at: confusion matrix and training curves (PNG and inline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrekit import config


def _pyplot():
    import matplotlib
    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
        matplotlib.use("Agg")  # headless unless a notebook already chose the inline backend
    import matplotlib.pyplot as plt
    return plt


def confusion_matrix(cm, path=None, title: str = "Confusion matrix", normalize: bool = True):
    """Draw a (classes, classes) confusion matrix (rows true, columns predicted); save to ``path``."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(config.GENRES)), config.GENRES, rotation=45, ha="right")
    ax.set_yticks(range(len(config.GENRES)), config.GENRES)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                        color="white" if shown[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _finish(fig, path)


def training_curves(history: dict, path=None, title: str = "Training"):
    """Loss and accuracy per epoch for train and valid, best epoch marked; save to ``path``."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    for split, style in (("train", "-"), ("valid", "--")):
        losses = np.asarray(history.get(f"{split}_loss") or [], dtype=float)
        if len(losses) and np.isfinite(losses).any():
            ax_loss.plot(epochs, losses, style, label=split)
            ax_acc.plot(epochs, history[f"{split}_acc"], style, label=split)
    if history.get("valid_score"):  # the score the best epoch was chosen by (e.g. clip accuracy)
        ax_acc.plot(epochs, history["valid_score"], "-.", label=history.get("valid_score_name", "valid score"))
    if history.get("best_epoch"):
        for ax in (ax_loss, ax_acc):
            ax.axvline(history["best_epoch"], color="grey", lw=0.8, ls=":", label="best epoch")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title=f"{title}: loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=f"{title}: accuracy")
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    return _finish(fig, path)


def bars(labels, values, path=None, title: str = "", ylabel: str = "accuracy", errors=None, ylim=(0, 1.02)):
    """A bar chart of one value per label (e.g. clip accuracy per segment length), values written on
    the bars; ``errors``: optional half-widths drawn as error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 3.6))
    x = np.arange(len(labels))
    ax.bar(x, values, yerr=errors, color="tab:blue", alpha=0.8, capsize=3)
    for xi, v in zip(x, values):
        ax.text(xi, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [str(l) for l in labels], rotation=20 if max(len(str(l)) for l in labels) > 8 else 0)
    ax.set(ylabel=ylabel, title=title, ylim=ylim)
    fig.tight_layout()
    return _finish(fig, path)


def _finish(fig, path):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig
