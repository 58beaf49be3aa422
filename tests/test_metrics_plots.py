import numpy as np
import pytest

from genrekit import metrics, plots


def test_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    probs = np.full((8, 8), 0.01)
    pred = np.array([0, 0, 1, 2, 2, 2, 3, 0])
    probs[np.arange(8), pred] = 0.9
    probs[3, 1] = 0.5  # sample 3: true class second best
    m = metrics.summary(y, probs)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["top2_accuracy"] == pytest.approx(7 / 8)
    # classes 4..7 never occur: macro-F1 over 8 labels counts them as 0
    f1 = [2 / 3 * 2 / (2 / 3 + 1), 1.0 * 2 * 0.5 / 1.5, 2 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 8)
    cm = metrics.confusion(y, pred)
    assert cm.shape == (8, 8) and cm[3, 0] == 1 and np.trace(cm) == 6
    assert "classical" in metrics.report(y, pred)
    assert metrics.mcc(y, np.zeros(8, int)) == 0.0


def test_shape_errors():
    with pytest.raises(ValueError, match="expected probs of shape"):
        metrics.summary(np.zeros(3, int), np.zeros((4, 8)))


def test_plots_write_png(tmp_path):
    cm = np.eye(8, dtype=int) * 5
    cm[0, 1] = 2
    plots.confusion_matrix(cm, tmp_path / "cm.png")
    hist = {"train_loss": [2, 1.5, 1.0], "train_acc": [.2, .5, .7], "valid_loss": [2, 1.7, 1.8],
            "valid_acc": [.2, .4, .38], "best_epoch": 2}
    plots.training_curves(hist, tmp_path / "curves.png")
    for name in ("cm.png", "curves.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
