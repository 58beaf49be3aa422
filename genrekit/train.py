"""Training and evaluation plumbing for any ``nn.Module`` classifier that returns logits.

Example::

    from genrekit import train
    X_tr, X_va = train.stack(feats_tr), train.stack(feats_va)        # (N, 1, mels, frames) float32
    history = train.fit(model, (X_tr, y_tr), (X_va, y_va), epochs=20, lr=1e-3, seed=0)
    probs = train.predict_proba(model, X_te)                           # (N, classes) numpy

``fit`` shows a tqdm bar on stdout, validates every epoch, keeps the weights of the best epoch by
validation accuracy (ties go to the lower validation loss) and returns the history. A model whose
``forward`` returns a dict is read at key ``"logits"``.

Ensembles trained as independent members: a model whose ``forward`` returns, in train mode, a dict
``{"logits": (B, C), "member_logits": (B, H, C)}`` is trained on the mean over its H members of
``loss_fn(member_logits[:, h], y)``: each member learns as if it were alone, up to the 1/H of the mean
(no member leans on the others, as it would if the loss were taken on the combined ``"logits"``);
``train_loss`` is then that mean, ``valid_loss`` the combined model's; accuracy is read from
``"logits"``. ``genre.fusion.HeadEnsemble`` is one.

Two more things ``fit`` does for the later parts:
- ``valid_score=fn``: the best epoch is chosen by ``fn(model)`` (called in eval mode after each
  epoch; higher is better), e.g. clip-level accuracy while training on segments.
- Models with several inputs: give a Dataset whose items are ``(x1, x2, ..., y)`` (e.g.
  ``TensorDataset(x_mel, x_emb, y)``); the model is called as ``model(x1, x2, ...)``.
"""

from __future__ import annotations

import copy
import random
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genrekit.progress import bar


def default_device() -> torch.device:
    """CUDA when available, else Apple MPS, else CPU (never hard-code a device)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fix_length(x: np.ndarray, frames: int) -> np.ndarray:
    """Crop or pad the last axis of ``x`` to exactly ``frames`` (pads by repeating the edge)."""
    if x.shape[-1] >= frames:
        return x[..., :frames]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, frames - x.shape[-1])]
    return np.pad(x, pad, mode="edge")


def stack(features, frames: int | None = None) -> torch.Tensor:
    """Stack a list of (mels, frames_i) arrays into a float32 tensor (N, 1, mels, frames).

    Lengths differ slightly between real clips: each is cut (or edge-padded) to ``frames``, by default
    the shortest length in the list.
    """
    if len(features) == 0:
        raise ValueError("stack: no features given")
    frames = frames or min(f.shape[-1] for f in features)
    arr = np.stack([fix_length(np.asarray(f, dtype=np.float32), frames) for f in features])
    return torch.from_numpy(arr[:, None] if arr.ndim == 3 else arr)


def _loader(data, batch_size, shuffle, seed=0):
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, torch.utils.data.Dataset):
        ds = data
    else:
        x, y = data
        ds = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))
    gen = torch.Generator().manual_seed(seed)
    # training: drop a last batch of one sample (batch norm cannot normalise a single value)
    drop_last = shuffle and len(ds) % batch_size == 1 and len(ds) > 1
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen if shuffle else None,
                      drop_last=drop_last)


def logits_of(output) -> torch.Tensor:
    """The logits of a model's output: the tensor itself, or ``output['logits']`` for dict outputs."""
    return output["logits"] if isinstance(output, dict) else output


def _loss(loss_fn, output, y) -> torch.Tensor:
    """loss_fn on the output's logits, or its mean over the members when it carries "member_logits"."""
    members = output.get("member_logits") if isinstance(output, dict) else None
    if members is None:
        return loss_fn(logits_of(output), y)
    if members.dim() != 3 or members.shape[0] != len(y):
        raise ValueError(f"member_logits must be (B, H, C) with B = {len(y)}, got {tuple(members.shape)}")
    return torch.stack([loss_fn(members[:, h], y) for h in range(members.shape[1])]).mean()


def _run_epoch(model, loader, loss_fn, device, optimizer=None, desc="", progress=True):
    training = optimizer is not None
    model.train(training)
    total_loss, correct, count = 0.0, 0, 0
    with torch.set_grad_enabled(training):
        for *xs, y in bar(loader, desc=desc, disable=not progress):
            xs, y = [x.to(device) for x in xs], y.to(device)
            output = model(*xs)
            logits = logits_of(output)
            loss = _loss(loss_fn, output, y)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            count += len(y)
    return total_loss / max(count, 1), correct / max(count, 1)


def fit(model: nn.Module, train_data, valid_data=None, *, epochs: int = 20, batch_size: int = 32,
        lr: float = 1e-3, weight_decay: float = 1e-4, optimizer: torch.optim.Optimizer | None = None,
        scheduler=None, loss_fn: nn.Module | None = None, seed: int = 0, device=None,
        progress: bool = True, valid_score=None) -> dict:
    """Train ``model`` and keep its best epoch; returns the history.

    train_data / valid_data: (X, y) with X (N, ...) float and y (N,) int class indices, a torch
    Dataset, or a DataLoader. ``optimizer`` defaults to AdamW(lr, weight_decay) over all parameters
    (pass your own for per-group learning rates or frozen layers); ``scheduler`` is stepped per epoch
    (ReduceLROnPlateau with the validation loss).
    ``valid_score``: optional ``fn(model) -> float`` called after each epoch with the model in eval
    mode; the best epoch is then the one with the highest score (ties: lower validation loss).
    History: {'train_loss', 'train_acc', 'valid_loss', 'valid_acc', 'valid_score': lists per epoch,
    'best_epoch' (1-based), 'best_valid_acc', 'best_valid_score', 'seconds', 'epochs', 'batch_size',
    'seed', 'lr' (the initial learning rate of each parameter group)}.
    After ``fit`` the model holds the weights of the best epoch (the last one without validation).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    seed_everything(seed)
    device = torch.device(device) if device else default_device()
    model.to(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_loader = _loader(train_data, batch_size, shuffle=True, seed=seed)
    valid_loader = _loader(valid_data, batch_size, shuffle=False) if valid_data is not None else None
    history = {"train_loss": [], "train_acc": [], "valid_loss": [], "valid_acc": [], "valid_score": [],
               "best_epoch": 0, "best_valid_acc": None, "best_valid_score": None,
               "epochs": epochs, "batch_size": batch_size, "seed": seed,
               "lr": [group["lr"] for group in optimizer.param_groups]}
    best_key, best_state = None, None
    start = time.perf_counter()
    epoch_bar = bar(range(1, epochs + 1), desc="epochs", disable=not progress, leave=True)
    for epoch in epoch_bar:
        tr_loss, tr_acc = _run_epoch(model, train_loader, loss_fn, device, optimizer, "train", progress)
        history["train_loss"].append(tr_loss)
        history["train_acc"].append(tr_acc)
        if valid_loader is not None or valid_score is not None:
            va_loss, va_acc = (_run_epoch(model, valid_loader, loss_fn, device, None, "valid", progress)
                               if valid_loader is not None else (float("nan"), float("nan")))
            history["valid_loss"].append(va_loss)
            history["valid_acc"].append(va_acc)
            if valid_score is not None:
                model.eval()
                with torch.no_grad():
                    score = float(valid_score(model))
                history["valid_score"].append(score)
            key = (score if valid_score is not None else va_acc, -va_loss if va_loss == va_loss else 0.0)
            if best_key is None or key > best_key:
                best_key, best_state = key, copy.deepcopy(model.state_dict())
                history["best_epoch"], history["best_valid_acc"] = epoch, va_acc
                history["best_valid_score"] = key[0] if valid_score is not None else None
            shown = {"val_acc": f"{va_acc:.2f}"} if valid_loader is not None else {}
            if valid_score is not None:
                shown["val_score"] = f"{key[0]:.2f}"
            epoch_bar.set_postfix(loss=f"{tr_loss:.3f}", acc=f"{tr_acc:.2f}", **shown)
        else:
            history["best_epoch"] = epoch
            epoch_bar.set_postfix(loss=f"{tr_loss:.3f}", acc=f"{tr_acc:.2f}")
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            va = history["valid_loss"][-1] if history["valid_loss"] else float("nan")
            scheduler.step(va if va == va else tr_loss)
        elif scheduler is not None:
            scheduler.step()
    if best_state is not None:
        model.load_state_dict(best_state)
    history["seconds"] = time.perf_counter() - start
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, *inputs, batch_size: int = 64, device=None) -> np.ndarray:
    """Logits of ``model`` over the inputs in batches, shape (N, classes), float32 numpy; eval mode.

    ``inputs``: one array/tensor (N, ...) per argument of the model's forward (usually one).
    """
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    xs = [torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32) for x in inputs]
    n = len(xs[0])
    out = [logits_of(model(*[x[i:i + batch_size].to(device) for x in xs])).float().cpu()
           for i in range(0, n, batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def predict_proba(model: nn.Module, x, batch_size: int = 64, device=None) -> np.ndarray:
    """Class probabilities (softmax of the logits), shape (N, classes), float32 numpy; eval mode."""
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    x = torch.as_tensor(x, dtype=torch.float32)
    out = [torch.softmax(logits_of(model(x[i:i + batch_size].to(device))), dim=1).cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: nn.Module, x, y, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, dict]:
    """Predictions (N,), probabilities (N, classes) and metrics.summary of ``model`` on (x, y)."""
    from genrekit import metrics
    probs = predict_proba(model, x, batch_size)
    return probs.argmax(axis=1), probs, metrics.summary(np.asarray(y), probs)
