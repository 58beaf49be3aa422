"""Part 4: transfer learning from pretrained musicnn embeddings, and fusion with your own CNN.

MSD_musicnn was trained to tag hundreds of thousands of songs of the Million Song Dataset; its
internal features already separate genres well. You pool them into one vector per clip (or segment),
classify that vector with a small MLP, and fuse it with the embedding of your part 2/3 CNN.

The dimension chain (the toolkit computes the musicnn part, cached; you write the rest)::

    audio, 16 kHz          genrekit.musicnn.embed(y, layer="max_pool")  -> (rows, 753): one row per 3 s patch
    rows of a clip/segment pool_frames                                  -> (1506,) = [mean (753), max (753)]
    EmbeddingMLP(in_dim=1506)                                           -> logits (8,)
    FusionNet(cnn_kwargs, musicnn_dim=1506): log-mel segment (1, 96, T) + the pooled musicnn vector of
                                             its clip (or of its own rows)  -> logits (8,)

Normalisation statistics are *data*: they are fitted once on the training set and stored in the model
(as buffers, so ``state_dict`` and therefore the checkpoint carry them). Computing them from the data
you are about to classify (e.g. the test set) leaks information about it and makes a prediction depend
on what else is in the batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from genre.models import BaselineCNN
from genrekit import config

STD_FLOOR = 1e-6  # smallest standard deviation used for dividing: a constant feature maps to 0, not to inf/NaN


def pool_frames(frames) -> np.ndarray:
    """Pool the musicnn rows of one clip or one segment into a single vector: [mean, max].

    Args:
        frames: array of shape (n, d), float (numpy array, or anything ``np.asarray`` accepts), n >= 1:
            one row per musicnn patch of the clip or segment, e.g. (10, 753) for a 30 s clip with
            ``genrekit.musicnn.embed(y, layer="max_pool")``.

    Returns:
        float32 numpy array of shape (2 * d,): the mean over the rows (axis 0) in the first d values,
        then the maximum over the rows in the last d values. A single row gives [row, row].

    Raises ValueError (one line naming ``frames``) when frames is not 2-D, has no rows or no columns,
    or holds NaN/inf.
    Why both: the mean says what is typical of the clip, the max keeps what is strong in only a few
    patches (a short guitar solo, a drum fill) and would be averaged away.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] == 0 or frames.shape[1] == 0:
        raise ValueError(f"pool_frames: frames must have shape (n, d) with n, d >= 1, got {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError("pool_frames: frames contains NaN or inf")
    # YOUR CODE HERE
    raise NotImplementedError()


class Standardize(nn.Module):
    """Per-feature standardisation, (x - mean) / std, with statistics fitted on the training set.

    Args:
        dim: number of features (>= 1).

    Buffers (registered with ``register_buffer``, so they are in ``state_dict()`` and in checkpoints,
    move with ``.to(device)``, and are never changed by an optimiser):
        mean: float32 (dim,), initially all 0.
        std:  float32 (dim,), initially all 1.
    Before ``fit`` the layer is therefore the identity (a freshly built model runs; the grader refuses
    a checkpoint whose statistics were never fitted).

    fit(x_train): x_train (N, dim) float array or tensor of the TRAINING set, N >= 2. Sets ``mean`` to
        the per-feature mean and ``std`` to the per-feature standard deviation over the N rows
        (population std, dividing by N as sklearn's StandardScaler; dividing by N - 1 is accepted too),
        floored at STD_FLOOR so that a constant feature gives 0 instead of inf/NaN. Returns self.
        Raises ValueError (one line naming x_train) for a wrong shape, fewer than 2 rows, or NaN/inf.
    forward(x): x (B, dim) float32 -> (B, dim) float32, (x - mean) / std with the STORED statistics:
        the result for one row never depends on the other rows of the batch.
        Raises ValueError (naming x) when x is not (B, dim).
    Hint: ``self.register_buffer("mean", torch.zeros(dim))``; in fit, ``self.mean.copy_(...)`` writes into the
    buffer and keeps its dtype (float32) and device.
    """

    def __init__(self, dim: int):
        super().__init__()
        if int(dim) < 1:
            raise ValueError(f"Standardize: dim must be >= 1, got {dim}")
        self.dim = int(dim)
        # YOUR CODE HERE
        raise NotImplementedError()

    @torch.no_grad()
    def fit(self, x_train) -> "Standardize":
        if torch.is_tensor(x_train):
            x_train = x_train.detach().cpu().numpy()
        x = torch.from_numpy(np.array(x_train, dtype=np.float64))  # statistics computed in float64
        if x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] < 2:
            raise ValueError(f"Standardize.fit: x_train must have shape (N >= 2, {self.dim}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("Standardize.fit: x_train contains NaN or inf")
        # x: the training set, float64 tensor (N, dim)
        # YOUR CODE HERE
        raise NotImplementedError()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"Standardize: x must have shape (batch, {self.dim}), got {tuple(x.shape)}")
        # YOUR CODE HERE
        raise NotImplementedError()


class EmbeddingMLP(nn.Module):
    """A small MLP on pooled musicnn embeddings (Alonso-Jimenez et al., "Deep embeddings with Essentia
    models", 2020: one hidden layer of 100 ReLU units).

    Args:
        in_dim: size of the input embedding (1506 for musicnn max_pool rows pooled by pool_frames).
        n_classes: number of genres (default config.NUM_CLASSES = 8).
        hidden: hidden units (default 100).
        dropout: dropout probability after the ReLU (default 0.5).

    Layers (attributes)::

        norm        Standardize(in_dim)            (B, in_dim)   statistics of the training set (buffers)
        fc          Linear(in_dim -> hidden)       (B, hidden)
                    ReLU
        dropout     Dropout(dropout)               (B, hidden)
        classifier  Linear(hidden -> n_classes)    (B, n_classes)  <- logits

    forward(x): x (B, in_dim) float32 -> logits (B, n_classes):
        classifier(dropout(relu(fc(norm(x))))).
    fit_normalization(x_train): fits ``norm`` on the training embeddings (N, in_dim); returns self.
        Call it once, with the training set only, before training.
    """

    def __init__(self, in_dim: int, n_classes: int = config.NUM_CLASSES, hidden: int = 100,
                 dropout: float = 0.5):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def fit_normalization(self, x_train) -> "EmbeddingMLP":
        self.norm.fit(x_train)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # YOUR CODE HERE
        raise NotImplementedError()


class HeadEnsemble(nn.Module):
    """H classification heads on the same input, trained independently, their probabilities averaged.

    Given code (nothing to write here): FusionNet's ``head``. Each member is
    ``Sequential(Linear(in_dim -> hidden), ReLU, Dropout(dropout), Linear(hidden -> n_classes))``
    with its own initial weights and its own dropout draws.

    forward(x): x (B, in_dim) ->
        heads == 1: the member's logits (B, n_classes), in every mode (a plain head);
        eval mode: log of the members' mean probability, log(mean_h softmax(member_h(x))) (B, n_classes):
            logits whose softmax is exactly the averaged probabilities;
        train mode: {"logits": the same (B, n_classes), "member_logits": (B, H, n_classes)}:
            ``genrekit.train.fit`` then trains each member on its own cross-entropy (the mean over members),
            so the members stay independent models and their errors partly cancel in the average.

    Why: with a few hundred training segments one head's test accuracy depends on its random start by
    several clips; averaging a few heads that share everything else (the CNN, the inputs) removes most
    of that noise for the price of a few small matrix products.
    """

    def __init__(self, in_dim: int, hidden: int, n_classes: int, dropout: float, heads: int = 1):
        super().__init__()
        if int(heads) != heads or heads < 1:
            raise ValueError(f"HeadEnsemble: heads must be a positive integer, got {heads!r}")
        self.members = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
            for _ in range(int(heads)))

    def forward(self, x: torch.Tensor):
        if len(self.members) == 1:
            return self.members[0](x)
        member_logits = torch.stack([m(x) for m in self.members], dim=1)                # (B, H, C)
        logits = torch.logsumexp(torch.log_softmax(member_logits, dim=2), dim=1) - math.log(len(self.members))
        return {"logits": logits, "member_logits": member_logits} if self.training else logits


class FusionNet(nn.Module):
    """Fusion of your CNN's embedding of a segment and a pooled musicnn vector for the same segment: the
    vector of its clip (the notebook's default) or of the segment's own rows (``MUSICNN_CONTEXT``, 4.7).

    Args:
        cnn_kwargs: keyword arguments of your BaselineCNN (e.g. the ``model.kwargs`` of your part 3
            checkpoint); the CNN branch is ``BaselineCNN(**cnn_kwargs)``. Building it here, from plain
            arguments, lets ``genrekit.checkpoint.load_model`` rebuild a FusionNet from its checkpoint.
        musicnn_dim: size of the pooled musicnn vector (1506).
        n_classes: number of genres (default config.NUM_CLASSES = 8).
        hidden: hidden units of the head (default 100).
        dropout: dropout probability in the head (default 0.5).
        cnn_dropout: branch dropout of the CNN embedding, 0 <= cnn_dropout < 1 (default 0: off). In train
            mode each example's normalised CNN embedding is replaced by zeros with this probability (one
            draw per example, the same for all its C values, NOT rescaled by 1 / (1 - p)), so the head
            also learns to classify from musicnn alone. In eval mode it does nothing.
        heads: number of classification heads averaged (default 1; ``HeadEnsemble``, given above).

    Layers (attributes; C = cnn.embedding_dim, 64 by default, M = musicnn_dim)::

        cnn       BaselineCNN(**cnn_kwargs): cnn.embed(x_mel)     (B, C)   (its own classifier is unused)
        cnn_norm  LayerNorm(C)                                     (B, C)
                  train mode: each row zeroed with probability cnn_dropout
        emb_norm  Standardize(M), fitted on the training set       (B, M)
                  concatenation [cnn_norm(...), emb_norm(...)]     (B, C + M)
        head      HeadEnsemble(C + M, hidden, n_classes, dropout, heads): with heads=1 one
                  Sequential(Linear(C + M -> hidden), ReLU, Dropout(dropout), Linear(hidden -> n_classes))

    Why branch dropout: a CNN branch trained on the very segments the head is trained on embeds them far
    better than it will embed new clips, so the head learns to trust it more than it deserves; dropping
    it for a random half of the examples makes the head use the musicnn evidence as well ("modality
    dropout"). Not rescaling keeps the kept embeddings exactly as they will be at test time; zero is
    the mean of a LayerNorm output, i.e. "no information from this branch".

    Why LayerNorm on the CNN branch: while the CNN trains its embedding keeps changing scale, so
    statistics fitted once would go stale; LayerNorm normalises each embedding on its own (no running
    statistics, the same in train and eval mode, fine with a frozen CNN), so neither branch drowns the
    other by sheer scale. The musicnn branch is fixed, so its statistics are fitted once (Standardize).

    forward(x_mel, emb): x_mel (B, 1, n_mels, T) float32 log-mel in dB, emb (B, M) float32 pooled
        musicnn vectors for the same segments (row i goes with segment i) -> what ``head`` returns for
        the fused (B, C + M) input, unchanged: logits (B, n_classes); with heads > 1 in train mode the
        head's dict {"logits", "member_logits" (B, heads, n_classes)}, which train.fit trains on.
    fit_normalization(emb_train): fits ``emb_norm`` on the training embeddings (N, M); returns self.
    load_cnn_state(state_dict): initialises the CNN branch from a BaselineCNN state_dict (or a whole
        checkpoint dict), e.g. your part 3 checkpoint; returns self.
    freeze_cnn(flag=True): with flag True the CNN branch stops learning: its parameters get
        ``requires_grad = False`` and the branch stays in eval mode even under ``model.train()`` (its
        batch norms keep the running statistics they were trained with instead of drifting to those
        of the fusion batches). Sets ``cnn_frozen``. flag False makes it trainable again and lets it
        follow train()/eval(). Returns self.
    """

    def __init__(self, cnn_kwargs: dict, musicnn_dim: int, n_classes: int = config.NUM_CLASSES,
                 hidden: int = 100, dropout: float = 0.5, cnn_dropout: float = 0.0, heads: int = 1):
        super().__init__()
        if not 0.0 <= float(cnn_dropout) < 1.0:
            raise ValueError(f"FusionNet: cnn_dropout must be in [0, 1), got {cnn_dropout}")
        self.cnn = BaselineCNN(**dict(cnn_kwargs or {}))
        self.cnn_frozen = False
        self.cnn_dropout = float(cnn_dropout)
        # YOUR CODE HERE
        raise NotImplementedError()

    def fit_normalization(self, emb_train) -> "FusionNet":
        self.emb_norm.fit(emb_train)
        return self

    def load_cnn_state(self, state_dict) -> "FusionNet":
        if "state_dict" in state_dict and "format" in state_dict:  # a whole genrekit checkpoint
            state_dict = state_dict["state_dict"]
        self.cnn.load_state_dict(state_dict, strict=True)
        return self

    def train(self, mode: bool = True) -> "FusionNet":
        """nn.Module.train, except that a frozen CNN branch stays in eval mode (see freeze_cnn)."""
        super().train(mode)
        if self.cnn_frozen:
            self.cnn.eval()
        return self

    def freeze_cnn(self, flag: bool = True) -> "FusionNet":
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x_mel: torch.Tensor, emb: torch.Tensor) -> torch.Tensor | dict:
        # YOUR CODE HERE
        raise NotImplementedError()
