"""Part 4 (musicnn pooling, Standardize, EmbeddingMLP, FusionNet, retrieval): the reference passes every
hidden check and every proposed visible cell; each plausible wrong answer fails exactly the checks aimed
at it (the table below); correct implementations written differently pass; the checkpoint checks give
one-line reasons; the student version imports cleanly and its stubs fail."""

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import part4
from autograder.course import ASSIGNMENT, PACKAGE, SOLUTIONS
from autograder.release import strip_solutions
from genrekit import checkpoint, config, musicnn

sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))  # the reference package, for this test module only
from genre import fusion, models, retrieval  # noqa: E402

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]


# --- the visible test cells proposed for the notebook (bodies copied verbatim into the report) ------------

def visible_pool_frames(pool_frames):
    """pool_frames: the mean over the rows, then the max over the rows."""
    frames = np.array([[1., 2., 3.], [3., 0., -1.]], dtype=np.float32)   # 2 patches x 3 features
    v = pool_frames(frames)
    assert isinstance(v, np.ndarray) and v.dtype == np.float32, \
        f"return a float32 numpy array, got {type(v).__name__} {getattr(v, 'dtype', '')}"
    assert v.shape == (6,), \
        f"expected 6 values (mean and max of each of the 3 features), got shape {v.shape}: only the mean? the wrong axis?"
    assert np.allclose(v, [2, 1, 1, 3, 2, 3]), f"expected [means..., maxima...] = [2, 1, 1, 3, 2, 3], got {v}"
    assert np.allclose(pool_frames(frames[:1]), [1, 2, 3, 1, 2, 3]), "one row: its mean and its max are the row itself"


def visible_standardize_train(Standardize):
    """Standardize: statistics fitted on the training set, then applied unchanged to other data."""
    x_train = torch.tensor([[0., 10.], [2., 20.], [4., 30.]])
    x_test = torch.tensor([[2., 20.], [6., 50.]])
    norm = Standardize(2).fit(x_train)
    z = norm(x_test)
    assert z.shape == (2, 2), f"expected the shape of the input (2, 2), got {tuple(z.shape)}"
    assert torch.allclose(norm(x_train).mean(0), torch.zeros(2), atol=1e-5), \
        "the standardised training set should have mean 0 per feature"
    assert not torch.allclose(z.mean(0), torch.zeros(2), atol=1e-3), \
        "the test rows were standardised with their own statistics: use those fitted on the training set"
    expected = [(x_test - x_train.mean(0)) / x_train.std(0, correction=c) for c in (0, 1)]
    assert any(torch.allclose(z, e, atol=1e-4) for e in expected), "expected (x_test - mean_train) / std_train, per feature"
    assert torch.allclose(norm(x_test[1:]), z[1:], atol=1e-5), "a row's result should not depend on the other rows"


def visible_standardize_state(Standardize):
    """Standardize: mean and std are buffers, saved in state_dict() and so in checkpoints."""
    x_train = torch.tensor([[0., 10.], [2., 20.], [4., 30.]])
    norm = Standardize(2).fit(x_train)
    state = norm.state_dict()
    assert {"mean", "std"} <= set(state), \
        f"register mean and std with register_buffer so that checkpoints carry them; state_dict() has {sorted(state)}"
    assert len(list(norm.parameters())) == 0, "mean and std should be buffers, not nn.Parameters (no optimiser may change them)"
    assert torch.allclose(state["mean"], torch.tensor([2., 20.])), f"the mean buffer should hold [2, 20], got {state['mean']}"
    rebuilt = Standardize(2)
    rebuilt.load_state_dict(state)
    x = torch.tensor([[1., 15.]])
    assert torch.allclose(rebuilt(x), norm(x)), "a Standardize rebuilt from state_dict() should standardise like the fitted one"


def visible_standardize_constant(Standardize):
    """Standardize: a constant feature (std 0) gives 0, not inf or NaN."""
    x = torch.tensor([[1., 5.], [3., 5.]])
    z = Standardize(2).fit(x)(x)
    assert torch.isfinite(z).all(), "a constant feature has std 0: floor the std at STD_FLOOR before dividing"
    assert torch.allclose(z[:, 1], torch.zeros(2)), "a constant feature should map to 0"


def visible_mlp(EmbeddingMLP):
    """EmbeddingMLP: standardise -> Linear(1506, 100) -> ReLU -> dropout -> Linear(100, 8) -> logits."""
    torch.manual_seed(0)
    mlp = EmbeddingMLP(1506).fit_normalization(torch.randn(20, 1506) * 3 + 1).eval()
    x = torch.randn(4, 1506)
    logits = mlp(x)
    assert logits.shape == (4, 8), f"expected logits (4, 8), got {tuple(logits.shape)}"
    n_params = sum(p.numel() for layer in (mlp.fc, mlp.classifier) for p in layer.parameters())
    assert n_params == 1506 * 100 + 100 + 100 * 8 + 8, f"expected 151,508 parameters in fc and classifier, got {n_params:,}"
    assert torch.allclose(logits, mlp.classifier(torch.relu(mlp.fc(mlp.norm(x)))), atol=1e-5), \
        "in eval mode: classifier(relu(fc(norm(x)))) (is the standardisation or the ReLU missing?)"
    mlp.train()
    assert not torch.allclose(mlp(x), mlp(x)), "in train mode dropout should make two passes differ"


def visible_fusion_forward(FusionNet, BaselineCNN):
    """FusionNet: logits for a batch of 4 s log-mel segments and their pooled musicnn vectors."""
    torch.manual_seed(0)
    fnet = FusionNet(cnn_kwargs={}, musicnn_dim=1506).fit_normalization(torch.randn(10, 1506) + 2).eval()
    x_mel, emb = torch.randn(3, 1, 96, 125), torch.randn(3, 1506)
    out = fnet(x_mel, emb)
    assert out.shape == (3, 8), f"expected logits (3, 8), got {tuple(out.shape)}"
    assert isinstance(fnet.cnn, BaselineCNN) and fnet.cnn.embedding_dim == 64, "the CNN branch is BaselineCNN(**cnn_kwargs)"
    fnet3 = FusionNet(cnn_kwargs={}, musicnn_dim=1506, heads=3).fit_normalization(torch.randn(10, 1506) + 2).eval()
    head_size = lambda m: sum(p.numel() for p in m.head.parameters())
    assert fnet3(x_mel, emb).shape == (3, 8) and head_size(fnet3) == 3 * head_size(fnet), \
        "FusionNet(heads=3) should average three heads: head = HeadEnsemble(C + M, hidden, n_classes, dropout, heads)"
    out3 = fnet3.train()(x_mel, emb)
    assert isinstance(out3, dict) and tuple(out3["member_logits"].shape) == (3, 3, 8), \
        "in train mode return what self.head returns unchanged (with heads > 1 a dict with 'member_logits', which train.fit trains on)"


def visible_fusion_branches(FusionNet):
    """FusionNet uses both branches: its output changes when either input changes."""
    torch.manual_seed(0)
    fnet = FusionNet(cnn_kwargs={}, musicnn_dim=1506).fit_normalization(torch.randn(10, 1506) + 2).eval()
    x_mel, emb = torch.randn(3, 1, 96, 125), torch.randn(3, 1506)
    out = fnet(x_mel, emb)
    assert not torch.allclose(fnet(x_mel + torch.randn_like(x_mel), emb), out), \
        "the output ignores the log-mel: concatenate the CNN embedding too"
    assert not torch.allclose(fnet(x_mel, emb + torch.randn_like(emb)), out), \
        "the output ignores the musicnn embedding: concatenate it too"


def visible_fusion_normalisation(FusionNet, Standardize):
    """FusionNet normalises each branch: LayerNorm on the CNN embedding, training statistics on the musicnn one."""
    torch.manual_seed(0)
    fnet = FusionNet(cnn_kwargs={}, musicnn_dim=1506).eval()
    assert isinstance(fnet.cnn_norm, torch.nn.LayerNorm), "cnn_norm should be a LayerNorm over the 64 CNN features"
    assert isinstance(fnet.emb_norm, Standardize), "emb_norm should be a Standardize(musicnn_dim)"
    x_mel, emb_train = torch.randn(3, 1, 96, 125), torch.randn(20, 1506) * 2 + 1
    out = fnet.fit_normalization(emb_train)(x_mel, emb_train[:3])
    out_scaled = fnet.fit_normalization(10 * emb_train + 3)(x_mel, 10 * emb_train[:3] + 3)
    assert torch.allclose(out, out_scaled, atol=1e-4), \
        "rescaling the musicnn embeddings (and refitting) should not change the output: standardise them with emb_norm"


def visible_fusion_freeze(FusionNet):
    """FusionNet.freeze_cnn: the CNN branch stops learning and stays in eval mode (its batch norms too)."""
    fnet = FusionNet(cnn_kwargs={}, musicnn_dim=1506)
    fnet.freeze_cnn(True)
    assert not any(p.requires_grad for p in fnet.cnn.parameters()), "freeze_cnn(True): requires_grad = False on the CNN"
    assert all(p.requires_grad for p in fnet.head.parameters()), "the head must stay trainable"
    fnet.train()
    assert not fnet.cnn.training and fnet.head.training, \
        "after freeze_cnn(True), model.train() should leave the CNN branch in eval mode"
    fnet.freeze_cnn(False)
    fnet.train()
    assert fnet.cnn.training and all(p.requires_grad for p in fnet.cnn.parameters()), "freeze_cnn(False) should undo it"


def visible_fusion_cnn_dropout(FusionNet):
    """FusionNet(cnn_dropout=p): in train mode each example loses its whole CNN embedding with probability p."""
    torch.manual_seed(0)
    fnet = FusionNet(cnn_kwargs={}, musicnn_dim=1506, dropout=0.0, cnn_dropout=0.5).fit_normalization(torch.randn(10, 1506))
    x_mel, emb = torch.randn(64, 1, 96, 40), torch.randn(64, 1506)
    with torch.no_grad():
        fnet.eval()
        kept = fnet(x_mel, emb)                       # test time: every example keeps its CNN embedding
        fnet.cnn.embed = lambda x: torch.zeros(len(x), fnet.cnn.embedding_dim)
        dropped = fnet(x_mel, emb)                    # the same examples with no CNN information
        del fnet.cnn.embed                            # back to the CNN's own embed
        fnet.train()
        fnet.cnn.eval()   # the CNN's batch norms as at test time, so that the rows can be compared
        out = fnet(x_mel, emb)
    is_kept = torch.isclose(out, kept, atol=1e-5).all(dim=1)
    is_dropped = torch.isclose(out, dropped, atol=1e-5).all(dim=1)
    assert (is_kept | is_dropped).all(), \
        "each example should keep its CNN embedding unchanged or lose all of it (one draw per example, no rescaling)"
    matters = ~torch.isclose(kept, dropped, atol=1e-5).all(dim=1)   # examples whose logits depend on the CNN branch
    if matters.any():                                               # (none: test_fusion_branches says why)
        share = float(is_dropped[matters].float().mean())
        assert 0.25 <= share <= 0.75, f"cnn_dropout=0.5 dropped {share:.0%} of the examples: expected about half"
    with torch.no_grad():
        assert torch.allclose(fnet.eval()(x_mel, emb), kept), "in eval mode cnn_dropout must do nothing"


def visible_neighbours_ranking(nearest_neighbours):
    """nearest_neighbours: cosine similarity, most similar first, equal similarities by lower index."""
    emb = np.array([[1., 0.], [10., 1.], [0., 1.], [1., 1.], [-1., 0.]])
    nbrs = nearest_neighbours(emb, k=3)
    assert isinstance(nbrs, np.ndarray) and nbrs.shape == (5, 3) and nbrs.dtype == np.int64, \
        f"expected an int64 array (5, 3), got {getattr(nbrs, 'dtype', type(nbrs))} {np.shape(nbrs)}"
    expected = [[1, 3, 2], [0, 3, 2], [3, 1, 0], [1, 0, 2], [2, 3, 1]]
    others = [[j for j in row if j != i] for i, row in enumerate(nbrs.tolist())]  # the query itself: next cell
    assert all(o == e[:len(o)] for o, e in zip(others, expected)), \
        f"expected {expected}, got {nbrs.tolist()}: cosine similarity (not the dot product: item 1 is long), most similar first"


def visible_neighbours_query(nearest_neighbours):
    """nearest_neighbours leaves the query out, even when another item is identical to it."""
    emb = np.array([[1., 2.], [1., 2.], [2., 4.], [-1., 0.]])   # items 0, 1 and 2 point the same way
    nbrs = nearest_neighbours(emb, k=3)
    assert not (nbrs == np.arange(4)[:, None]).any(), f"an item is listed as its own neighbour: leave the query out ({nbrs.tolist()})"
    assert sorted(nbrs[1, :2].tolist()) == [0, 2], \
        f"item 1's nearest neighbours are its copies 0 and 2: leave out the query itself, not the first column ({nbrs[1].tolist()})"


LABELS = np.array([0, 0, 0, 1, 1])
RANKING = np.array([[1, 3, 2, 4], [3, 0, 2, 4], [0, 1, 3, 4], [4, 0, 1, 2], [0, 3, 1, 2]])  # full rankings, query left out


def visible_precision(precision_at_k):
    """precision_at_k: the fraction of the top k neighbours sharing the query's genre, averaged over queries."""
    labels = np.array([0, 0, 0, 1, 1])
    ranking = np.array([[1, 3, 2, 4], [3, 0, 2, 4], [0, 1, 3, 4], [4, 0, 1, 2], [0, 3, 1, 2]])  # full rankings
    p1, p2 = precision_at_k(ranking, labels, k=1), precision_at_k(ranking, labels, k=2)
    assert not np.isclose(p2, 0.4), "0.4 is the precision over the whole ranking: count only the first k columns"
    assert np.isclose(p1, 0.6) and np.isclose(p2, 0.6), f"expected 0.6 for k=1 and for k=2, got {p1} and {p2}"


def visible_map(map_at_k):
    """map_at_k: average precision at k, divided by min(k, other items of the query's genre), averaged over queries."""
    labels = np.array([0, 0, 0, 1, 1])
    ranking = np.array([[1, 3, 2, 4], [3, 0, 2, 4], [0, 1, 3, 4], [4, 0, 1, 2], [0, 3, 1, 2]])
    m = map_at_k(ranking, labels, k=2)
    assert not np.isclose(m, 0.5), "0.5: you divided by k; divide by min(k, R), R = the other items of the query's label"
    assert not np.isclose(m, 0.8), "0.8: you divided by the hits in the top k; divide by min(k, R)"
    assert np.isclose(m, 0.65), f"expected MAP@2 = 0.65, got {m}"


# Each notebook cell: its visible function (with the names it takes) and the hidden checks of its hidden block.
CELLS = {
    "pool_frames": (visible_pool_frames, ("pool_frames",), [(part4.check_pool_frames, "pool_frames")]),
    "standardize_train": (visible_standardize_train, ("Standardize",),
                          [(part4.check_standardize_train_statistics, "Standardize")]),
    "standardize_state": (visible_standardize_state, ("Standardize",), [(part4.check_standardize_state_dict, "Standardize")]),
    "standardize_constant": (visible_standardize_constant, ("Standardize",),
                             [(part4.check_standardize_constant_feature, "Standardize")]),
    "mlp": (visible_mlp, ("EmbeddingMLP",), [(part4.check_mlp_forward, "EmbeddingMLP")]),
    "fusion_forward": (visible_fusion_forward, ("FusionNet", "BaselineCNN"), [(part4.check_fusion_forward, "FusionNet")]),
    "fusion_branches": (visible_fusion_branches, ("FusionNet",), [(part4.check_fusion_both_branches, "FusionNet")]),
    "fusion_normalisation": (visible_fusion_normalisation, ("FusionNet", "Standardize"),
                             [(part4.check_fusion_normalisation, "FusionNet")]),
    "fusion_freeze": (visible_fusion_freeze, ("FusionNet",), [(part4.check_fusion_freeze, "FusionNet")]),
    "fusion_cnn_dropout": (visible_fusion_cnn_dropout, ("FusionNet",), [(part4.check_fusion_cnn_dropout, "FusionNet")]),
    "neighbours_ranking": (visible_neighbours_ranking, ("nearest_neighbours",),
                           [(part4.check_neighbours_ranking, "nearest_neighbours")]),
    "neighbours_query": (visible_neighbours_query, ("nearest_neighbours",),
                         [(part4.check_neighbours_query_left_out, "nearest_neighbours")]),
    "precision": (visible_precision, ("precision_at_k",), [(part4.check_precision_at_k, "precision_at_k")]),
    "map": (visible_map, ("map_at_k",), [(part4.check_map_at_k, "map_at_k")]),
}


def reference(**overrides) -> types.SimpleNamespace:
    names = dict(pool_frames=fusion.pool_frames, Standardize=fusion.Standardize, EmbeddingMLP=fusion.EmbeddingMLP,
                 FusionNet=fusion.FusionNet, BaselineCNN=models.BaselineCNN,
                 nearest_neighbours=retrieval.nearest_neighbours, precision_at_k=retrieval.precision_at_k,
                 map_at_k=retrieval.map_at_k)
    names.update(overrides)
    return types.SimpleNamespace(**names)


def checkpoint_states(student):
    """What a notebook run with this code would save: pooled musicnn-shaped rows -> fitted MLP and FusionNet."""
    rng = np.random.default_rng(0)
    rows = [rng.gamma(2.0, 1.0, size=(4, musicnn.LAYERS["max_pool"])).astype(np.float32) for _ in range(12)]
    x = np.stack([student.pool_frames(r) for r in rows])
    mlp = student.EmbeddingMLP(x.shape[1]).fit_normalization(x)
    fus = student.FusionNet(cnn_kwargs={"channels": (4, 4, 8, 8)}, musicnn_dim=x.shape[1]).fit_normalization(x)
    return mlp.state_dict(), fus.state_dict()


def failures(student) -> set[str]:
    """Names of the failing visible cells ('visible:<cell>'), hidden checks and checkpoint checks."""
    failed = set()
    for cell, (visible, args, checks) in CELLS.items():
        try:
            visible(*(getattr(student, a) for a in args))
        except Exception:
            failed.add(f"visible:{cell}")
        for check, arg in checks:
            try:
                check(getattr(student, arg))
            except AssertionError:
                failed.add(check.__name__)
    mlp_state, fusion_state = checkpoint_states(student)
    for check, state in ((part4.check_mlp_checkpoint, mlp_state), (part4.check_fusion_checkpoint, fusion_state)):
        try:
            check(state)
        except AssertionError:
            failed.add(check.__name__)
    return failed


# --- wrong answers ------------------------------------------------------------------------------------

def pool_mean_only(frames):
    return np.asarray(frames, dtype=np.float32).mean(axis=0).astype(np.float32)


def pool_max_mean(frames):
    f = np.asarray(frames, dtype=np.float32)
    return np.concatenate([f.max(axis=0), f.mean(axis=0)]).astype(np.float32)


class BatchStatistics(fusion.Standardize):
    """fit() is right, but forward standardises with the statistics of the data it is given (the test set)."""
    def forward(self, x):
        return (x - x.mean(0)) / x.std(0, correction=0).clamp_min(fusion.STD_FLOOR)


class NotStored(nn.Module):
    """Statistics as plain tensor attributes: not in state_dict, lost in the checkpoint."""
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.mean, self.std = torch.zeros(dim), torch.ones(dim)

    def fit(self, x_train):
        x = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
        self.mean, self.std = x.mean(0), x.std(0, correction=0).clamp_min(fusion.STD_FLOOR)
        return self

    def forward(self, x):
        return (x - self.mean) / self.std


class AsParameters(fusion.Standardize):
    """Statistics as trainable nn.Parameters: in the state_dict, but the optimiser would change them."""
    def __init__(self, dim):
        super().__init__(dim)
        del self.mean, self.std
        self.mean, self.std = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.ones(dim))

    def fit(self, x_train):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
            self.mean.copy_(x.mean(0))
            self.std.copy_(x.std(0, correction=0).clamp_min(fusion.STD_FLOOR))
        return self


class NoFloor(fusion.Standardize):
    def fit(self, x_train):
        x = torch.as_tensor(np.asarray(x_train, dtype=np.float64))
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0, correction=0))
        return self


def with_standardize(std_cls) -> dict:
    """A student whose EmbeddingMLP and FusionNet use their (wrong) Standardize."""
    class MLP(fusion.EmbeddingMLP):
        def __init__(self, in_dim, n_classes=config.NUM_CLASSES, hidden=100, dropout=0.5):
            super().__init__(in_dim, n_classes, hidden, dropout)
            self.norm = std_cls(in_dim)

    class Fusion(fusion.FusionNet):
        def __init__(self, cnn_kwargs, musicnn_dim, n_classes=config.NUM_CLASSES, hidden=100, dropout=0.5,
                     cnn_dropout=0.0, heads=1):
            super().__init__(cnn_kwargs, musicnn_dim, n_classes, hidden, dropout, cnn_dropout, heads)
            self.emb_norm = std_cls(musicnn_dim)

    return dict(Standardize=std_cls, EmbeddingMLP=MLP, FusionNet=Fusion)


class MLPNoRelu(fusion.EmbeddingMLP):
    def forward(self, x):
        return self.classifier(self.dropout(self.fc(self.norm(x))))


class MLPNoNorm(fusion.EmbeddingMLP):
    def forward(self, x):
        return self.classifier(self.dropout(torch.relu(self.fc(x))))


def branch_dropout(model, cnn_emb):
    """The contract's cnn_dropout, for wrong answers whose mistake is elsewhere in forward."""
    if model.training and model.cnn_dropout > 0:
        return cnn_emb * (torch.rand(len(cnn_emb), 1) >= model.cnn_dropout).float()
    return cnn_emb


class FusionDropCNN(fusion.FusionNet):
    """Only the musicnn branch reaches the head."""
    def __init__(self, cnn_kwargs, musicnn_dim, n_classes=config.NUM_CLASSES, hidden=100, dropout=0.5, cnn_dropout=0.0,
                 heads=1):
        super().__init__(cnn_kwargs, musicnn_dim, n_classes, hidden, dropout, cnn_dropout, heads)
        self.head = fusion.HeadEnsemble(musicnn_dim, hidden, n_classes, dropout, heads)

    def forward(self, x_mel, emb):
        return self.head(self.emb_norm(emb))


class FusionDropMusicnn(fusion.FusionNet):
    """Only the CNN branch reaches the head."""
    def __init__(self, cnn_kwargs, musicnn_dim, n_classes=config.NUM_CLASSES, hidden=100, dropout=0.5, cnn_dropout=0.0,
                 heads=1):
        super().__init__(cnn_kwargs, musicnn_dim, n_classes, hidden, dropout, cnn_dropout, heads)
        self.head = fusion.HeadEnsemble(self.cnn.embedding_dim, hidden, n_classes, dropout, heads)

    def forward(self, x_mel, emb):
        return self.head(branch_dropout(self, self.cnn_norm(self.cnn.embed(x_mel))))


class FusionRawCNN(fusion.FusionNet):
    def forward(self, x_mel, emb):
        return self.head(torch.cat([branch_dropout(self, self.cnn.embed(x_mel)), self.emb_norm(emb)], dim=1))


class FusionRawMusicnn(fusion.FusionNet):
    def forward(self, x_mel, emb):
        return self.head(torch.cat([branch_dropout(self, self.cnn_norm(self.cnn.embed(x_mel))), emb], dim=1))


class FusionFreezeNoEval(fusion.FusionNet):
    """requires_grad off, but the flag is not set: the frozen CNN's batch norms keep updating."""
    def freeze_cnn(self, flag=True):
        for p in self.cnn.parameters():
            p.requires_grad_(not flag)
        return self


class FusionDropoutPerValue(fusion.FusionNet):
    """nn.Dropout on the CNN embedding: per value, rescaled."""
    def forward(self, x_mel, emb):
        c = F.dropout(self.cnn_norm(self.cnn.embed(x_mel)), self.cnn_dropout, self.training)
        return self.head(torch.cat([c, self.emb_norm(emb)], dim=1))


class FusionDropoutRescaled(fusion.FusionNet):
    """One draw per example, but the kept embeddings scaled by 1 / (1 - p)."""
    def forward(self, x_mel, emb):
        c = branch_dropout(self, self.cnn_norm(self.cnn.embed(x_mel)))
        if self.training:
            c = c / (1 - self.cnn_dropout)
        return self.head(torch.cat([c, self.emb_norm(emb)], dim=1))


class FusionDropoutAlways(fusion.FusionNet):
    """Drops in eval mode too."""
    def forward(self, x_mel, emb):
        c = self.cnn_norm(self.cnn.embed(x_mel))
        c = c * (torch.rand(len(c), 1) >= self.cnn_dropout).float()
        return self.head(torch.cat([c, self.emb_norm(emb)], dim=1))


class FusionDropoutIgnored(fusion.FusionNet):
    """Accepts cnn_dropout and never uses it."""
    def forward(self, x_mel, emb):
        return self.head(torch.cat([self.cnn_norm(self.cnn.embed(x_mel)), self.emb_norm(emb)], dim=1))


def _cosine(emb):
    e = np.asarray(emb, dtype=np.float64)
    u = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-300)
    return u @ u.T


def neighbours_with_query(emb, k=10):
    return np.argsort(-_cosine(emb), axis=1, kind="stable")[:, :k].astype(np.int64)


def neighbours_skip_first(emb, k=10):
    return np.argsort(-_cosine(emb), axis=1, kind="stable")[:, 1:k + 1].astype(np.int64)


def neighbours_dot(emb, k=10):
    e = np.asarray(emb, dtype=np.float64)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k].astype(np.int64)


def neighbours_ties_high(emb, k=10):
    sim = _cosine(emb)
    np.fill_diagonal(sim, -np.inf)
    n = len(sim)
    return (n - 1 - np.argsort(-sim[:, ::-1], axis=1, kind="stable"))[:, :k].astype(np.int64)


def precision_all_items(neighbours, labels, k=10):
    neighbours, labels = np.asarray(neighbours), np.asarray(labels)
    return float((labels[neighbours] == labels[:, None]).mean())


def _map(neighbours, labels, k, normaliser):
    neighbours, labels = np.asarray(neighbours), np.asarray(labels)
    rel = (labels[neighbours[:, :k]] == labels[:, None]).astype(float)
    prec = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    norm = normaliser(rel, k, np.bincount(labels)[labels] - 1)
    return float(np.where(norm > 0, (rel * prec).sum(1) / np.maximum(norm, 1), 0).mean())


def map_by_k(neighbours, labels, k=10):
    return _map(neighbours, labels, k, lambda rel, k, r: np.full(len(r), k))


def map_by_hits(neighbours, labels, k=10):
    return _map(neighbours, labels, k, lambda rel, k, r: rel.sum(1))


class FusionOneHead(fusion.FusionNet):
    """Accepts heads and builds one plain head anyway."""
    def __init__(self, cnn_kwargs, musicnn_dim, n_classes=config.NUM_CLASSES, hidden=100, dropout=0.5, cnn_dropout=0.0,
                 heads=1):
        super().__init__(cnn_kwargs, musicnn_dim, n_classes, hidden, dropout, cnn_dropout)
        c = self.cnn.embedding_dim
        self.head = nn.Sequential(nn.Linear(c + musicnn_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))


WRONG = {
    # the list
    "pool: mean only": (dict(pool_frames=pool_mean_only),
                        {"visible:pool_frames", "check_pool_frames", "check_mlp_checkpoint", "check_fusion_checkpoint"}),
    "standardize: test-set statistics": (with_standardize(BatchStatistics),
                                         {"visible:standardize_train", "check_standardize_train_statistics"}),
    "standardize: statistics not stored": (with_standardize(NotStored),
                                           {"visible:standardize_state", "check_standardize_state_dict",
                                            "check_mlp_checkpoint", "check_fusion_checkpoint"}),
    "neighbours: query counted": (dict(nearest_neighbours=neighbours_with_query),
                                  {"visible:neighbours_query", "check_neighbours_query_left_out"}),
    "precision: all items": (dict(precision_at_k=precision_all_items), {"visible:precision", "check_precision_at_k"}),
    "fusion: CNN branch dropped": (dict(FusionNet=FusionDropCNN), {"visible:fusion_branches", "check_fusion_both_branches"}),
    "fusion: musicnn branch dropped": (dict(FusionNet=FusionDropMusicnn),
                                       {"visible:fusion_branches", "check_fusion_both_branches"}),
    # more plausible mistakes
    "pool: [max, mean]": (dict(pool_frames=pool_max_mean), {"visible:pool_frames", "check_pool_frames"}),
    "standardize: nn.Parameter statistics": (with_standardize(AsParameters),
                                             {"visible:standardize_state", "check_standardize_state_dict"}),
    "standardize: no std floor": (with_standardize(NoFloor),
                                  {"visible:standardize_constant", "check_standardize_constant_feature"}),
    "mlp: no ReLU": (dict(EmbeddingMLP=MLPNoRelu), {"visible:mlp", "check_mlp_forward"}),
    "mlp: input not standardised": (dict(EmbeddingMLP=MLPNoNorm), {"visible:mlp", "check_mlp_forward"}),
    "fusion: CNN embedding not normalised": (dict(FusionNet=FusionRawCNN), {"check_fusion_normalisation"}),
    "fusion: musicnn embedding not standardised": (dict(FusionNet=FusionRawMusicnn),
                                                   {"visible:fusion_normalisation", "check_fusion_normalisation"}),
    "fusion: frozen CNN left in train mode": (dict(FusionNet=FusionFreezeNoEval),
                                             {"visible:fusion_freeze", "check_fusion_freeze"}),
    "fusion: cnn_dropout per value": (dict(FusionNet=FusionDropoutPerValue),
                                      {"visible:fusion_cnn_dropout", "check_fusion_cnn_dropout"}),
    "fusion: cnn_dropout rescaled": (dict(FusionNet=FusionDropoutRescaled),
                                     {"visible:fusion_cnn_dropout", "check_fusion_cnn_dropout"}),
    "fusion: cnn_dropout in eval mode too": (dict(FusionNet=FusionDropoutAlways),
                                             {"visible:fusion_cnn_dropout", "check_fusion_cnn_dropout"}),
    "fusion: cnn_dropout ignored": (dict(FusionNet=FusionDropoutIgnored),
                                    {"visible:fusion_cnn_dropout", "check_fusion_cnn_dropout"}),
    "fusion: heads ignored": (dict(FusionNet=FusionOneHead), {"visible:fusion_forward", "check_fusion_forward"}),
    "neighbours: dot product": (dict(nearest_neighbours=neighbours_dot),
                                {"visible:neighbours_ranking", "check_neighbours_ranking"}),
    "neighbours: ties to the higher index": (dict(nearest_neighbours=neighbours_ties_high),
                                             {"visible:neighbours_ranking", "check_neighbours_ranking"}),
    "neighbours: first column dropped": (dict(nearest_neighbours=neighbours_skip_first),
                                         {"visible:neighbours_query", "check_neighbours_query_left_out",
                                          "check_neighbours_ranking"}),
    "map: divided by k": (dict(map_at_k=map_by_k), {"visible:map", "check_map_at_k"}),
    "map: divided by the hits": (dict(map_at_k=map_by_hits), {"visible:map", "check_map_at_k"}),
}


def test_reference_passes_everything():
    assert failures(reference()) == set()


@pytest.mark.parametrize("name", list(WRONG))
def test_each_wrong_answer_fails_exactly_its_checks(name):
    overrides, expected = WRONG[name]
    assert failures(reference(**overrides)) == expected


# --- correct variants written differently -------------------------------------------------------------

def pool_torch(frames):
    t = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    return torch.cat([t.mean(0), t.amax(0)]).numpy().astype(np.float32)


class StandardizeSample(fusion.Standardize):
    """numpy statistics, N - 1 divisor, buffers replaced by attribute assignment, a floor added to std."""
    def fit(self, x_train):
        x = np.asarray(x_train, dtype=np.float64)
        self.mean = torch.tensor(x.mean(axis=0), dtype=torch.float32)
        self.std = torch.tensor(np.maximum(x.std(axis=0, ddof=1), 1e-6), dtype=torch.float32)
        return self

    def forward(self, x):
        return (x - self.mean[None, :]) * self.std.reciprocal()


class MLPFunctional(fusion.EmbeddingMLP):
    """Dropout before the ReLU (equivalent), functional calls."""
    def forward(self, x):
        return self.classifier(F.relu(F.dropout(self.fc(self.norm(x)), self.dropout.p, self.training)))


class FusionReordered(fusion.FusionNet):
    """[musicnn, CNN] order, a hand-written layer norm, nn.Module.requires_grad_ for freezing."""
    def __init__(self, cnn_kwargs, musicnn_dim, n_classes=config.NUM_CLASSES, hidden=100, dropout=0.5, cnn_dropout=0.0,
                 heads=1):
        super().__init__(cnn_kwargs, musicnn_dim, n_classes, hidden, dropout, cnn_dropout, heads)
        self.head.members[0][0] = nn.Linear(musicnn_dim + self.cnn.embedding_dim, hidden)

    def forward(self, x_mel, emb):
        e = self.cnn.embed(x_mel)
        mu, var = e.mean(1, keepdim=True), e.var(1, unbiased=False, keepdim=True)
        e = (e - mu) / torch.sqrt(var + self.cnn_norm.eps) * self.cnn_norm.weight + self.cnn_norm.bias
        return self.head(torch.cat([self.emb_norm(emb), branch_dropout(self, e)], dim=1))

    def freeze_cnn(self, flag=True):
        self.cnn.requires_grad_(not flag)
        self.cnn_frozen = flag
        self.train(self.training)
        return self


def neighbours_torch(emb, k=10):
    e = F.normalize(torch.as_tensor(np.asarray(emb), dtype=torch.float64), dim=1)
    dist = 1 - e @ e.T                                     # cosine distance
    dist.fill_diagonal_(float("inf"))
    return torch.sort(dist, dim=1, stable=True).indices[:, :k].numpy().astype(np.int64)


def neighbours_float32(emb, k=10):
    e = F.normalize(torch.as_tensor(np.asarray(emb), dtype=torch.float32), dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-float("inf"))
    return torch.sort(-sim, dim=1, stable=True).indices[:, :k].numpy().astype(np.int64)


def neighbours_lexsort(emb, k=10):
    sim = _cosine(emb)
    n = len(sim)
    out = []
    for i in range(n):
        order = np.lexsort((np.arange(n), -sim[i]))          # by similarity, then index
        out.append([j for j in order if j != i][:k])
    return np.array(out, dtype=np.int64)


def precision_loops(neighbours, labels, k=10):
    return sum(sum(labels[j] == labels[i] for j in row[:k]) / k for i, row in enumerate(neighbours)) / len(labels)


def map_loops(neighbours, labels, k=10):
    total = 0.0
    for i, row in enumerate(neighbours):
        hits, s = 0, 0.0
        for r, j in enumerate(row[:k], start=1):
            if labels[j] == labels[i]:
                hits += 1
                s += hits / r
        relevant = int(np.sum(labels == labels[i])) - 1
        total += s / min(k, relevant) if relevant else 0.0
    return np.float64(total / len(labels))


def test_correct_variants_pass():
    student = reference(pool_frames=pool_torch, EmbeddingMLP=MLPFunctional, FusionNet=FusionReordered,
                        nearest_neighbours=neighbours_torch, precision_at_k=precision_loops, map_at_k=map_loops)
    assert failures(student) == set()
    assert failures(reference(nearest_neighbours=neighbours_lexsort, **with_standardize(StandardizeSample))) == set()
    assert failures(reference(nearest_neighbours=neighbours_float32)) == set()


def test_a_failure_is_one_line_naming_the_idea():
    with pytest.raises(AssertionError) as err:
        part4.check_neighbours_query_left_out(neighbours_with_query)
    assert "own neighbours" in str(err.value) and "\n" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(AssertionError, match="only the mean"):
        part4.check_pool_frames(pool_mean_only)
    with pytest.raises(AssertionError, match="own statistics"):
        part4.check_standardize_train_statistics(BatchStatistics)
    with pytest.raises(AssertionError, match="register_buffer"):
        part4.check_standardize_state_dict(NotStored)
    with pytest.raises(AssertionError, match="the top k"):
        part4.check_precision_at_k(precision_all_items)
    with pytest.raises(AssertionError, match="CNN branch is dropped"):
        part4.check_fusion_both_branches(FusionDropCNN)
    with pytest.raises(AssertionError, match="musicnn branch is dropped"):
        part4.check_fusion_both_branches(FusionDropMusicnn)
    with pytest.raises(AssertionError, match="dot product"):
        part4.check_neighbours_ranking(neighbours_dot)
    with pytest.raises(AssertionError, match="not by k"):
        part4.check_map_at_k(map_by_k)


def test_each_verdict_passes_the_reference_record_and_refuses_forged_ones():
    """The grader runs each probe on the student's package and its verdict in its own process: the
    reference's records pass; records forged without computing the answer (zeros of the right shape,
    outputs copied across conditions, flags flipped, NaN) fail the verdicts that judge them."""
    from autograder.checks import common
    names = sorted(n for n in common.CHECKS if n.startswith("part4."))
    assert names == sorted(f"part4.{check.__name__}" for _, _, checks in CELLS.values() for check, _ in checks)
    ref, genuine = reference(), {}
    for name in names:
        check = common.CHECKS[name]
        assert check.judge_record is not None
        assert all(p.rsplit(".", 1)[0] in ("genre.fusion", "genre.retrieval") for p in check.student), name
        raw = check.record(*(getattr(ref, p.rsplit(".", 1)[1]) for p in check.student))
        assert len(raw) < 100_000, (name, len(raw))
        assert common.judge(name, raw) is None, name
        genuine[name] = common.decode(raw)

    def judge(name, **changes):
        return common.judge(f"part4.{name}", common.encode({**genuine[f"part4.{name}"], **changes}))

    def zeros(name):
        return {k: np.zeros_like(v) for k, v in genuine[f"part4.{name}"].items() if isinstance(v, np.ndarray)}

    # zeros of the right shape fail every check that judges values (freeze judges flags and changes, below;
    # cnn_dropout leaves a record where the CNN branch does not matter to check_fusion_both_branches)
    for name in names:
        short = name.split(".", 1)[1]
        if short not in ("check_fusion_freeze", "check_fusion_cnn_dropout"):
            assert judge(short, **zeros(short)) is not None, name

    rec = genuine["part4.check_pool_frames"]
    assert "only the mean" in judge("check_pool_frames", out_0=rec["out_0"][:5].copy())
    assert judge("check_pool_frames", dtype_1="float64") is not None
    assert judge("check_standardize_train_statistics", z_one=genuine["part4.check_standardize_train_statistics"]["z"][1:2]) \
        is not None
    assert judge("check_standardize_state_dict", params=["mean"]) is not None
    # the MLP: logits recomputed from the recorded weights; train-mode rows must be dropout of the hidden units
    mlp = genuine["part4.check_mlp_forward"]
    assert judge("check_mlp_forward", out=mlp["out"] + 0.01) is not None
    assert "dropout is not active" in judge("check_mlp_forward", train_b=mlp["train_a"])
    assert "in train mode dropout" in judge("check_mlp_forward", train_b=mlp["train_a"] + 0.5)
    assert "in train mode dropout" in judge("check_mlp_forward", train_a=mlp["train_a"] * 1.5)
    # fusion: an output unchanged when a branch's input changes, rescaled inputs that change it, the same row everywhere
    both = genuine["part4.check_fusion_both_branches"]
    assert "CNN branch is dropped" in judge("check_fusion_both_branches", mel_changed=both["base"])
    assert "musicnn branch is dropped" in judge("check_fusion_both_branches", emb_changed=both["base"])
    norm = genuine["part4.check_fusion_normalisation"]
    assert "emb_norm" in judge("check_fusion_normalisation", o2=norm["o1"] + 0.1)
    assert "LayerNorm" in judge("check_fusion_normalisation", o3=norm["o2"] * 2)
    same = np.repeat(norm["o1"][:1], 3, axis=0)
    assert "same logits" in judge("check_fusion_normalisation", o1=same, o2=same, o3=same, one=same[:1])
    fwd = genuine["part4.check_fusion_forward"]
    assert "same logits" in judge("check_fusion_forward", out_40=np.repeat(fwd["out_40"][:1], 3, axis=0))
    assert judge("check_fusion_forward", embedding_dim=64) is not None
    assert "three heads" in judge("check_fusion_forward", head_params=[fwd["head_params"][0]] * 2)
    assert "heads=3" in judge("check_fusion_forward", out_heads3=fwd["out_heads3"][:, :4])
    assert "unchanged" in judge("check_fusion_forward", train_heads3_members=None)
    freeze = genuine["part4.check_fusion_freeze"]
    assert judge("check_fusion_freeze", cnn_requires_grad=[True] * len(freeze["cnn_requires_grad"])) is not None
    assert judge("check_fusion_freeze", cnn_training=[True] * len(freeze["cnn_training"])) is not None
    assert "changed the frozen CNN" in judge("check_fusion_freeze", after_0=freeze["before_0"] + 1)
    assert judge("check_fusion_freeze", unfrozen_cnn_training=False) is not None
    drop = genuine["part4.check_fusion_cnn_dropout"]
    assert "0% of the examples" in judge("check_fusion_cnn_dropout", out=drop["kept"])              # never drops
    assert "in eval mode" in judge("check_fusion_cnn_dropout", again=drop["out"])                    # drops at test time
    assert "one draw per example" in judge("check_fusion_cnn_dropout", out=(drop["kept"] + drop["dropped"]) / 2)
    assert judge("check_fusion_cnn_dropout", cnn_dropout=0.5) is not None
    # retrieval: rankings and metrics recomputed from the inputs the verdict draws itself
    ranking = genuine["part4.check_neighbours_ranking"]
    assert judge("check_neighbours_ranking", k_5=ranking["k_5"][:, ::-1].copy()) is not None
    assert "int64" in judge("check_neighbours_ranking", k_1=ranking["k_1"].astype(np.int32))
    query = genuine["part4.check_neighbours_query_left_out"]
    assert "own neighbours" in judge("check_neighbours_query_left_out", k_4=np.repeat(np.arange(12)[:, None], 4, axis=1))
    assert judge("check_neighbours_query_left_out", k_11=query["k_11"][:, ::-1].copy()) is not None
    assert judge("check_precision_at_k", p_0=np.float64(np.nan)) is not None
    assert judge("check_precision_at_k", p_2=genuine["part4.check_precision_at_k"]["p_2"] + 0.01) is not None
    assert "one number" in judge("check_map_at_k", m_3=np.zeros(3))
    assert judge("check_map_at_k", m_10=np.float64(np.nan)) is not None
    # a verdict reads outputs only: what the record claims about its inputs changes nothing
    assert judge("check_precision_at_k", labels=np.zeros(30, dtype=np.int64)) is None


def test_visible_examples_are_what_they_claim():
    """The literal numbers of the visible cells, recomputed from their definitions."""
    k2 = dict(zip(("min", "k", "hits", "all"),
                  (part4._reference_metrics(RANKING, LABELS, 2, n)[1] for n in ("min", "k", "hits", "all"))))
    assert np.isclose(k2["min"], 0.65) and np.isclose(k2["k"], 0.5) and np.isclose(k2["hits"], 0.8)
    assert not np.isclose(part4._reference_metrics(RANKING, LABELS, 4)[1], 0.65)  # whole ranking differs
    assert np.isclose(part4._reference_metrics(RANKING, LABELS, 4)[0], 0.4)
    emb = np.array([[1., 0.], [10., 1.], [0., 1.], [1., 1.], [-1., 0.]])
    assert retrieval.nearest_neighbours(emb, k=3).tolist() == [[1, 3, 2], [0, 3, 2], [3, 1, 0], [1, 0, 2], [2, 3, 1]]
    assert neighbours_dot(emb, k=3).tolist() != [[1, 3, 2], [0, 3, 2], [3, 1, 0], [1, 0, 2], [2, 3, 1]]
    docstring_example = retrieval.map_at_k([[3, 1, 2], [0, 2, 3], [0, 1, 3], [0, 1, 2]], [0, 0, 0, 1], k=3)
    assert docstring_example * 4 == pytest.approx(7 / 12 + 1 + 1 + 0)


# --- contracts of the reference: bad input, shapes, checkpoints ------------------------------------

def test_bad_input_is_a_one_line_value_error():
    cases = [
        (lambda: fusion.pool_frames(np.zeros(5)), "frames"),
        (lambda: fusion.pool_frames(np.zeros((0, 3))), "frames"),
        (lambda: fusion.pool_frames(np.array([[np.nan, 1.0]])), "frames"),
        (lambda: fusion.Standardize(3).fit(np.ones((1, 3))), "x_train"),
        (lambda: fusion.Standardize(3).fit(np.ones((4, 2))), "x_train"),
        (lambda: fusion.Standardize(2).fit(np.array([[1.0, np.inf], [0.0, 1.0]])), "x_train"),
        (lambda: fusion.Standardize(3)(torch.zeros(2, 4)), "x must"),
        (lambda: retrieval.nearest_neighbours(np.ones((3, 2)), k=3), "k must"),
        (lambda: retrieval.nearest_neighbours(np.ones(3), k=1), "emb"),
        (lambda: retrieval.precision_at_k(RANKING, LABELS, k=5), "k must"),
        (lambda: retrieval.map_at_k(RANKING, LABELS[:4], k=2), "labels"),
        (lambda: retrieval.map_at_k(RANKING + 1, LABELS, k=2), "indices"),
    ]
    for call, word in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert word in str(err.value) and "\n" not in str(err.value)


def test_zero_row_and_forward_before_fit():
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    assert retrieval.nearest_neighbours(emb, k=2).tolist() == [[1, 2], [0, 2], [0, 1]]
    x = torch.randn(3, 4)
    assert torch.equal(fusion.Standardize(4)(x), x)  # identity before fit


def test_checkpoints_round_trip_and_grader_checks(tmp_path):
    mlp_state, fusion_state = checkpoint_states(reference())
    torch.manual_seed(0)
    x = np.random.default_rng(1).gamma(2.0, 1.0, size=(30, part4.EMBEDDING_DIM)).astype(np.float32)
    mlp = fusion.EmbeddingMLP(part4.EMBEDDING_DIM).fit_normalization(x)
    musicnn_info = {"musicnn": {"model": "MSD_musicnn", "layer": "max_pool", "pooling": "mean+max"}}
    path = checkpoint.save(tmp_path / "mlp.pt", mlp, model_kwargs={"in_dim": part4.EMBEDDING_DIM}, extra=musicnn_info)
    ckpt = checkpoint.load(path)
    part4.check_mlp_checkpoint(ckpt)
    part4.check_mlp_checkpoint(checkpoint.load_model(path, cls=fusion.EmbeddingMLP))
    loaded = checkpoint.load_model(path, cls=fusion.EmbeddingMLP)
    assert torch.equal(loaded.norm.mean, mlp.norm.mean) and torch.equal(loaded.norm.std, mlp.norm.std)

    cnn_kwargs = {"channels": (4, 4, 8, 8), "dropout": 0.3}
    part3 = models.BaselineCNN(**cnn_kwargs)
    fus = fusion.FusionNet(cnn_kwargs, musicnn_dim=part4.EMBEDDING_DIM).load_cnn_state(part3.state_dict())
    fus.fit_normalization(x).freeze_cnn(True)
    path = checkpoint.save(tmp_path / "fusion.pt", fus, model_kwargs={"cnn_kwargs": cnn_kwargs,
                                                                       "musicnn_dim": part4.EMBEDDING_DIM})
    rebuilt = checkpoint.load_model(path, cls=fusion.FusionNet)  # tuples became lists in the file: still rebuilds
    # (cls given: "genre.fusion" is importable by name only while another test module keeps it loaded)
    part4.check_fusion_checkpoint(checkpoint.load(path))
    x_mel = torch.randn(2, 1, config.N_MELS, 126)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x_mel, torch.from_numpy(x[:2])), fus.eval()(x_mel, torch.from_numpy(x[:2])))

    def reason(check, obj):
        with pytest.raises(AssertionError) as err:
            check(obj)
        assert "\n" not in str(err.value)
        return str(err.value)

    missing = {k: v for k, v in mlp_state.items() if not k.startswith("norm.")}
    assert "no normalisation statistics" in reason(part4.check_mlp_checkpoint, missing)
    assert "not finite" in reason(part4.check_mlp_checkpoint, {**mlp_state, "norm.std": mlp_state["norm.std"] * np.nan})
    assert "never fitted" in reason(part4.check_mlp_checkpoint, fusion.EmbeddingMLP(part4.EMBEDDING_DIM))
    assert "<= 0" in reason(part4.check_mlp_checkpoint, {**mlp_state, "norm.std": -mlp_state["norm.std"]})
    short = fusion.EmbeddingMLP(musicnn.LAYERS["penultimate"]).fit_normalization(x[:, :200])
    assert "200-dim" in reason(part4.check_mlp_checkpoint, short)
    mtt = {**ckpt, "extra": {"musicnn": {"model": "MTT_musicnn", "layer": "max_pool"}}}
    assert "MTT_musicnn" in reason(part4.check_mlp_checkpoint, mtt)
    assert "no CNN branch" in reason(part4.check_fusion_checkpoint, mlp_state)
    no_stats = {k: v for k, v in fusion_state.items() if not k.startswith("emb_norm.")}
    assert "emb_norm.mean" in reason(part4.check_fusion_checkpoint, no_stats)


def test_frozen_branch_does_not_train():
    torch.manual_seed(0)
    fus = fusion.FusionNet({"channels": (4, 4, 8, 8)}, musicnn_dim=6).fit_normalization(np.random.rand(8, 6))
    fus.freeze_cnn(True).train()
    before = {k: v.clone() for k, v in fus.cnn.state_dict().items()}
    opt = torch.optim.AdamW(fus.parameters(), lr=0.1, weight_decay=0.1)
    loss = fus(torch.randn(4, 1, config.N_MELS, 40), torch.randn(4, 6)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in fus.cnn.state_dict().items())


# --- the student version -------------------------------------------------------------------------------

def test_student_version_imports_and_every_check_fails_on_the_stubs(tmp_path):
    package = tmp_path / PACKAGE
    package.mkdir()
    source = SOLUTIONS / ASSIGNMENT / PACKAGE
    (package / "__init__.py").write_text("")
    for name in ("models.py", "fusion.py", "retrieval.py"):
        stripped = strip_solutions((source / name).read_text(), name)
        assert "BEGIN SOLUTION" not in stripped
        (package / name).write_text(stripped)
    code = textwrap.dedent("""
        import numpy as np
        from autograder.checks import part4
        from genre import fusion, retrieval
        fns = {"pool_frames": fusion.pool_frames, "Standardize": fusion.Standardize,
               "EmbeddingMLP": fusion.EmbeddingMLP, "FusionNet": fusion.FusionNet,
               "nearest_neighbours": retrieval.nearest_neighbours, "precision_at_k": retrieval.precision_at_k,
               "map_at_k": retrieval.map_at_k}
        checks = [(part4.check_pool_frames, "pool_frames"), (part4.check_standardize_train_statistics, "Standardize"),
                  (part4.check_standardize_state_dict, "Standardize"),
                  (part4.check_standardize_constant_feature, "Standardize"), (part4.check_mlp_forward, "EmbeddingMLP"),
                  (part4.check_fusion_forward, "FusionNet"), (part4.check_fusion_both_branches, "FusionNet"),
                  (part4.check_fusion_normalisation, "FusionNet"), (part4.check_fusion_freeze, "FusionNet"),
                  (part4.check_fusion_cnn_dropout, "FusionNet"),
                  (part4.check_neighbours_ranking, "nearest_neighbours"),
                  (part4.check_neighbours_query_left_out, "nearest_neighbours"),
                  (part4.check_precision_at_k, "precision_at_k"), (part4.check_map_at_k, "map_at_k")]
        passed = []
        for check, name in checks:
            try:
                check(fns[name])
                passed.append(check.__name__)
            except AssertionError as err:
                assert "NotImplementedError" in str(err), str(err)
        assert not passed, passed
        print("stubs fail", len(checks))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stubs fail 14" in proc.stdout


def test_head_ensemble_averages_probabilities_and_trains_members_alone():
    torch.manual_seed(0)
    x = torch.randn(6, 12)
    one = fusion.HeadEnsemble(12, 7, 5, 0.3, heads=1)
    assert torch.equal(one.eval()(x), one.members[0](x)), "one head is a plain head: its own logits"
    assert torch.is_tensor(one.train()(x)), "one head returns logits in train mode too"
    three = fusion.HeadEnsemble(12, 7, 5, 0.3, heads=3).eval()
    with torch.no_grad():
        probs = torch.stack([torch.softmax(m(x), 1) for m in three.members]).mean(0)
        assert torch.allclose(torch.softmax(three(x), 1), probs, atol=1e-6)
        assert not torch.allclose(torch.softmax(three.members[0](x), 1), probs, atol=1e-3), "members start apart"
        out = three.train()(x)
    assert set(out) == {"logits", "member_logits"} and out["member_logits"].shape == (6, 3, 5)
    for heads in (0, -1, 2.5):
        with pytest.raises(ValueError, match="heads must be a positive integer"):
            fusion.HeadEnsemble(12, 7, 5, 0.3, heads=heads)


def test_fusion_with_heads_round_trips_through_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    kwargs = dict(cnn_kwargs={"channels": (4, 4, 8, 8)}, musicnn_dim=20, hidden=9, heads=4)
    fnet = fusion.FusionNet(**kwargs).fit_normalization(torch.randn(30, 20)).freeze_cnn(True)
    x_mel, emb = torch.randn(5, 1, 96, 40), torch.randn(5, 20)
    y = torch.randint(0, config.NUM_CLASSES, (5,))
    from genrekit import train
    from torch.utils.data import TensorDataset
    train.fit(fnet, TensorDataset(x_mel, emb, y), None, epochs=2, batch_size=5, device="cpu", progress=False)
    path = checkpoint.save(tmp_path / "fusion.pt", fnet, model_kwargs=kwargs)
    again = checkpoint.load_model(path, cls=fusion.FusionNet)
    assert len(again.head.members) == 4
    with torch.no_grad():
        assert torch.allclose(again(x_mel, emb), fnet.eval()(x_mel, emb), atol=1e-6)
