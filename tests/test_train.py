import numpy as np
import pytest
import torch
from torch import nn

from genrekit import train


def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 1, 4, 6)).astype(np.float32)
    x[np.arange(n), 0, y, :] += 2.0  # class k lights up row k
    return torch.from_numpy(x), torch.from_numpy(y)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(24, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_fit_learns_and_keeps_best_epoch(capfd):
    xtr, ytr = _blobs(96, 0)
    xva, yva = _blobs(48, 1)
    model = Tiny()
    hist = train.fit(model, (xtr, ytr), (xva, yva), epochs=8, lr=0.05, batch_size=16, seed=0, device="cpu")
    out, err = capfd.readouterr()
    assert err == "", f"training wrote to stderr: {err[:200]}"
    assert "epochs" in out, "no progress bar on stdout"
    assert len(hist["train_loss"]) == len(hist["valid_acc"]) == 8
    best = hist["best_epoch"]
    assert hist["valid_acc"][best - 1] == max(hist["valid_acc"]) == hist["best_valid_acc"] > 0.9
    _, _, m = train.evaluate(model, xva, yva)
    assert m["accuracy"] == pytest.approx(hist["best_valid_acc"]), "model does not hold the best epoch's weights"


def test_fit_is_repeatable_with_a_seed():
    xtr, ytr = _blobs(64)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = Tiny()
        runs.append(train.fit(model, (xtr, ytr), None, epochs=3, seed=7, progress=False, device="cpu")["train_loss"])
    assert runs[0] == runs[1]


def test_dict_outputs_and_predict_proba():
    class DictModel(Tiny):
        def forward(self, x):
            return {"logits": super().forward(x), "embedding": x.flatten(1)}
    xtr, ytr = _blobs(32)
    model = DictModel()
    train.fit(model, (xtr, ytr), epochs=1, progress=False, device="cpu")
    probs = train.predict_proba(model, xtr, batch_size=5)
    assert probs.shape == (32, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_stack_fixes_lengths():
    feats = [np.ones((3, 10)), np.ones((3, 12)), np.ones((3, 11))]
    assert train.stack(feats).shape == (3, 1, 3, 10)
    assert train.stack(feats, frames=13).shape == (3, 1, 3, 13)
    with pytest.raises(ValueError, match="no features"):
        train.stack([])
    with pytest.raises(ValueError, match="epochs"):
        train.fit(Tiny(), _blobs(8), epochs=0)


def test_last_batch_of_one_and_plateau_scheduler():
    class WithBN(Tiny):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            return self.bn(super().forward(x))
    x, y = _blobs(33)  # 33 = 2 batches of 16 + 1
    model = WithBN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    hist = train.fit(model, (x, y), (x, y), epochs=2, batch_size=16, optimizer=opt, scheduler=sched,
                     progress=False, device="cpu")
    assert hist["lr"] == [0.1] and len(hist["train_loss"]) == 2


class TwoMembers(nn.Module):
    """An ensemble of two linear members: in train mode the dict that asks fit to train each member alone."""
    def __init__(self):
        super().__init__()
        self.members = nn.ModuleList(nn.Linear(24, 4) for _ in range(2))

    def forward(self, x):
        member_logits = torch.stack([m(x.flatten(1)) for m in self.members], dim=1)       # (B, 2, 4)
        logits = torch.logsumexp(torch.log_softmax(member_logits, 2), 1) - np.log(2)      # log mean probability
        return {"logits": logits, "member_logits": member_logits} if self.training else logits


def test_member_logits_train_each_member_on_its_own_loss():
    x, y = _blobs(32, 0)
    torch.manual_seed(0)
    model = TwoMembers()
    with torch.no_grad():
        expected = np.mean([nn.functional.cross_entropy(m(x.flatten(1)), y).item() for m in model.members])
        mixture = nn.functional.cross_entropy(model.eval()(x), y).item()
    assert abs(expected - mixture) > 1e-3, "the test needs members whose mean loss differs from the mixture's"
    hist = train.fit(model, (x, y), None, epochs=1, batch_size=32, lr=0.0, weight_decay=0.0, seed=0,
                     device="cpu", progress=False)
    assert hist["train_loss"][0] == pytest.approx(expected, rel=1e-5)
    # independence: member 0's gradient is that of its own loss alone, whatever member 1 holds
    grads = []
    for scale in (1.0, 5.0):
        with torch.no_grad():
            model.members[1].weight.mul_(scale)
        model.train().zero_grad()
        out = model(x)
        train._loss(nn.CrossEntropyLoss(), out, y).backward()
        grads.append(model.members[0].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


def test_member_logits_of_the_wrong_shape_are_refused():
    x, y = _blobs(4, 0)
    bad = {"logits": torch.zeros(4, 4), "member_logits": torch.zeros(4, 4)}
    with pytest.raises(ValueError, match="member_logits must be"):
        train._loss(nn.CrossEntropyLoss(), bad, y)
