"""Hidden checks of part 4: musicnn pooling, standardisation, the MLP, fusion, retrieval, checkpoints.

Each check probes one idea on inputs students have not seen and fails with a one-line message naming
it. The wrong answers the issue lists fail exactly the checks aimed at them (tests/test_fusion.py
proves it with a table); in particular the fusion checks never depend on the student's Standardize
being right (check_fusion_normalisation swaps in a reference one), and the ranking check ignores the
query itself (whether it is left out is check_neighbours_query_left_out's business).

The checkpoint checks (check_mlp_checkpoint, check_fusion_checkpoint) are for the grader: call them
with the dict of ``genrekit.checkpoint.load(path)`` (or a state_dict, or a model) before measuring
accuracy; their message is the one-line reason for the row and the feedback.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from autograder.checks.common import hidden
from genrekit import config, musicnn

# --- what the grader feeds the part 4 models ---------------------------------------------------------
MUSICNN_MODEL = "MSD_musicnn"                              # trained on Million Song Dataset tags
MUSICNN_LAYER = "max_pool"                                 # one 753-dim row per 3 s patch
EMBEDDING_DIM = 2 * musicnn.LAYERS[MUSICNN_LAYER]          # 1506: the rows pooled to [mean, max]


# --- helpers -------------------------------------------------------------------------------------------

def _tensor(x) -> torch.Tensor:
    """A plain float64 CPU tensor copy of a student's output (a tensor subclass cannot lie afterwards)."""
    t = torch.as_tensor(x)
    if type(t) is not torch.Tensor:
        t = t.as_subclass(torch.Tensor)
    return t.detach().to("cpu", torch.float64).clone()


def _array(x, dtype=np.float64) -> np.ndarray:
    if torch.is_tensor(x):
        x = _tensor(x).numpy()
    return np.array(np.asarray(x, dtype=dtype), dtype=dtype)  # a base-class copy


def _close(a, b, atol=1e-4, rtol=1e-4) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol))


def _mel(batch: int, frames: int, seed: int) -> torch.Tensor:
    """Log-mel-like input (B, 1, n_mels, frames) in dB."""
    g = torch.Generator().manual_seed(seed)
    return 12 * torch.randn(batch, 1, config.N_MELS, frames, generator=g) - 35


def _embeddings(n: int, dim: int, seed: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """musicnn-like rows: non-negative-ish, per-feature offsets and scales differing widely."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-2, 6, size=dim) + loc
    scales = rng.uniform(0.3, 4.0, size=dim) * scale
    return (offsets + scales * rng.standard_normal((n, dim))).astype(np.float32)


class _ReferenceStandardize(nn.Module):
    """(x - mean) / std with given statistics: swapped into a FusionNet so fusion checks do not depend on
    the student's Standardize."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clone())
        self.dim = len(self.mean)

    def forward(self, x):
        return (x - self.mean) / self.std


# --- pooling ------------------------------------------------------------------------------------------

@hidden
def check_pool_frames(pool_frames) -> None:
    rng = np.random.default_rng(404)
    for n, d in ((7, 5), (13, musicnn.LAYERS[MUSICNN_LAYER]), (1, 4)):
        frames = (1.5 + 3 * rng.standard_normal((n, d))).astype(np.float32)
        out = pool_frames(frames.copy())
        assert isinstance(out, np.ndarray), f"pool_frames must return a numpy array, got {type(out).__name__}"
        assert out.dtype == np.float32, f"pool_frames must return float32, got {out.dtype}"
        got = _array(out)
        mean, top = frames.astype(np.float64).mean(axis=0), frames.astype(np.float64).max(axis=0)
        if got.shape == (d,) and _close(got, mean):
            raise AssertionError("pool_frames returned only the mean over the rows: the contract asks for "
                                 "[mean, max] (2 * d values)")
        assert got.shape == (2 * d,), (f"pool_frames of ({n}, {d}) frames: expected shape ({2 * d},), got {got.shape}: "
                                       f"pool over the rows (axis 0), mean then max")
        if n > 1 and _close(got, np.concatenate([top, mean])):
            raise AssertionError("pool_frames: the mean over the rows comes first, then the max (you returned [max, mean])")
        assert _close(got[:d], mean), "pool_frames: the first d values should be the mean over the rows (axis 0)"
        assert _close(got[d:], top), "pool_frames: the last d values should be the maximum over the rows (axis 0)"


# --- standardisation -------------------------------------------------------------------------------

def _train_test(dim: int):
    x_train = _embeddings(41, dim, seed=5)
    x_test = _embeddings(9, dim, seed=6, loc=3.0, scale=2.5)  # statistics far from the training set's
    return x_train, x_test


def _train_stds(x: np.ndarray):
    x = x.astype(np.float64)
    return x.std(axis=0, ddof=0), x.std(axis=0, ddof=1)


@hidden
def check_standardize_train_statistics(standardize_cls) -> None:
    dim = 6
    x_train, x_test = _train_test(dim)
    norm = standardize_cls(dim)
    norm.fit(x_train.copy())
    norm.eval()
    with torch.no_grad():
        z = _array(norm(torch.from_numpy(x_test.copy())))
        z_one = _array(norm(torch.from_numpy(x_test[:1].copy())))
    mu = x_train.astype(np.float64).mean(axis=0)
    if not any(_close(z, (x_test - mu) / sd, atol=1e-3) for sd in _train_stds(x_train)):
        own = x_test.astype(np.float64)
        if any(_close(z, (own - own.mean(0)) / sd, atol=1e-3) for sd in _train_stds(x_test)):
            raise AssertionError("Standardize standardised the test data with its own statistics: use the mean "
                                 "and std that fit() computed on the training set")
        raise AssertionError("Standardize should return (x - mean_train) / std_train, with the per-feature "
                             "statistics fit() computed on the training set")
    assert _close(z_one, z[:1], atol=1e-3), \
        "Standardize: a row's result should not depend on the rest of the batch (use the stored statistics)"


@hidden
def check_standardize_state_dict(standardize_cls) -> None:
    dim = 5
    fresh = standardize_cls(dim)
    state = fresh.state_dict()
    assert "mean" in state and "std" in state, (
        f"the statistics should be buffers named mean and std (register_buffer), so that state_dict() and the "
        f"checkpoint carry them; state_dict() has {sorted(state) or 'no entries'}")
    params = [name for name, _ in fresh.named_parameters()]
    assert not params, f"mean and std should be buffers, not nn.Parameters ({params}): an optimiser would change them"
    m0, s0 = _tensor(state["mean"]), _tensor(state["std"])
    assert tuple(m0.shape) == (dim,) and tuple(s0.shape) == (dim,), \
        f"Standardize({dim}): mean and std should have shape ({dim},), got {tuple(m0.shape)} and {tuple(s0.shape)}"
    assert bool((m0 == 0).all()) and bool((s0 == 1).all()), "before fit, mean should be all 0 and std all 1"
    x_train, x_test = _train_test(dim)
    norm = standardize_cls(dim)
    norm.fit(x_train.copy())
    state = {k: v.detach().clone() for k, v in norm.state_dict().items()}
    assert _close(_tensor(state["mean"]), x_train.astype(np.float64).mean(0), atol=1e-3), \
        "after fit, the mean buffer should hold the per-feature mean of the training set"
    assert any(_close(_tensor(state["std"]), sd, atol=1e-3) for sd in _train_stds(x_train)), \
        "after fit, the std buffer should hold the per-feature standard deviation of the training set"
    rebuilt = standardize_cls(dim)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        x = torch.from_numpy(x_test.copy())
        same = _close(_array(rebuilt(x)), _array(norm(x)), atol=1e-5)
    assert same, "a Standardize rebuilt from state_dict() should standardise like the fitted one: keep every statistic in buffers"


@hidden
def check_standardize_constant_feature(standardize_cls) -> None:
    dim = 4
    x_train = _embeddings(12, dim, seed=9)
    x_train[:, 1] = 3.25   # a constant feature (std 0)
    x_train[:, 3] = 0.0    # a dead unit
    norm = standardize_cls(dim)
    norm.fit(x_train.copy())
    with torch.no_grad():
        z = _array(norm(torch.from_numpy(x_train.copy())))
    assert np.isfinite(z).all(), "a constant feature (std 0) gave inf or NaN: floor the std at STD_FLOOR before dividing"
    assert np.allclose(z[:, [1, 3]], 0, atol=1e-3), "a constant feature should be standardised to 0"


# --- the MLP ----------------------------------------------------------------------------------------

@hidden
def check_mlp_forward(mlp_cls) -> None:
    torch.manual_seed(7)
    in_dim, n_classes, hidden_units = 13, 5, 7
    model = mlp_cls(in_dim, n_classes=n_classes, hidden=hidden_units, dropout=0.5)
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [(in_dim, hidden_units), (hidden_units, n_classes)], (
        f"EmbeddingMLP({in_dim}, n_classes={n_classes}, hidden={hidden_units}) should have two Linear layers "
        f"{in_dim} -> {hidden_units} -> {n_classes}, got {linears}")
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.5], f"EmbeddingMLP(dropout=0.5) should have one Dropout(0.5), got {drops}"
    model.fit_normalization(_embeddings(30, in_dim, seed=12))
    model.eval()
    x = torch.from_numpy(_embeddings(6, in_dim, seed=13, loc=1.0))
    with torch.no_grad():
        out = _array(model(x))
        normed = model.norm(x)
        ref = _array(model.classifier(torch.relu(model.fc(normed))))
        no_relu = _array(model.classifier(model.fc(normed)))
        no_norm = _array(model.classifier(torch.relu(model.fc(x))))
    assert out.shape == (6, n_classes), f"EmbeddingMLP on (6, {in_dim}): expected logits (6, {n_classes}), got {out.shape}"
    if not _close(out, ref):
        if _close(out, no_norm):
            raise AssertionError("EmbeddingMLP.forward should standardise the input with self.norm first")
        if _close(out, no_relu):
            raise AssertionError("EmbeddingMLP.forward: the ReLU after the hidden layer is missing")
        raise AssertionError("EmbeddingMLP.forward should be classifier(dropout(relu(fc(norm(x))))) and return logits")
    model.train()
    with torch.no_grad():
        a, b = _array(model(x)), _array(model(x))
    assert not _close(a, b), "EmbeddingMLP: dropout is not active in train mode"


# --- fusion -----------------------------------------------------------------------------------------

def _fusion(fusion_cls, musicnn_dim, n_classes, hidden_units, channels, seed, dropout=0.0):
    torch.manual_seed(seed)
    model = fusion_cls(cnn_kwargs={"channels": channels, "n_classes": 3}, musicnn_dim=musicnn_dim,
                       n_classes=n_classes, hidden=hidden_units, dropout=dropout)
    model.fit_normalization(_embeddings(25, musicnn_dim, seed=seed))
    return model


@hidden
def check_fusion_forward(fusion_cls) -> None:
    model = _fusion(fusion_cls, musicnn_dim=11, n_classes=5, hidden_units=9, channels=(4, 4, 8, 6), seed=21,
                    dropout=0.2).eval()
    assert getattr(model.cnn, "embedding_dim", None) == 6, "FusionNet.cnn should be BaselineCNN(**cnn_kwargs)"
    for frames in (40, 126):
        with torch.no_grad():
            out = _array(model(_mel(3, frames, frames), torch.from_numpy(_embeddings(3, 11, seed=frames))))
        assert out.shape == (3, 5), f"FusionNet(n_classes=5) on 3 segments of {frames} frames: expected (3, 5), got {out.shape}"
        assert np.isfinite(out).all(), "FusionNet returned NaN or inf"
    assert not np.allclose(out.sum(axis=1), 1.0), "FusionNet should return logits, not probabilities"


@hidden
def check_fusion_both_branches(fusion_cls) -> None:
    model = _fusion(fusion_cls, musicnn_dim=10, n_classes=4, hidden_units=16, channels=(4, 8, 8, 8), seed=31).eval()
    x1, x2 = _mel(4, 50, 1), _mel(4, 50, 2)
    e1, e2 = (torch.from_numpy(_embeddings(4, 10, seed=s)) for s in (3, 4))
    with torch.no_grad():
        base = _array(model(x1, e1))
        dx = np.abs(_array(model(x2, e1)) - base).max()
        de = np.abs(_array(model(x1, e2)) - base).max()
    scale = max(np.abs(base).max(), 1e-3)
    assert dx > 1e-4 * scale, ("FusionNet's output does not change when the log-mel changes: the CNN branch is dropped "
                               "(concatenate the normalised cnn.embed(x_mel) with the musicnn branch)")
    assert de > 1e-4 * scale, ("FusionNet's output does not change when the musicnn embedding changes: the musicnn "
                               "branch is dropped (concatenate emb_norm(emb) with the CNN branch)")


@hidden
def check_fusion_normalisation(fusion_cls) -> None:
    dim = 7
    model = _fusion(fusion_cls, musicnn_dim=dim, n_classes=3, hidden_units=12, channels=(4, 4, 8, 8), seed=41).eval()
    x = _mel(3, 60, 5)
    e = torch.from_numpy(_embeddings(3, dim, seed=8))
    rng = np.random.default_rng(3)
    mu, sd = rng.uniform(-1, 3, dim), rng.uniform(0.5, 2.0, dim)
    a, b = rng.uniform(3, 8, dim), rng.uniform(-20, 20, dim)
    with torch.no_grad():
        model.emb_norm = _ReferenceStandardize(mu, sd)
        o1 = _array(model(x, e))
        model.emb_norm = _ReferenceStandardize(a * mu + b, a * sd)
        o2 = _array(model(x, torch.as_tensor(a, dtype=torch.float32) * e + torch.as_tensor(b, dtype=torch.float32)))
        one = _array(model(x[:1], (torch.as_tensor(a, dtype=torch.float32) * e + torch.as_tensor(b, dtype=torch.float32))[:1]))
    assert _close(o1, o2, atol=1e-3, rtol=1e-3), \
        "FusionNet should standardise the musicnn embedding with self.emb_norm (statistics fitted on the training set)"
    assert _close(one, o2[:1], atol=1e-3, rtol=1e-3), \
        "FusionNet: a segment's logits should not depend on the rest of the batch (use emb_norm's stored statistics)"
    bns = [m for m in model.cnn.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        bns[-1].weight.mul_(9.0)
        bns[-1].bias.mul_(9.0)  # the CNN embedding is now 9 times larger (ReLU and pooling are homogeneous)
        o3 = _array(model(x, torch.as_tensor(a, dtype=torch.float32) * e + torch.as_tensor(b, dtype=torch.float32)))
    assert _close(o3, o2, atol=1e-3, rtol=1e-3), \
        "FusionNet should normalise the CNN embedding (cnn_norm, a LayerNorm) before the concatenation"


@hidden
def check_fusion_freeze(fusion_cls) -> None:
    model = _fusion(fusion_cls, musicnn_dim=6, n_classes=3, hidden_units=8, channels=(4, 4, 8, 8), seed=51)
    model.freeze_cnn(True)
    assert not any(p.requires_grad for p in model.cnn.parameters()), \
        "freeze_cnn(True) should set requires_grad = False on every parameter of the CNN branch"
    others = [n for n, p in model.named_parameters() if not n.startswith("cnn.") and not p.requires_grad]
    assert not others, f"freeze_cnn(True) should freeze the CNN branch only, not {others[:3]}"
    model.train()
    assert not any(m.training for m in model.cnn.modules()), \
        "a frozen CNN branch should stay in eval mode under model.train() (its batch norms must not update)"
    assert model.head.training, "model.train() should still put the head in train mode"
    before = {k: _tensor(v) for k, v in model.cnn.state_dict().items() if v.is_floating_point()}
    with torch.no_grad():
        model(_mel(4, 40, 9), torch.from_numpy(_embeddings(4, 6, seed=10)))
    after = model.cnn.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, _tensor(after[k]))]
    assert not changed, f"a training step changed the frozen CNN branch ({changed[0]}): keep it in eval mode"
    model.freeze_cnn(False)
    model.train()
    assert all(p.requires_grad for p in model.cnn.parameters()), "freeze_cnn(False) should make the CNN trainable again"
    assert model.cnn.training, "after freeze_cnn(False), model.train() should put the CNN branch in train mode again"


@hidden
def check_fusion_cnn_dropout(fusion_cls) -> None:
    p, n, dim = 0.3, 400, 5
    torch.manual_seed(61)
    model = fusion_cls(cnn_kwargs={"channels": (4, 4, 8, 8), "n_classes": 3}, musicnn_dim=dim, n_classes=4,
                       hidden=10, dropout=0.0, cnn_dropout=p)
    assert float(getattr(model, "cnn_dropout", -1)) == p, "FusionNet should store its cnn_dropout argument as self.cnn_dropout"
    rows = _embeddings(n, dim, seed=62)
    model.emb_norm = _ReferenceStandardize(rows.mean(0), rows.std(0))  # independent of the student's Standardize
    x, e = _mel(n, 24, 63), torch.from_numpy(rows)
    embed = model.cnn.embed
    with torch.no_grad():
        model.eval()
        kept = _array(model(x, e))                        # what every row must be at test time
        model.cnn.embed = lambda x_mel: torch.zeros(len(x_mel), model.cnn.embedding_dim)
        dropped = _array(model(x, e))                     # the same rows with no CNN information
        model.cnn.embed = embed
        model.train()
        model.cnn.eval()                                  # batch norms as at test time: rows stay comparable
        torch.manual_seed(64)
        out = _array(model(x, e))
        model.eval()
        again = _array(model(x, e))
    assert _close(again, kept), "in eval mode cnn_dropout must do nothing (drop only while self.training)"
    assert out.shape == kept.shape, f"FusionNet in train mode: expected logits {kept.shape}, got {out.shape}"
    is_kept = np.isclose(out, kept, atol=1e-4, rtol=1e-4).all(axis=1)
    is_dropped = np.isclose(out, dropped, atol=1e-4, rtol=1e-4).all(axis=1)
    assert (is_kept | is_dropped).all(), (
        "with cnn_dropout in train mode every example should either keep its normalised CNN embedding unchanged "
        "or have all of it replaced by zeros (one draw per example, not per value, and no 1 / (1 - p) rescaling)")
    matters = ~np.isclose(kept, dropped, atol=1e-4, rtol=1e-4).all(axis=1)  # rows the CNN branch reaches
    if matters.sum() < n // 2:  # the CNN branch is missing: check_fusion_both_branches says so
        return
    share = float(is_dropped[matters].mean())
    assert abs(share - p) < 0.1, \
        f"cnn_dropout={p}: {share:.0%} of the examples lost their CNN embedding; expected about {p:.0%}, one draw per example"


# --- retrieval --------------------------------------------------------------------------------------

def _ranking(sim: np.ndarray) -> np.ndarray:
    """Full rankings (N, N-1) from a similarity matrix: query left out, ties to the lower index."""
    sim = sim.astype(np.float64).copy()
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :-1]


def _cosine(emb: np.ndarray) -> np.ndarray:
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-300)
    return unit @ unit.T


def _without_query(out: np.ndarray) -> list[list[int]]:
    return [[j for j in row if j != i] for i, row in enumerate(out.tolist())]


def _matches(others: list[list[int]], ranking: np.ndarray) -> bool:
    return all(o == ranking[i, :len(o)].tolist() for i, o in enumerate(others))


def _neighbours(nearest_neighbours, emb: np.ndarray, k: int) -> np.ndarray:
    out = nearest_neighbours(emb.copy(), k=k)
    arr = np.asarray(out)
    assert arr.shape == (len(emb), k), \
        f"nearest_neighbours of {len(emb)} items with k={k}: expected shape ({len(emb)}, {k}), got {arr.shape}"
    assert arr.dtype == np.int64, f"nearest_neighbours should return int64 indices, got {arr.dtype}"
    return np.array(arr, dtype=np.int64)


@hidden
def check_neighbours_ranking(nearest_neighbours) -> None:
    rng = np.random.default_rng(77)
    emb = rng.standard_normal((23, 6)) * rng.uniform(0.1, 20.0, size=(23, 1))  # norms differ widely
    expected = _ranking(_cosine(emb))
    for k in (1, 5, 22):
        others = _without_query(_neighbours(nearest_neighbours, emb, k))
        if not _matches(others, expected):
            if _matches(others, _ranking(emb @ emb.T)):
                raise AssertionError("nearest_neighbours ranks by dot product: divide by the norms (cosine similarity)")
            dist = ((emb[:, None] - emb[None]) ** 2).sum(-1)
            if _matches(others, _ranking(-dist)):
                raise AssertionError("nearest_neighbours ranks by Euclidean distance: use cosine similarity")
            if _matches(others, _ranking(-_cosine(emb))):
                raise AssertionError("nearest_neighbours should list the MOST similar items first")
            raise AssertionError(f"nearest_neighbours(k={k}): row i should hold the k items most similar to item i by "
                                 f"cosine similarity, most similar first")
    # exact ties: vectors along the axes (cosine exactly 1, 0 or -1)
    ties = np.array([[2, 0, 0], [0, 1, 0], [5, 0, 0], [0, 0, 3], [0, -2, 0], [1, 0, 0], [0, 4, 0], [0, 0, 0.5]])
    others = _without_query(_neighbours(nearest_neighbours, ties, len(ties) - 1))
    assert _matches(others, _ranking(_cosine(ties))), \
        "nearest_neighbours: equal similarities should be ordered by index, lower first (a stable sort)"


@hidden
def check_neighbours_query_left_out(nearest_neighbours) -> None:
    rng = np.random.default_rng(88)
    emb = rng.integers(-4, 5, size=(12, 4)).astype(np.float64)
    emb[3] = emb[8] = emb[1]      # exact copies of item 1 (GTZAN has repeated excerpts)
    emb[10] = emb[7]
    emb[0] = [0, 0, 0, 0.5]
    for k in (4, 11):
        out = _neighbours(nearest_neighbours, emb, k)
        listed = [i for i in range(len(emb)) if i in out[i]]
        assert not listed, (f"item {listed[0]} is listed among its own neighbours: leave the query out (its similarity "
                            f"with itself is always the highest)")
        for query, copies in ((1, {3, 8}), (3, {1, 8}), (8, {1, 3}), (7, {10}), (10, {7})):
            assert copies <= set(out[query, :len(copies)].tolist()), (
                f"item {query}'s nearest neighbours should be its copies {sorted(copies)} (similarity 1): leave out the "
                f"query itself, not the first column of the ranking")


def _labels_rankings(seed: int):
    """Labels with classes of 2..11 items, and rankings better than chance (N-1 columns)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(5), [2, 3, 6, 8, 11]))
    n = len(labels)
    score = rng.standard_normal((n, n)) + 1.2 * (labels[:, None] == labels[None, :])
    return labels, _ranking(score)


def _reference_metrics(ranking, labels, k, normaliser="min"):
    rel = (labels[ranking[:, :k]] == labels[:, None]).astype(np.float64)
    precision = float(rel.mean(axis=1).mean())
    prec_r = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    others = np.bincount(labels)[labels] - 1
    norm = {"min": np.minimum(k, others), "k": np.full(len(labels), k), "hits": rel.sum(axis=1),
            "all": others}[normaliser]
    ap = np.where(norm > 0, (rel * prec_r).sum(axis=1) / np.maximum(norm, 1), 0.0)
    return precision, float(ap.mean())


def _scalar(value, name: str) -> float:
    arr = _array(value)
    assert arr.shape == (), f"{name} should return one number, got shape {arr.shape}"
    return float(arr)


@hidden
def check_precision_at_k(precision_at_k) -> None:
    labels, ranking = _labels_rankings(61)
    for k, cols in ((1, None), (4, None), (10, None), (7, 7)):
        ranks = ranking if cols is None else ranking[:, :cols]
        got = _scalar(precision_at_k(ranks.copy(), labels.copy(), k=k), "precision_at_k")
        expected, _ = _reference_metrics(ranking, labels, k)
        if abs(got - expected) > 1e-6:
            if abs(got - _reference_metrics(ranking, labels, ranks.shape[1])[0]) < 1e-6:
                raise AssertionError("precision_at_k should count only the first k neighbours of each row (the top k), "
                                     "not the whole ranking")
            raise AssertionError(f"precision_at_k(k={k}) = {got:.4f}, expected {expected:.4f}: the mean over queries of "
                                 f"(neighbours among the top k sharing the query's label) / k")


@hidden
def check_map_at_k(map_at_k) -> None:
    labels, ranking = _labels_rankings(71)
    for k in (3, 10):
        got = _scalar(map_at_k(ranking.copy(), labels.copy(), k=k), "map_at_k")
        expected = _reference_metrics(ranking, labels, k)[1]
        if abs(got - expected) > 1e-6:
            hints = {"k": "divide each query's sum by min(k, R), the relevant items the top k can hold, not by k",
                     "hits": "divide each query's sum by min(k, R), not by the number of hits in the top k",
                     "all": "divide each query's sum by min(k, R), not by R"}
            for normaliser, hint in hints.items():
                if abs(got - _reference_metrics(ranking, labels, k, normaliser)[1]) < 1e-6:
                    raise AssertionError(f"map_at_k: {hint}")
            if abs(got - _reference_metrics(ranking, labels, ranking.shape[1])[1]) < 1e-6:
                raise AssertionError("map_at_k should use only the first k neighbours of each row, not the whole ranking")
            raise AssertionError(f"map_at_k(k={k}) = {got:.4f}, expected {expected:.4f}: mean over queries of "
                                 f"sum_r rel_r * precision@r / min(k, R)")


# --- checkpoints (called by the grader) ---------------------------------------------------------------

def _state_and_extra(obj) -> tuple[Mapping, dict]:
    if isinstance(obj, nn.Module):
        return obj.state_dict(), {}
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        extra = obj.get("extra")
        return obj["state_dict"], dict(extra) if isinstance(extra, Mapping) else {}
    if isinstance(obj, Mapping):
        return obj, {}
    raise AssertionError(f"expected a checkpoint, a state_dict or a model, got {type(obj).__name__}")


def _check_statistics(obj, prefix: str, what: str, musicnn_dim: int) -> None:
    state, extra = _state_and_extra(obj)
    info = extra.get("musicnn")
    if isinstance(info, Mapping):
        for key, expected in (("model", MUSICNN_MODEL), ("layer", MUSICNN_LAYER)):
            if key in info and info[key] != expected:
                raise AssertionError(f"{what} was trained on musicnn {key} '{info[key]}', the grader uses '{expected}'")
    keys = [f"{prefix}mean", f"{prefix}std"]
    missing = [k for k in keys if k not in state]
    assert not missing, (f"{what} has no normalisation statistics ({', '.join(missing)} missing from its state_dict): "
                         f"register mean and std as buffers in Standardize")
    mean, std = (_tensor(state[k]) for k in keys)
    assert mean.ndim == 1 and mean.shape == std.shape, \
        f"{what}: {keys[0]} and {keys[1]} should both have shape (dim,), got {tuple(mean.shape)} and {tuple(std.shape)}"
    assert bool(torch.isfinite(mean).all() and torch.isfinite(std).all()), \
        f"{what}: its normalisation statistics are not finite (NaN or inf)"
    assert bool((std > 0).all()), f"{what}: its normalisation std has values <= 0"
    assert not (bool((mean == 0).all()) and bool((std == 1).all())), \
        f"{what}: its normalisation statistics were never fitted (mean 0, std 1): call fit_normalization on the training embeddings"
    assert mean.shape[0] == musicnn_dim, (
        f"{what} takes {mean.shape[0]}-dim musicnn vectors, the grader's are {musicnn_dim} ({MUSICNN_MODEL} "
        f"'{MUSICNN_LAYER}' rows pooled to [mean, max]): another musicnn layer or model, or another pooling?")


@hidden
def check_mlp_checkpoint(ckpt, musicnn_dim: int = EMBEDDING_DIM) -> None:
    """The part 4 MLP checkpoint (dict of genrekit.checkpoint.load, a state_dict or a model) fits the grader's
    embeddings and carries finite, fitted normalisation statistics."""
    _check_statistics(ckpt, "norm.", "the MLP checkpoint", musicnn_dim)


@hidden
def check_fusion_checkpoint(ckpt, musicnn_dim: int = EMBEDDING_DIM) -> None:
    """The same for the part 4 fusion checkpoint (statistics at emb_norm.mean / emb_norm.std)."""
    state, _ = _state_and_extra(ckpt)
    assert any(str(k).startswith("cnn.") for k in state), "the fusion checkpoint has no CNN branch (no cnn.* weights)"
    _check_statistics(ckpt, "emb_norm.", "the fusion checkpoint", musicnn_dim)
