"""Hidden checks: the reference passes, plausible mistakes fail with a message, correct variants pass."""

import sys

import numpy as np
import pytest
import torch
from torch import nn

from autograder.checks import part1
from autograder.course import ASSIGNMENT, SOLUTIONS

sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))  # the reference package, for this test module only
from genre import features, finetune, models  # noqa: E402

sys.path.pop(0)


def test_reference_passes_every_check():
    part1.check_log_mel_shape(features.log_mel)
    part1.check_log_mel_values(features.log_mel)
    part1.check_conv_block(models.ConvBlock)
    part1.check_baseline_forward(models.BaselineCNN)
    part1.check_baseline_embed(models.BaselineCNN)


class SameBlock(nn.Module):
    """A correct ConvBlock written differently: padding='same', an nn.Sequential, an nn.ReLU module."""
    def __init__(self, i, o):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(i, o, 3, padding="same", bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                                  nn.MaxPool2d(2))

    def forward(self, x):
        return self.body(x)


def test_correct_variants_pass():
    part1.check_conv_block(SameBlock)

    def manual_db(y, sr):
        import librosa
        from genrekit import config
        p = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.N_FFT, hop_length=config.HOP_LENGTH,
                                           n_mels=config.N_MELS)
        db = 10 * np.log10(np.maximum(p, 1e-10) / p.max())
        return np.maximum(db, -80).astype(np.float32)
    part1.check_log_mel_values(manual_db)


def test_a_failure_shows_the_message_not_the_check():
    class NoRelu(SameBlock):
        def __init__(self, i, o):
            super().__init__(i, o)
            self.body[2] = nn.Identity()
    with pytest.raises(AssertionError) as err:
        part1.check_conv_block(NoRelu)
    assert "pool(relu(batch_norm(conv(x))))" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert [f.name for f in __import__("traceback").extract_tb(err.value.__traceback__)][-1] in ("run", "__call__")

    def crashing(y, sr):
        raise ValueError("boom\nsecond line")
    with pytest.raises(AssertionError, match="your code raised ValueError: boom$"):
        part1.check_log_mel_shape(crashing)


def test_records_carry_plain_data_only():
    from autograder.checks import common
    rec = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "n": 3, "x": 0.5, "ok": True, "s": "same",
           "none": None, "shape": (2, 3), "np": np.int64(7)}
    back = common.decode(common.encode(rec))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], rec["a"])
    assert (back["n"], back["x"], back["ok"], back["s"], back["none"], back["shape"], back["np"]) == \
        (3, 0.5, True, "same", None, [2, 3], 7)
    for bad in ({"a": np.array([object()], dtype=object)}, {"m": nn.Linear(2, 2)}, {"s": "x" * 600}, [1, 2], {1: 2}):
        with pytest.raises(TypeError):
            common.encode(bad)


def test_a_verdict_fails_on_a_record_it_cannot_use():
    """Garbage, a failed probe, a record without what the verdict reads or of the wrong type: each fails
    with one line, and never raises in the grader."""
    from autograder.checks import common
    name = "part1.check_log_mel_values"
    assert common.judge(name, b"not an npz") == "the check's probe returned no usable record"
    assert common.judge(name, None) == "the check's probe returned no usable record"
    assert common.judge(name, common.encode({common.ERROR: "your code raised ValueError: boom"})) == \
        "your code raised ValueError: boom"
    assert common.judge(name, common.encode({})).startswith("your code's output could not be checked (KeyError")
    assert common.judge(name, common.encode({"out": "a string"})) is not None
    # a forged record of the right shape but not the right values
    assert "differs from the expected log-mel" in common.judge(name, common.encode({"out": np.zeros((96, 63))}))
    ok = part1.check_log_mel_values.record(features.log_mel)
    assert common.judge(name, ok) is None


def test_every_check_called_by_a_hidden_cell_is_a_probe_and_a_verdict():
    """The grader re-checks the hidden checks it finds in the source notebooks; each has both halves and
    names the student objects it is given."""
    from autograder import grade
    from autograder.checks import common
    found = {n for names in grade.cell_checks().values() for n in names}
    assert {"part1.check_log_mel_shape", "part1.check_conv_block"} <= found
    for name in found:
        check = common.CHECKS[name]
        assert check.judge_record is not None and check.student, name
        assert all(p.startswith("genre.") for p in check.student), name


def test_verdicts_judged_in_threads_agree():
    """The grader judges the submissions it grades at once in threads of one process; verdicts that
    rebuild a seeded network from torch's global generator still agree with the probe (one at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    from autograder.checks import common
    names = ["part5.check_adapt_first_conv", "part5.check_batchnorm_frozen"]
    records = {n: common.get(n).record(getattr(finetune, common.get(n).student[0].rsplit(".", 1)[1])) for n in names}
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda n: common.judge(n, records[n]), names * 4))
    assert verdicts == [None] * 8, verdicts


def test_a_check_leaves_the_random_generators_as_it_found_them():
    """The instructor's notebooks run the hidden cells between training cells: a check that seeds
    torch (this one builds its networks from seeds 3, 5 and 11) must not change what is trained next."""
    import random

    def draws_after(*checks):
        torch.manual_seed(123), np.random.seed(123), random.seed(123)
        for check, arg in checks:
            check(arg)
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()

    assert draws_after((part1.check_baseline_forward, models.BaselineCNN),
                       (part1.check_conv_block, models.ConvBlock)) == draws_after()
