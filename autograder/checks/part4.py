"""Hidden checks of part 4: musicnn pooling, standardisation, the MLP, fusion, retrieval, checkpoints.

Each check probes one idea on inputs students have not seen and fails with a one-line message naming
it. The wrong answers the issue lists fail exactly the checks aimed at them (tests/test_fusion.py
proves it with a table); in particular the fusion checks never depend on the student's Standardize
being right (check_fusion_normalisation and check_fusion_cnn_dropout swap in a reference one), nor
does check_mlp_forward, and the ranking check ignores the query itself (whether it is left out is
check_neighbours_query_left_out's business).

The notebook checks are written as a probe and a verdict (:mod:`autograder.checks.common`): the probe
calls the student's code on inputs chosen here and records what came back (outputs, and the facts of
the student's objects a verdict needs: weights, buffers, requires_grad and training flags) as plain
values; the verdict, run by the grader in its own process, draws the same inputs again from seeded
generators of its own, recomputes every expected value it can (pooled vectors, standardised rows,
the MLP's logits from its recorded weights, rankings, precision and MAP) and judges. Behavioural
checks of FusionNet (a branch replaced by zeros, the musicnn inputs rescaled, a batch norm scaled)
patch the model inside the probe and record its outputs under each condition.

The checkpoint checks (check_mlp_checkpoint, check_fusion_checkpoint) are for the grader: call them
with the dict of ``genrekit.checkpoint.load(path)`` (or a state_dict, or a model) before measuring
accuracy; their message is the one-line reason for the row and the feedback. They run no student
code, so they stay plain checks (``hidden``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from autograder.checks.common import hidden, plain, probe
from genrekit import config, musicnn

# --- what the grader feeds the part 4 models ---------------------------------------------------------
MUSICNN_MODEL = "MSD_musicnn"                              # trained on Million Song Dataset tags
MUSICNN_LAYER = "max_pool"                                 # one 753-dim row per 3 s patch
EMBEDDING_DIM = 2 * musicnn.LAYERS[MUSICNN_LAYER]          # 1506: the rows pooled to [mean, max]

# --- where the hidden cells' objects live in the student's package ---------------------------------
POOL_FRAMES = "genre.fusion.pool_frames"
STANDARDIZE = "genre.fusion.Standardize"
EMBEDDING_MLP = "genre.fusion.EmbeddingMLP"
FUSION_NET = "genre.fusion.FusionNet"
NEAREST_NEIGHBOURS = "genre.retrieval.nearest_neighbours"
PRECISION_AT_K = "genre.retrieval.precision_at_k"
MAP_AT_K = "genre.retrieval.map_at_k"


# --- helpers -------------------------------------------------------------------------------------------

def _tensor(x) -> torch.Tensor:
    """A plain float64 CPU tensor copy of a student's output (a tensor subclass cannot lie afterwards)."""
    t = torch.as_tensor(x)
    if type(t) is not torch.Tensor:
        t = t.as_subclass(torch.Tensor)
    return t.detach().to("cpu", torch.float64).clone()


def _close(a, b, atol=1e-4, rtol=1e-4) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol))


def _out(rec, key: str) -> np.ndarray:
    """A recorded output as a float64 array (a probe's record holds arrays of numbers only)."""
    return np.asarray(rec[key], dtype=np.float64)


def _number(x):
    """A student's attribute as a plain number for the record, None when it is not one number."""
    if x is None or isinstance(x, (str, bytes)):
        return None
    try:
        arr = plain(x, np.float64)
    except Exception:
        return None
    return float(arr.reshape(-1)[0]) if arr.size == 1 else None


def _name(x, limit: int = 100) -> str:
    return str(x)[:limit]


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
    """(x - mean) / std with given statistics: swapped into a model so that its checks do not depend on
    the student's Standardize (and the verdict knows exactly what the model is given)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clone())
        self.dim = len(self.mean)

    def forward(self, x):
        return (x - self.mean) / self.std


def _reference_standardize(x: np.ndarray, mean, std) -> np.ndarray:
    """What :class:`_ReferenceStandardize` computes (its statistics are float32 buffers)."""
    mean, std = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in (mean, std))
    return (np.asarray(x, dtype=np.float64) - mean) / std


def _rows_differ(out: np.ndarray) -> bool:
    return out.ndim == 2 and len(out) > 1 and not np.allclose(out, out[:1], atol=1e-6, rtol=1e-6)


SAME_ROWS = "FusionNet returned the same logits for every segment: its output should depend on its inputs"


# --- pooling ------------------------------------------------------------------------------------------

POOL_SHAPES = ((7, 5), (13, musicnn.LAYERS[MUSICNN_LAYER]), (1, 4))


def _pool_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(404)
    return [(1.5 + 3 * rng.standard_normal((n, d))).astype(np.float32) for n, d in POOL_SHAPES]


@probe(POOL_FRAMES)
def check_pool_frames(pool_frames) -> dict:
    rec = {}
    for i, frames in enumerate(_pool_inputs()):
        out = pool_frames(frames.copy())
        rec[f"is_ndarray_{i}"] = isinstance(out, np.ndarray)
        rec[f"type_{i}"] = _name(type(out).__name__)
        if not isinstance(out, np.ndarray):
            break
        rec[f"dtype_{i}"] = _name(out.dtype)
        rec[f"out_{i}"] = plain(out)
    return rec


@check_pool_frames.verdict
def _pool_frames(rec) -> None:
    for i, (frames, (n, d)) in enumerate(zip(_pool_inputs(), POOL_SHAPES)):
        assert rec[f"is_ndarray_{i}"] is True, f"pool_frames must return a numpy array, got {rec[f'type_{i}']}"
        assert rec[f"dtype_{i}"] == "float32", f"pool_frames must return float32, got {rec[f'dtype_{i}']}"
        got = _out(rec, f"out_{i}")
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


TRAIN_STATS_DIM = 6


@probe(STANDARDIZE)
def check_standardize_train_statistics(standardize_cls) -> dict:
    x_train, x_test = _train_test(TRAIN_STATS_DIM)
    norm = standardize_cls(TRAIN_STATS_DIM)
    norm.fit(x_train.copy())
    norm.eval()
    with torch.no_grad():
        return {"z": plain(norm(torch.from_numpy(x_test.copy())), np.float64),
                "z_one": plain(norm(torch.from_numpy(x_test[:1].copy())), np.float64)}


@check_standardize_train_statistics.verdict
def _standardize_train_statistics(rec) -> None:
    x_train, x_test = _train_test(TRAIN_STATS_DIM)
    z, z_one = _out(rec, "z"), _out(rec, "z_one")
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


STATE_DIM = 5


@probe(STANDARDIZE)
def check_standardize_state_dict(standardize_cls) -> dict:
    fresh = standardize_cls(STATE_DIM)
    state = fresh.state_dict()
    rec = {"keys": sorted(_name(k) for k in state)[:50],
           "params": [_name(name) for name, _ in fresh.named_parameters()][:50]}
    if "mean" not in state or "std" not in state:
        return rec  # nothing more to record: the verdict says what is missing
    rec["fresh_mean"], rec["fresh_std"] = plain(state["mean"], np.float64), plain(state["std"], np.float64)
    x_train, x_test = _train_test(STATE_DIM)
    norm = standardize_cls(STATE_DIM)
    norm.fit(x_train.copy())
    state = {k: v.detach().clone() for k, v in norm.state_dict().items()}
    rec["fit_mean"], rec["fit_std"] = plain(state["mean"], np.float64), plain(state["std"], np.float64)
    rebuilt = standardize_cls(STATE_DIM)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        rec["rebuilt"] = plain(rebuilt(torch.from_numpy(x_test.copy())), np.float64)
        rec["fitted"] = plain(norm(torch.from_numpy(x_test.copy())), np.float64)
    return rec


@check_standardize_state_dict.verdict
def _standardize_state_dict(rec) -> None:
    keys = [str(k) for k in rec["keys"]]
    assert "mean" in keys and "std" in keys, (
        f"the statistics should be buffers named mean and std (register_buffer), so that state_dict() and the "
        f"checkpoint carry them; state_dict() has {keys or 'no entries'}")
    params = [str(p) for p in rec["params"]]
    assert not params, f"mean and std should be buffers, not nn.Parameters ({params}): an optimiser would change them"
    m0, s0 = _out(rec, "fresh_mean"), _out(rec, "fresh_std")
    assert m0.shape == (STATE_DIM,) and s0.shape == (STATE_DIM,), \
        f"Standardize({STATE_DIM}): mean and std should have shape ({STATE_DIM},), got {m0.shape} and {s0.shape}"
    assert bool((m0 == 0).all()) and bool((s0 == 1).all()), "before fit, mean should be all 0 and std all 1"
    x_train, x_test = _train_test(STATE_DIM)
    assert _close(_out(rec, "fit_mean"), x_train.astype(np.float64).mean(0), atol=1e-3), \
        "after fit, the mean buffer should hold the per-feature mean of the training set"
    assert any(_close(_out(rec, "fit_std"), sd, atol=1e-3) for sd in _train_stds(x_train)), \
        "after fit, the std buffer should hold the per-feature standard deviation of the training set"
    rebuilt, fitted = _out(rec, "rebuilt"), _out(rec, "fitted")
    assert fitted.shape == x_test.shape and np.isfinite(fitted).all() and _close(rebuilt, fitted, atol=1e-5), \
        "a Standardize rebuilt from state_dict() should standardise like the fitted one: keep every statistic in buffers"


def _constant_train() -> np.ndarray:
    x_train = _embeddings(12, 4, seed=9)
    x_train[:, 1] = 3.25   # a constant feature (std 0)
    x_train[:, 3] = 0.0    # a dead unit
    return x_train


@probe(STANDARDIZE)
def check_standardize_constant_feature(standardize_cls) -> dict:
    x_train = _constant_train()
    norm = standardize_cls(x_train.shape[1])
    norm.fit(x_train.copy())
    with torch.no_grad():
        return {"z": plain(norm(torch.from_numpy(x_train.copy())), np.float64)}


@check_standardize_constant_feature.verdict
def _standardize_constant_feature(rec) -> None:
    x_train = _constant_train()
    z = _out(rec, "z")
    assert np.isfinite(z).all(), "a constant feature (std 0) gave inf or NaN: floor the std at STD_FLOOR before dividing"
    assert z.shape == x_train.shape, \
        f"Standardize on {x_train.shape}: expected the shape of its input, got {z.shape}"
    assert np.allclose(z[:, [1, 3]], 0, atol=1e-3), "a constant feature should be standardised to 0"
    varying = x_train[:, [0, 2]].astype(np.float64)
    assert any(_close(z[:, [0, 2]], (varying - varying.mean(0)) / sd, atol=1e-3) for sd in _train_stds(varying)), \
        ("Standardize should return (x - mean_train) / std_train, with the per-feature statistics fit() computed "
         "on the training set")


# --- the MLP ----------------------------------------------------------------------------------------

MLP_IN, MLP_CLASSES, MLP_HIDDEN, MLP_DROPOUT = 13, 5, 7, 0.5


def _mlp_statistics():
    """The statistics of the reference Standardize swapped into the MLP (the check never depends on the
    student's Standardize, and the verdict knows what the hidden layer is given)."""
    rng = np.random.default_rng(14)
    return rng.uniform(-1, 4, MLP_IN), rng.uniform(0.5, 3.0, MLP_IN)


def _mlp_input() -> np.ndarray:
    return _embeddings(6, MLP_IN, seed=13, loc=1.0)


def _linear_facts(layer, prefix: str) -> dict:
    """The weight (and bias, when there is one) of a student's Linear layer."""
    facts = {f"{prefix}.weight": plain(layer.weight, np.float64)}
    if getattr(layer, "bias", None) is not None:
        facts[f"{prefix}.bias"] = plain(layer.bias, np.float64)
    return facts


@probe(EMBEDDING_MLP)
def check_mlp_forward(mlp_cls) -> dict:
    torch.manual_seed(7)
    model = mlp_cls(MLP_IN, n_classes=MLP_CLASSES, hidden=MLP_HIDDEN, dropout=MLP_DROPOUT)
    rec = {"linears": [[int(m.in_features), int(m.out_features)] for m in model.modules() if isinstance(m, nn.Linear)],
           "drops": [float(m.p) for m in model.modules() if isinstance(m, nn.Dropout)]}
    model.fit_normalization(_embeddings(30, MLP_IN, seed=12))
    model.norm = _ReferenceStandardize(*_mlp_statistics())
    model.eval()
    x = torch.from_numpy(_mlp_input())
    with torch.no_grad():
        rec["out"] = plain(model(x.clone()), np.float64)
        rec.update(_linear_facts(model.fc, "fc"))
        rec.update(_linear_facts(model.classifier, "classifier"))
        model.train()
        rec["train_a"] = plain(model(x.clone()), np.float64)
        rec["train_b"] = plain(model(x.clone()), np.float64)
    return rec


def _linear(rec, prefix: str, shape: tuple[int, int]):
    weight = _out(rec, f"{prefix}.weight")
    bias = _out(rec, f"{prefix}.bias") if f"{prefix}.bias" in rec else np.zeros(shape[0])
    assert weight.shape == shape and bias.shape == (shape[0],), \
        (f"EmbeddingMLP.fc should be Linear({MLP_IN} -> {MLP_HIDDEN}) and EmbeddingMLP.classifier "
         f"Linear({MLP_HIDDEN} -> {MLP_CLASSES})")
    return weight, bias


@check_mlp_forward.verdict
def _mlp_forward(rec) -> None:
    linears = [list(pair) for pair in rec["linears"]]
    assert linears == [[MLP_IN, MLP_HIDDEN], [MLP_HIDDEN, MLP_CLASSES]], (
        f"EmbeddingMLP({MLP_IN}, n_classes={MLP_CLASSES}, hidden={MLP_HIDDEN}) should have two Linear layers "
        f"{MLP_IN} -> {MLP_HIDDEN} -> {MLP_CLASSES}, got {[tuple(p) for p in linears]}")
    drops = list(rec["drops"])
    assert drops == [MLP_DROPOUT], f"EmbeddingMLP(dropout={MLP_DROPOUT}) should have one Dropout({MLP_DROPOUT}), got {drops}"
    out = _out(rec, "out")
    n = len(_mlp_input())
    assert out.shape == (n, MLP_CLASSES), \
        f"EmbeddingMLP on ({n}, {MLP_IN}): expected logits ({n}, {MLP_CLASSES}), got {out.shape}"
    w1, b1 = _linear(rec, "fc", (MLP_HIDDEN, MLP_IN))
    w2, b2 = _linear(rec, "classifier", (MLP_CLASSES, MLP_HIDDEN))
    x = _mlp_input().astype(np.float64)
    normed = _reference_standardize(x, *_mlp_statistics())
    hidden_units = np.maximum(normed @ w1.T + b1, 0)
    ref = hidden_units @ w2.T + b2
    if not _close(out, ref):
        if _close(out, np.maximum(x @ w1.T + b1, 0) @ w2.T + b2):
            raise AssertionError("EmbeddingMLP.forward should standardise the input with self.norm first")
        if _close(out, (normed @ w1.T + b1) @ w2.T + b2):
            raise AssertionError("EmbeddingMLP.forward: the ReLU after the hidden layer is missing")
        raise AssertionError("EmbeddingMLP.forward should be classifier(dropout(relu(fc(norm(x))))) and return logits")
    a, b = _out(rec, "train_a"), _out(rec, "train_b")
    assert not _close(a, b), "EmbeddingMLP: dropout is not active in train mode"
    # in train mode every row is the classifier of the hidden units, each kept (times 1 / (1 - p)) or zeroed
    masks = (np.arange(2 ** MLP_HIDDEN)[:, None] >> np.arange(MLP_HIDDEN)) & 1          # (2^H, H)
    candidates = (hidden_units[:, None, :] * masks[None] / (1 - MLP_DROPOUT)) @ w2.T + b2  # (n, 2^H, classes)
    for train_out in (a, b):
        assert train_out.shape == ref.shape and bool(
            np.isclose(candidates, train_out[:, None, :], atol=1e-4, rtol=1e-4).all(axis=2).any(axis=1).all()), \
            ("EmbeddingMLP: in train mode dropout should zero hidden units after the ReLU (and scale the others by "
             "1 / (1 - p)): classifier(dropout(relu(fc(norm(x)))))")


# --- fusion -----------------------------------------------------------------------------------------

def _fusion(fusion_cls, musicnn_dim, n_classes, hidden_units, channels, seed, dropout=0.0, **kwargs):
    torch.manual_seed(seed)
    model = fusion_cls(cnn_kwargs={"channels": channels, "n_classes": 3}, musicnn_dim=musicnn_dim,
                       n_classes=n_classes, hidden=hidden_units, dropout=dropout, **kwargs)
    model.fit_normalization(_embeddings(25, musicnn_dim, seed=seed))
    return model


FORWARD_FRAMES = (40, 126)


@probe(FUSION_NET)
def check_fusion_forward(fusion_cls) -> dict:
    model = _fusion(fusion_cls, musicnn_dim=11, n_classes=5, hidden_units=9, channels=(4, 4, 8, 6), seed=21,
                    dropout=0.2).eval()
    rec = {"embedding_dim": _number(getattr(model.cnn, "embedding_dim", None))}
    for frames in FORWARD_FRAMES:
        with torch.no_grad():
            out = model(_mel(3, frames, frames), torch.from_numpy(_embeddings(3, 11, seed=frames)))
        rec[f"out_{frames}"] = plain(out, np.float64)
    # heads=3: three heads averaged (HeadEnsemble), so three times the head's parameters of heads=1
    three = _fusion(fusion_cls, musicnn_dim=11, n_classes=5, hidden_units=9, channels=(4, 4, 8, 6), seed=21,
                    dropout=0.2, heads=3).eval()
    x_mel, emb = _mel(3, 40, 40), torch.from_numpy(_embeddings(3, 11, seed=40))
    rec["head_params"] = [_number(sum(p.numel() for p in m.head.parameters())) for m in (model, three)]
    with torch.no_grad():
        rec["out_heads3"] = plain(three(x_mel, emb), np.float64)
        out = three.train()(x_mel, emb)                  # train mode: the head's dict, for train.fit
    members = out.get("member_logits") if isinstance(out, dict) else None
    rec["train_heads3_members"] = list(members.shape) if torch.is_tensor(members) else None
    return rec


@check_fusion_forward.verdict
def _fusion_forward(rec) -> None:
    assert rec["embedding_dim"] == 6, "FusionNet.cnn should be BaselineCNN(**cnn_kwargs)"
    for frames in FORWARD_FRAMES:
        out = _out(rec, f"out_{frames}")
        assert out.shape == (3, 5), f"FusionNet(n_classes=5) on 3 segments of {frames} frames: expected (3, 5), got {out.shape}"
        assert np.isfinite(out).all(), "FusionNet returned NaN or inf"
        assert _rows_differ(out), SAME_ROWS
    assert not np.allclose(out.sum(axis=1), 1.0), "FusionNet should return logits, not probabilities"
    three = _out(rec, "out_heads3")
    assert three.shape == (3, 5) and np.isfinite(three).all(), \
        f"FusionNet(heads=3, n_classes=5) in eval mode on 3 segments: expected finite logits (3, 5), got {three.shape}"
    one, several = rec["head_params"]
    assert several == 3 * one, \
        f"FusionNet(heads=3) should have three heads ({3 * one} head parameters), got {several}: " \
        "build head = HeadEnsemble(C + M, hidden, n_classes, dropout, heads)"
    assert rec.get("train_heads3_members") == [3, 3, 5], \
        "in train mode FusionNet(heads=3) should return what its head returns, unchanged: a dict whose " \
        f"'member_logits' are (3 segments, 3 heads, 5 classes), which train.fit trains on; got {rec.get('train_heads3_members')}"


@probe(FUSION_NET)
def check_fusion_both_branches(fusion_cls) -> dict:
    model = _fusion(fusion_cls, musicnn_dim=10, n_classes=4, hidden_units=16, channels=(4, 8, 8, 8), seed=31).eval()
    x1, x2 = _mel(4, 50, 1), _mel(4, 50, 2)
    e1, e2 = (torch.from_numpy(_embeddings(4, 10, seed=s)) for s in (3, 4))
    with torch.no_grad():
        return {"base": plain(model(x1.clone(), e1.clone()), np.float64),
                "mel_changed": plain(model(x2, e1.clone()), np.float64),
                "emb_changed": plain(model(x1.clone(), e2), np.float64)}


@check_fusion_both_branches.verdict
def _fusion_both_branches(rec) -> None:
    base, mel_changed, emb_changed = _out(rec, "base"), _out(rec, "mel_changed"), _out(rec, "emb_changed")
    assert base.shape == mel_changed.shape == emb_changed.shape == (4, 4), \
        f"FusionNet(n_classes=4) on 4 segments: expected logits (4, 4), got {base.shape}"
    assert np.isfinite(base).all() and np.isfinite(mel_changed).all() and np.isfinite(emb_changed).all(), \
        "FusionNet returned NaN or inf"
    dx, de = np.abs(mel_changed - base).max(), np.abs(emb_changed - base).max()
    scale = max(np.abs(base).max(), 1e-3)
    assert dx > 1e-4 * scale, ("FusionNet's output does not change when the log-mel changes: the CNN branch is dropped "
                               "(concatenate the normalised cnn.embed(x_mel) with the musicnn branch)")
    assert de > 1e-4 * scale, ("FusionNet's output does not change when the musicnn embedding changes: the musicnn "
                               "branch is dropped (concatenate emb_norm(emb) with the CNN branch)")


NORMALISATION_DIM = 7


@probe(FUSION_NET)
def check_fusion_normalisation(fusion_cls) -> dict:
    dim = NORMALISATION_DIM
    model = _fusion(fusion_cls, musicnn_dim=dim, n_classes=3, hidden_units=12, channels=(4, 4, 8, 8), seed=41).eval()
    x = _mel(3, 60, 5)
    e = torch.from_numpy(_embeddings(3, dim, seed=8))
    rng = np.random.default_rng(3)
    mu, sd = rng.uniform(-1, 3, dim), rng.uniform(0.5, 2.0, dim)
    a, b = rng.uniform(3, 8, dim), rng.uniform(-20, 20, dim)
    moved = torch.as_tensor(a, dtype=torch.float32) * e + torch.as_tensor(b, dtype=torch.float32)
    rec = {}
    with torch.no_grad():
        model.emb_norm = _ReferenceStandardize(mu, sd)
        rec["o1"] = plain(model(x.clone(), e.clone()), np.float64)
        model.emb_norm = _ReferenceStandardize(a * mu + b, a * sd)
        rec["o2"] = plain(model(x.clone(), moved.clone()), np.float64)
        rec["one"] = plain(model(x[:1].clone(), moved[:1].clone()), np.float64)
    bns = [m for m in model.cnn.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        bns[-1].weight.mul_(9.0)
        bns[-1].bias.mul_(9.0)  # the CNN embedding is now 9 times larger (ReLU and pooling are homogeneous)
        rec["o3"] = plain(model(x.clone(), moved.clone()), np.float64)
    return rec


@check_fusion_normalisation.verdict
def _fusion_normalisation(rec) -> None:
    o1, o2, one, o3 = (_out(rec, k) for k in ("o1", "o2", "one", "o3"))
    assert o1.shape == (3, 3), f"FusionNet(n_classes=3) on 3 segments: expected logits (3, 3), got {o1.shape}"
    assert np.isfinite(o1).all(), "FusionNet returned NaN or inf"
    assert _rows_differ(o1), SAME_ROWS
    assert _close(o1, o2, atol=1e-3, rtol=1e-3), \
        "FusionNet should standardise the musicnn embedding with self.emb_norm (statistics fitted on the training set)"
    assert _close(one, o2[:1], atol=1e-3, rtol=1e-3), \
        "FusionNet: a segment's logits should not depend on the rest of the batch (use emb_norm's stored statistics)"
    assert _close(o3, o2, atol=1e-3, rtol=1e-3), \
        "FusionNet should normalise the CNN embedding (cnn_norm, a LayerNorm) before the concatenation"


def _state_arrays(module: nn.Module, prefix: str) -> dict:
    """The floating-point entries of a module's state_dict, by position (their names in ``{prefix}_keys``)."""
    entries = [(k, v) for k, v in module.state_dict().items() if v.is_floating_point()]
    rec = {f"{prefix}_keys": [_name(k) for k, _ in entries]}
    rec.update({f"{prefix}_{i}": plain(v) for i, (_, v) in enumerate(entries)})
    return rec


@probe(FUSION_NET)
def check_fusion_freeze(fusion_cls) -> dict:
    model = _fusion(fusion_cls, musicnn_dim=6, n_classes=3, hidden_units=8, channels=(4, 4, 8, 8), seed=51)
    model.freeze_cnn(True)
    named = list(model.named_parameters())
    rec = {"cnn_requires_grad": [bool(p.requires_grad) for p in model.cnn.parameters()],
           "param_names": [_name(n) for n, _ in named],
           "param_requires_grad": [bool(p.requires_grad) for _, p in named]}
    model.train()
    rec["cnn_training"] = [bool(m.training) for m in model.cnn.modules()]
    rec["head_training"] = bool(model.head.training)
    rec.update(_state_arrays(model.cnn, "before"))
    with torch.no_grad():
        model(_mel(4, 40, 9), torch.from_numpy(_embeddings(4, 6, seed=10)))
    rec.update(_state_arrays(model.cnn, "after"))
    model.freeze_cnn(False)
    model.train()
    rec["unfrozen_requires_grad"] = [bool(p.requires_grad) for p in model.cnn.parameters()]
    rec["unfrozen_cnn_training"] = bool(model.cnn.training)
    return rec


@check_fusion_freeze.verdict
def _fusion_freeze(rec) -> None:
    cnn_flags = [bool(f) for f in rec["cnn_requires_grad"]]
    assert cnn_flags and not any(cnn_flags), \
        "freeze_cnn(True) should set requires_grad = False on every parameter of the CNN branch"
    names, flags = list(rec["param_names"]), list(rec["param_requires_grad"])
    assert len(names) == len(flags), "FusionNet's parameters could not be listed"
    others = [str(n) for n, f in zip(names, flags) if not str(n).startswith("cnn.") and not f]
    assert not others, f"freeze_cnn(True) should freeze the CNN branch only, not {others[:3]}"
    assert not any(bool(t) for t in rec["cnn_training"]), \
        "a frozen CNN branch should stay in eval mode under model.train() (its batch norms must not update)"
    assert rec["head_training"] is True, "model.train() should still put the head in train mode"
    before, after = list(rec["before_keys"]), list(rec["after_keys"])
    assert before and before == after, "a training step changed which entries the frozen CNN branch's state_dict holds"
    changed = [k for i, k in enumerate(before) if not np.array_equal(rec[f"before_{i}"], rec[f"after_{i}"])]
    assert not changed, f"a training step changed the frozen CNN branch ({changed[0]}): keep it in eval mode"
    assert all(bool(f) for f in rec["unfrozen_requires_grad"]), "freeze_cnn(False) should make the CNN trainable again"
    assert rec["unfrozen_cnn_training"] is True, \
        "after freeze_cnn(False), model.train() should put the CNN branch in train mode again"


CNN_DROPOUT, DROPOUT_ROWS, DROPOUT_DIM, DROPOUT_CLASSES = 0.3, 400, 5, 4


@probe(FUSION_NET)
def check_fusion_cnn_dropout(fusion_cls) -> dict:
    p, n, dim = CNN_DROPOUT, DROPOUT_ROWS, DROPOUT_DIM
    torch.manual_seed(61)
    model = fusion_cls(cnn_kwargs={"channels": (4, 4, 8, 8), "n_classes": 3}, musicnn_dim=dim,
                       n_classes=DROPOUT_CLASSES, hidden=10, dropout=0.0, cnn_dropout=p)
    rec = {"cnn_dropout": _number(getattr(model, "cnn_dropout", None))}
    rows = _embeddings(n, dim, seed=62)
    model.emb_norm = _ReferenceStandardize(rows.mean(0), rows.std(0))  # independent of the student's Standardize
    x, e = _mel(n, 24, 63), torch.from_numpy(rows)
    embed = model.cnn.embed
    with torch.no_grad():
        model.eval()
        rec["kept"] = plain(model(x.clone(), e.clone()), np.float64)     # what every row must be at test time
        model.cnn.embed = lambda x_mel: torch.zeros(len(x_mel), model.cnn.embedding_dim)
        rec["dropped"] = plain(model(x.clone(), e.clone()), np.float64)  # the same rows with no CNN information
        model.cnn.embed = embed
        model.train()
        model.cnn.eval()                                  # batch norms as at test time: rows stay comparable
        torch.manual_seed(64)
        rec["out"] = plain(model(x.clone(), e.clone()), np.float64)
        model.eval()
        rec["again"] = plain(model(x.clone(), e.clone()), np.float64)
    return rec


@check_fusion_cnn_dropout.verdict
def _fusion_cnn_dropout(rec) -> None:
    p, n = CNN_DROPOUT, DROPOUT_ROWS
    assert rec["cnn_dropout"] == p, "FusionNet should store its cnn_dropout argument as self.cnn_dropout"
    kept, dropped, out, again = (_out(rec, k) for k in ("kept", "dropped", "out", "again"))
    assert kept.shape == (n, DROPOUT_CLASSES), \
        f"FusionNet(n_classes={DROPOUT_CLASSES}) on {n} segments: expected logits ({n}, {DROPOUT_CLASSES}), got {kept.shape}"
    assert dropped.shape == kept.shape, \
        f"FusionNet with the CNN embedding replaced by zeros: expected logits {kept.shape}, got {dropped.shape}"
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


def _neighbours(rec, key: str, n: int, k: int) -> np.ndarray:
    """A recorded output of nearest_neighbours, its shape and dtype checked."""
    arr = np.asarray(rec[key])
    assert arr.shape == (n, k), f"nearest_neighbours of {n} items with k={k}: expected shape ({n}, {k}), got {arr.shape}"
    assert arr.dtype == np.int64, f"nearest_neighbours should return int64 indices, got {arr.dtype}"
    return np.array(arr, dtype=np.int64)


RANKING_KS = (1, 5, 22)


def _ranking_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(77)
    emb = rng.standard_normal((23, 6)) * rng.uniform(0.1, 20.0, size=(23, 1))  # norms differ widely
    # exact ties: vectors along the axes (cosine exactly 1, 0 or -1)
    ties = np.array([[2, 0, 0], [0, 1, 0], [5, 0, 0], [0, 0, 3], [0, -2, 0], [1, 0, 0], [0, 4, 0], [0, 0, 0.5]])
    return emb, ties


@probe(NEAREST_NEIGHBOURS)
def check_neighbours_ranking(nearest_neighbours) -> dict:
    emb, ties = _ranking_inputs()
    rec = {f"k_{k}": plain(nearest_neighbours(emb.copy(), k=k)) for k in RANKING_KS}
    rec["ties"] = plain(nearest_neighbours(ties.copy(), k=len(ties) - 1))
    return rec


@check_neighbours_ranking.verdict
def _neighbours_ranking(rec) -> None:
    emb, ties = _ranking_inputs()
    expected = _ranking(_cosine(emb))
    for k in RANKING_KS:
        others = _without_query(_neighbours(rec, f"k_{k}", len(emb), k))
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
    others = _without_query(_neighbours(rec, "ties", len(ties), len(ties) - 1))
    assert _matches(others, _ranking(_cosine(ties))), \
        "nearest_neighbours: equal similarities should be ordered by index, lower first (a stable sort)"


QUERY_KS = (4, 11)


def _copies_input() -> np.ndarray:
    rng = np.random.default_rng(88)
    emb = rng.integers(-4, 5, size=(12, 4)).astype(np.float64)
    emb[3] = emb[8] = emb[1]      # exact copies of item 1 (GTZAN has repeated excerpts)
    emb[10] = emb[7]
    emb[0] = [0, 0, 0, 0.5]
    return emb


@probe(NEAREST_NEIGHBOURS)
def check_neighbours_query_left_out(nearest_neighbours) -> dict:
    emb = _copies_input()
    return {f"k_{k}": plain(nearest_neighbours(emb.copy(), k=k)) for k in QUERY_KS}


@check_neighbours_query_left_out.verdict
def _neighbours_query_left_out(rec) -> None:
    emb = _copies_input()
    for k in QUERY_KS:
        out = _neighbours(rec, f"k_{k}", len(emb), k)
        listed = [i for i in range(len(emb)) if i in out[i]]
        assert not listed, (f"item {listed[0]} is listed among its own neighbours: leave the query out (its similarity "
                            f"with itself is always the highest)")
        for query, copies in ((1, {3, 8}), (3, {1, 8}), (8, {1, 3}), (7, {10}), (10, {7})):
            assert copies <= set(out[query, :len(copies)].tolist()), (
                f"item {query}'s nearest neighbours should be its copies {sorted(copies)} (similarity 1): leave out the "
                f"query itself, not the first column of the ranking")
        # the rest of each row: other items, each once (the ranking itself is check_neighbours_ranking's)
        assert ((out >= 0) & (out < len(emb))).all() and all(len(set(row)) == k for row in out.tolist()), \
            f"nearest_neighbours(k={k}): each row should list k different items (indices 0..N-1)"


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


def _scalar(rec, key: str, name: str) -> float:
    arr = _out(rec, key)
    assert arr.shape == (), f"{name} should return one number, got shape {arr.shape}"
    return float(arr)


def _differs(got: float, expected: float) -> bool:
    return not abs(got - expected) <= 1e-6  # NaN differs from everything


PRECISION_CASES = ((1, None), (4, None), (10, None), (7, 7))  # (k, columns of the ranking given; None: all)


@probe(PRECISION_AT_K)
def check_precision_at_k(precision_at_k) -> dict:
    labels, ranking = _labels_rankings(61)
    rec = {}
    for i, (k, cols) in enumerate(PRECISION_CASES):
        ranks = ranking if cols is None else ranking[:, :cols]
        rec[f"p_{i}"] = plain(precision_at_k(ranks.copy(), labels.copy(), k=k), np.float64)
    return rec


@check_precision_at_k.verdict
def _precision_at_k(rec) -> None:
    labels, ranking = _labels_rankings(61)
    for i, (k, cols) in enumerate(PRECISION_CASES):
        width = ranking.shape[1] if cols is None else cols
        got = _scalar(rec, f"p_{i}", "precision_at_k")
        expected, _ = _reference_metrics(ranking, labels, k)
        if _differs(got, expected):
            if not _differs(got, _reference_metrics(ranking, labels, width)[0]):
                raise AssertionError("precision_at_k should count only the first k neighbours of each row (the top k), "
                                     "not the whole ranking")
            raise AssertionError(f"precision_at_k(k={k}) = {got:.4f}, expected {expected:.4f}: the mean over queries of "
                                 f"(neighbours among the top k sharing the query's label) / k")


MAP_KS = (3, 10)


@probe(MAP_AT_K)
def check_map_at_k(map_at_k) -> dict:
    labels, ranking = _labels_rankings(71)
    return {f"m_{k}": plain(map_at_k(ranking.copy(), labels.copy(), k=k), np.float64) for k in MAP_KS}


@check_map_at_k.verdict
def _map_at_k(rec) -> None:
    labels, ranking = _labels_rankings(71)
    for k in MAP_KS:
        got = _scalar(rec, f"m_{k}", "map_at_k")
        expected = _reference_metrics(ranking, labels, k)[1]
        if _differs(got, expected):
            hints = {"k": "divide each query's sum by min(k, R), the relevant items the top k can hold, not by k",
                     "hits": "divide each query's sum by min(k, R), not by the number of hits in the top k",
                     "all": "divide each query's sum by min(k, R), not by R"}
            for normaliser, hint in hints.items():
                if not _differs(got, _reference_metrics(ranking, labels, k, normaliser)[1]):
                    raise AssertionError(f"map_at_k: {hint}")
            if not _differs(got, _reference_metrics(ranking, labels, ranking.shape[1])[1]):
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
