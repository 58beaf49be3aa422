"""The grader's accuracy measurement (autograder/measure.py): label-blind, order-blind, with one-line
reasons for bad student output, on a tiny dataset and untrained checkpoints (fast)."""

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from autograder import measure
from autograder.course import ASSIGNMENT, SOLUTIONS
from autograder.parts import PARTS

PART_IDS = [p.id for p in PARTS]
SAVE = ("import torch; from genre.models import BaselineCNN; from genrekit import checkpoint;"
        "torch.manual_seed(0); m = BaselineCNN();"
        "checkpoint.save('checkpoints/part1_baseline.pt', m, dataset='synthetic:default', seed=0);"
        "checkpoint.save('checkpoints/part2_segments.pt', m, dataset='synthetic:default', seed=0,"
        " extra={'segments': {'seconds': 1.0, 'hop_seconds': 0.5}});"
        "checkpoint.save('checkpoints/part3_augmented.pt', m, dataset='synthetic:default', seed=0,"
        " extra={'segments': {'seconds': 1.0, 'hop_seconds': 0.5},"
        " 'augmentation': {'recipe': {'copies': 1}, 'sources': ['metal/metal.00001.wav']}});"
        # part 4: an MLP and a fusion with statistics fitted on made-up pooled musicnn rows
        "import numpy as np; from genrekit import embeddings; from genre import fusion, finetune, final;"
        "x = np.random.default_rng(0).gamma(2.0, 1.0, size=(20, 2 * embeddings.DIM)).astype('float32');"
        "info = {**embeddings.describe(), 'pooling': 'mean+max'};"
        "checkpoint.save('checkpoints/part4_mlp.pt', fusion.EmbeddingMLP(x.shape[1]).fit_normalization(x),"
        " model_kwargs={'in_dim': x.shape[1]}, dataset='synthetic:default', seed=0, extra={'musicnn': info});"
        "checkpoint.save('checkpoints/part4_fusion.pt', fusion.FusionNet({}, musicnn_dim=x.shape[1]).fit_normalization(x),"
        " model_kwargs={'cnn_kwargs': {}, 'musicnn_dim': x.shape[1]}, dataset='synthetic:default', seed=0,"
        " extra={'segments': {'seconds': 1.0, 'hop_seconds': 0.5}, 'musicnn': info});"
        # part 5: a small-input ResNet18 from random weights, and its late fusion with the part 4 fusion
        "r = finetune.ResNetClassifier('resnet18', input_pool=4); r.scaler.fit(torch.linspace(-80, 0, 100));"
        "checkpoint.save('checkpoints/part5_resnet.pt', r, model_kwargs={'arch': 'resnet18', 'n_classes': 8, 'input_pool': 4},"
        " dataset='synthetic:default', seed=0, extra={'segments': {'seconds': 1.0, 'hop_seconds': 0.5},"
        " 'start_weights': r.start_weights});"
        "w = {'part5_resnet': 0.6, 'part4_fusion': 0.4};"
        "checkpoint.save('checkpoints/part5_final.pt', final.LateFusion(list(w)).set_weights(w),"
        " model_kwargs={'members': list(w)}, dataset='synthetic:default', seed=0, extra={'late_fusion': {'members': w}})")


@pytest.fixture(scope="module")
def tests(tiny_synth, tmp_path_factory):
    t = measure.test_set(str(tiny_synth), workdir=tmp_path_factory.mktemp("request"), seed=1)
    yield t
    shutil.rmtree(t.request_dir, ignore_errors=True)


@pytest.fixture
def submission(tmp_path):
    folder = tmp_path / "sub"
    shutil.copytree(SOLUTIONS / ASSIGNMENT, folder, ignore=shutil.ignore_patterns("checkpoints", "__pycache__", "*.ipynb"))
    res = subprocess.run([sys.executable, "-c", SAVE], cwd=folder, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(folder)})
    assert res.returncode == 0, res.stderr[-400:]
    return folder


def _edit(folder, rel, old, new):
    text = (folder / rel).read_text()
    assert old in text
    (folder / rel).write_text(text.replace(old, new, 1))


def test_reference_code_is_measured_for_every_part(submission, tests):
    out = measure.measure(submission, PART_IDS, tests, timeout=120)
    for part in PART_IDS:
        assert "error" not in out[part], out[part]
        assert out[part]["n"] == tests.n == 16 and 0 <= out[part]["accuracy"] <= 1
    assert out["part2_segments"]["segment_seconds"] == 1.0 and out["part2_segments"]["segments"] >= 8


def test_the_test_order_is_secret(tiny_synth, tmp_path):
    """Clips reach the child shuffled: the split list's genre order says nothing about the labels."""
    orders = {tuple(measure.test_set(str(tiny_synth), workdir=tmp_path, seed=s).labels) for s in range(4)}
    assert len(orders) > 1 and tuple(sorted(next(iter(orders)))) not in orders


def test_the_students_code_sees_audio_only(submission, tests, tmp_path):
    """A front end that hunts for labels (call stack, objects in memory, environment, arguments, working
    folder, open files) finds nothing: no path, clip id, genre or label reaches its process."""
    found = tmp_path / "found.json"
    spy = f'''
def _hunt():
    import gc, inspect, json, os, sys
    from genrekit import config
    words = [g for g in config.GENRES] + [".wav", "label", "splits"]
    hits = []
    def look(where, value):
        text = repr(value)[:2000]
        if any(w in text for w in words):
            hits.append(where + ": " + text[:120])
    for frame in inspect.stack():
        for name, value in frame.frame.f_locals.items():
            if isinstance(value, dict) and "__name__" in value:
                continue  # a module's namespace (its docstring and code)
            if name.startswith("__") or callable(value) or inspect.ismodule(value) or name in (
                    "words", "hits", "look", "config", "frame", "name", "value"):
                continue  # code and docs, not data
            look("frame " + frame.function + "." + name, value)
    for obj in gc.get_objects():
        if type(obj).__name__ in ("Clip", "Dataset", "TestSet"):
            hits.append("object " + type(obj).__name__)
    look("environ", {{k: v for k, v in os.environ.items() if k.startswith(("GENRE", "GENREKIT"))}})
    look("argv", sys.argv)
    look("cwd listing", os.listdir("."))
    for fd in os.listdir("/proc/self/fd"):
        try:
            look("fd " + fd, os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass
    open({str(found)!r}, "w").write(json.dumps(hits))
'''
    _edit(submission, "genre/features.py", "def log_mel(", spy + "\n\ndef log_mel(")
    _edit(submission, "genre/features.py", "    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    _hunt()\n")
    out = measure.measure(submission, ["part1_baseline"], tests, timeout=120)
    assert "error" not in out["part1_baseline"], out
    hits = json.loads(found.read_text())
    assert hits == [], hits


def test_printing_does_not_disturb_the_result(submission, tests):
    _edit(submission, "genre/features.py", "    ### BEGIN SOLUTION\n",
          "    ### BEGIN SOLUTION\n    print('PK\\x03\\x04 noise', flush=True)\n    import os; os.write(1, b'raw bytes on fd 1')\n")
    out = measure.measure(submission, PART_IDS, tests, timeout=120)
    assert all("accuracy" in out[p] for p in PART_IDS), out


@pytest.mark.parametrize("old, new, part, message", [
    ("    return sums / counts[:, None]", "    return (sums / counts[:, None])[:-1]", "part2_segments",
     "returned shape (15, 8), expected (16, 8)"),
    ("    return sums / counts[:, None]", "    return sums * np.nan", "part2_segments", "returned NaN or inf"),
    ("    return np.concatenate(cut).astype(np.float32, copy=False), clip_index",
     "    return np.concatenate(cut)[:, :, :-1], clip_index", "part2_segments", "expected (segments, 96,"),
    ("    return np.concatenate(cut).astype(np.float32, copy=False), clip_index",
     "    return np.concatenate(cut[1:]), clip_index[len(cut[0]):]", "part2_segments", "gave no segment for 1 of 16 test clips"),
    ("    mel_power = librosa", "    return np.zeros((12, 3), np.float32)\n    mel_power = librosa", "part1_baseline",
     "returned shape (12, 3) for test clip 0, expected (96, frames)"),
])
def test_bad_student_output_gets_one_line_reason(submission, tests, old, new, part, message):
    rel = "genre/segments.py" if part == "part2_segments" else "genre/features.py"
    _edit(submission, rel, old, new)
    out = measure.measure(submission, PART_IDS, tests, timeout=120)
    assert message in out[part]["error"] and "\n" not in out[part]["error"], out[part]
    if part == "part2_segments":
        assert "accuracy" in out["part1_baseline"], "one part's failure leaves the others measured"


def test_checkpoint_without_segment_settings(submission, tests):
    import torch
    path = submission / "checkpoints" / "part2_segments.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["extra"] = {}
    torch.save(ckpt, path)
    out = measure.measure(submission, ["part2_segments"], tests, timeout=120)
    assert "no valid segment settings" in out["part2_segments"]["error"]


def test_a_crash_or_a_timeout_is_reported_for_every_part(submission, tests):
    _edit(submission, "genre/features.py", "import librosa", "import os\nos._exit(3)\nimport librosa")
    out = measure.measure(submission, PART_IDS, tests, timeout=120)
    assert all("crashed" in out[p]["error"] or "error" in out[p] for p in PART_IDS)
    _edit(submission, "genre/features.py", "os._exit(3)", "import time; time.sleep(60)")
    out = measure.measure(submission, PART_IDS, tests, timeout=5)
    assert all("longer than 5 s" in out[p]["error"] for p in PART_IDS)


def test_training_on_held_out_clips_is_caught(submission, tests):
    """Part 3's provenance is audited by the grader with the ids only it holds."""
    import torch
    path = submission / "checkpoints" / "part3_augmented.pt"
    ckpt = torch.load(path, weights_only=True)
    train_id = next(iter(sorted(tests.held_out_ids)))
    assert "part3_augmented" in PART_IDS
    ckpt["extra"]["augmentation"]["sources"] = ["jazz/jazz.99999.wav", train_id]
    torch.save(ckpt, path)
    out = measure.measure(submission, ["part3_augmented"], tests, timeout=120)
    assert "trained on 1 validation or test clips" in out["part3_augmented"]["error"]
    ckpt["extra"]["augmentation"] = {"recipe": {}}
    torch.save(ckpt, path)
    out = measure.measure(submission, ["part3_augmented"], tests, timeout=120)
    assert "does not record the source clip" in out["part3_augmented"]["error"]


def test_every_part_is_measured_inside_the_sandbox(submission, tests, tmp_path):
    """The sandbox gets the grader's modules every pipeline needs (compiled, without source): the
    reference code measures every declared part there as it does outside."""
    from autograder import sandbox as sandboxing
    box = sandboxing.Sandbox(tmp_path / "private")
    slot = box.acquire()
    try:
        inside = measure.measure(submission, PART_IDS, tests, timeout=300,
                                 runner=box.runner([], slot=slot, readable=[submission]))
    finally:
        box.release(slot)
    for part in PART_IDS:
        assert "error" not in inside[part], inside[part]
        assert inside[part]["n"] == tests.n and 0 <= inside[part]["accuracy"] <= 1


PART1_CHECKS = ["part1.check_log_mel_shape", "part1.check_log_mel_values", "part1.check_conv_block",
                "part1.check_baseline_forward", "part1.check_baseline_embed"]


def test_probes_run_on_the_package_and_verdicts_in_the_grader(submission, tests):
    """The reference passes every check re-run by the grader; a wrong log_mel whose package rebinds the
    hidden check in memory (which fools the check in a notebook's kernel) fails the grader's verdict."""
    out = measure.measure(submission, [], tests, timeout=120, checks=PART1_CHECKS)
    assert out["checks"] == {name: None for name in PART1_CHECKS}
    with open(submission / "genre" / "features.py", "a") as f:
        f.write("\n_right = log_mel\n"
                "def log_mel(y, sr=config.SAMPLE_RATE):\n    return _right(y, sr) - 1.0\n"
                "from autograder.checks import part1 as _p1\n"
                "_p1.check_log_mel_values = _p1.check_log_mel_shape = lambda *a, **k: None\n")
    verdicts = measure.measure(submission, [], tests, timeout=120, checks=PART1_CHECKS)["checks"]
    assert verdicts["part1.check_log_mel_values"].startswith("log_mel differs from the expected log-mel by up to 1.00 dB")
    assert {n for n, v in verdicts.items() if v} == {"part1.check_log_mel_values"}


def test_a_probe_that_never_returns_costs_its_own_checks(submission, tests, monkeypatch):
    """An endless loop in log_mel on one input length: the check that uses it fails on the probe's time
    limit, the others are judged, and the accuracy measured after the probes is still measured."""
    monkeypatch.setattr(measure, "PROBE_SECONDS", 3)
    _edit(submission, "genre/features.py", '    """Log-mel spectrogram of a mono waveform',
          '    while len(y) == 7_777:\n        __import__("time").sleep(0.05)\n    """Log-mel spectrogram of a mono waveform')
    out = measure.measure(submission, ["part1_baseline"], tests, timeout=120, checks=PART1_CHECKS)
    assert out["checks"]["part1.check_log_mel_shape"] == "took longer than 3 s (an endless loop in your code?)"
    assert {n for n, v in out["checks"].items() if v} == {"part1.check_log_mel_shape"}
    assert "accuracy" in out["part1_baseline"], out["part1_baseline"]


def test_checks_are_not_judged_when_the_child_dies(submission, tests):
    _edit(submission, "genre/features.py", "from __future__ import annotations\n",
          "from __future__ import annotations\nimport os as _os\n_os._exit(3)\n")
    out = measure.measure(submission, ["part1_baseline"], tests, timeout=120, checks=PART1_CHECKS[:2])
    assert all(v.startswith("not checked: the grader's run of your code crashed") for v in out["checks"].values()), \
        out["checks"]
    assert "error" in out["part1_baseline"]


def test_a_probe_that_ends_the_child_costs_the_checks_not_the_accuracy(submission, tests):
    """log_mel ends the process on one input length (a probe's): the checks not yet probed fail, and the
    parts are measured again in a fresh child without the probes."""
    _edit(submission, "genre/features.py", '    """Log-mel spectrogram of a mono waveform',
          '    if len(y) == 7_777:\n        __import__("os")._exit(3)\n    """Log-mel spectrogram of a mono waveform')
    out = measure.measure(submission, ["part1_baseline"], tests, timeout=120, checks=PART1_CHECKS)
    assert out["checks"]["part1.check_log_mel_shape"].startswith("not checked: the grader's run of your code crashed")
    assert "accuracy" in out["part1_baseline"], out["part1_baseline"]


def test_an_import_that_never_ends_costs_one_probe_limit(submission, tests, monkeypatch):
    """A package that sleeps at import: the first probe's time limit stops it, every check fails, and
    the parts are not measured (their one-line reason says why) instead of running out the limit."""
    monkeypatch.setattr(measure, "PROBE_SECONDS", 3)
    _edit(submission, "genre/features.py", "from __future__ import annotations\n",
          "from __future__ import annotations\nimport time as _t\n_t.sleep(100000)\n")
    start = time.perf_counter()
    out = measure.measure(submission, ["part1_baseline"], tests, timeout=120, checks=PART1_CHECKS)
    assert time.perf_counter() - start < 60, "stopped at the probe's limit, not the measurement's"
    assert all(v for v in out["checks"].values()), out["checks"]
    assert out["part1_baseline"]["error"].endswith("took longer than 3 s (an endless loop at import?)"), out
