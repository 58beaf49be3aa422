import pytest
import torch
from torch import nn

from genrekit import checkpoint, config


class Net(nn.Module):
    def __init__(self, width=4, n_classes=8):
        super().__init__()
        self.fc = nn.Linear(width, n_classes)
        self.bn = nn.BatchNorm1d(n_classes)

    def forward(self, x):
        return self.bn(self.fc(x))


def _saved(tmp_path, **kw):
    torch.manual_seed(0)
    model = Net(width=6)
    path = checkpoint.save(tmp_path / "sub" / "m.pt", model, model_kwargs={"width": 6}, dataset="synthetic:default",
                           seed=3, metrics={"accuracy": torch.tensor(0.5)}, **kw)
    return model, path


def test_roundtrip_with_weights_only(tmp_path):
    model, path = _saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == {"class": "test_checkpoint.Net", "kwargs": {"width": 6}}
    assert raw["feature_config"] == config.feature_config() and raw["seed"] == 3
    assert raw["metrics"] == {"accuracy": 0.5} and raw["dataset"] == "synthetic:default"
    loaded = checkpoint.load_model(path)
    x = torch.randn(5, 6)
    model.eval()
    assert torch.equal(model(x), loaded(x)) and not loaded.training


def test_other_feature_config_is_refused(tmp_path):
    _, path = _saved(tmp_path, feature_config={**config.feature_config(), "n_mels": 128})
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(path)
    msg = str(err.value)
    assert "n_mels 128 (checkpoint) != 96 (expected)" in msg and str(path) in msg and "\n" not in msg
    assert checkpoint.load(path, feature_config=False)["feature_config"]["n_mels"] == 128


def test_error_paths_name_the_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="m.pt: checkpoint not found"):
        checkpoint.load(tmp_path / "m.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="junk.pt: not a readable checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(checkpoint.CheckpointError, match="plain.pt: not a genrekit-checkpoint"):
        checkpoint.load(tmp_path / "plain.pt")
    _, path = _saved(tmp_path)

    class Other(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.fc = nn.Linear(width, 3)
    with pytest.raises(checkpoint.CheckpointError, match="weights do not fit"):
        checkpoint.load_model(path, cls=Other)
    with pytest.raises(checkpoint.CheckpointError, match="cannot import module 'no_such_pkg'"):
        checkpoint.import_class("no_such_pkg.Model")


def test_numpy_and_path_values_are_stored_as_plain_python(tmp_path):
    import numpy as np
    model = Net()
    path = checkpoint.save(tmp_path / "m.pt", model, seed=np.int64(4), dataset=np.str_("synthetic:default"),
                           extra={"folder": tmp_path, "scores": np.array([0.5, 0.25])})
    ckpt = checkpoint.load(path)  # weights_only=True
    assert ckpt["seed"] == 4 and type(ckpt["seed"]) is int
    assert ckpt["extra"] == {"folder": str(tmp_path), "scores": [0.5, 0.25]}
