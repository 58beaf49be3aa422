"""The grader's part-5 pipelines (autograder/pipelines_finetune.py), called in-process on a copy of the
reference package, with small checkpoints saved here (random-init ResNet18 on heavily pooled input,
so it is fast) and a few short random clips as the test audio:

- the ResNet is measured exactly as the segment models of parts 2-3, after a check of its checkpoint
  against the student's class; the weights it started from are reported;
- a ResNet34 checkpoint where the code builds a ResNet18, a head of the wrong size, a start-weights
  record whose hash does not match its name: one-line reasons naming the file;
- the final model is the weighted sum of its members' probabilities, each measured by its own part's
  pipeline (a member measured already is not run again); bad member lists and weights: one line.
"""

import math
import shutil
import sys

import numpy as np
import pytest
import torch

from autograder import measure, parts
from autograder import pipelines_finetune as pf
from autograder.course import ASSIGNMENT, SOLUTIONS
from autograder.parts import Part
from genrekit import checkpoint, config

SEGMENTS = {"seconds": 1.0, "hop_seconds": 0.5}   # 31-frame segments: a few per clip
POOL = 4                                          # (96, 31) -> (24, 7): a fast ResNet18
SEGMENT_CODE = {"features": "genre.features.log_mel", "segment": "genre.segments.segment_clips",
                "aggregate": "genre.segments.clip_probabilities"}
RESNET = Part(id="part5_resnet", title="5 finetuned ResNet", notebook="5_finetune", cell="test_accuracy_resnet",
              checkpoint="checkpoints/part5_resnet.pt", pipeline="resnet",
              code={"model": "genre.finetune.ResNetClassifier", **SEGMENT_CODE})
FINAL = Part(id="part5_final", title="5 final model (late fusion)", notebook="5_finetune", cell="test_accuracy_final",
             checkpoint="checkpoints/part5_final.pt", pipeline="late_fusion", code={"model": "genre.final.LateFusion"})
MUSICNN_PART = Part(id="part4_fusion", title="4 musicnn fusion", notebook="4_musicnn", cell="test_accuracy_fusion",
                    checkpoint="checkpoints/part4_fusion.pt", pipeline="segments",
                    code={"model": "genre.fusion.FusionNet", **SEGMENT_CODE}, inputs=("audio", "musicnn"))


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    """A copy of the reference package, importable as ``genre`` for this module's tests only."""
    folder = tmp_path_factory.mktemp("p5") / "sub"
    shutil.copytree(SOLUTIONS / ASSIGNMENT, folder, ignore=shutil.ignore_patterns("checkpoints", "__pycache__", "*.ipynb"))
    (folder / "checkpoints").mkdir()
    before = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "genre" or k.startswith("genre.")}
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    for k in [k for k in sys.modules if k == "genre" or k.startswith("genre.")]:
        del sys.modules[k]
    sys.modules.update(before)


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """The part-5 entries and pipelines, as the registry declares them (whether or not it does yet)."""
    for part in (RESNET, FINAL, parts.get("part3_augmented")):
        monkeypatch.setitem(parts.BY_ID, part.id, part)
    monkeypatch.setitem(measure.PIPELINES, "resnet", pf.pipeline_resnet)
    monkeypatch.setitem(measure.PIPELINES, "late_fusion", pf.pipeline_late_fusion)
    pf._RESULTS.clear()
    yield
    pf._RESULTS.clear()


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    lengths = (1.2, 2.0, 2.6, 1.6)  # seconds; the first clip gives a single segment
    return {"audio": [(0.1 * rng.standard_normal(int(s * config.SAMPLE_RATE))).astype(np.float32) for s in lengths]}


def save_resnet(folder, arch="resnet18", n_classes=config.NUM_CLASSES, kwargs=None, start_weights=None, seed=0):
    from genre.finetune import ResNetClassifier
    torch.manual_seed(seed)
    model = ResNetClassifier(arch, n_classes=n_classes, input_pool=POOL)
    model.scaler.fit(torch.linspace(-80, 0, 1000))
    path = folder / RESNET.checkpoint
    checkpoint.save(path, model, model_kwargs=kwargs or {"arch": arch, "n_classes": n_classes, "input_pool": POOL},
                    dataset="synthetic:default", seed=seed,
                    extra={"segments": SEGMENTS, "start_weights": start_weights or model.start_weights})
    return path


def save_cnn(folder):
    from genre.models import BaselineCNN
    torch.manual_seed(1)
    path = folder / "checkpoints" / "part3_augmented.pt"
    checkpoint.save(path, BaselineCNN(), dataset="synthetic:default", seed=0,
                    extra={"segments": SEGMENTS, "augmentation": {"recipe": {"copies": 0}, "sources": ["metal/metal.00001.wav"]}})
    return path


def save_final(folder, members, buffer=None):
    """The final checkpoint with ``members`` recorded as given (even invalid ones); ``buffer`` sets the
    model's own weights (by default the recorded ones when they are valid, else equal weights)."""
    from genre.final import LateFusion
    names = [m for m in members if m in parts.BY_ID and m != FINAL.id] or [RESNET.id]
    model = LateFusion(names)
    try:
        model.set_weights(buffer or members)
    except ValueError:
        pass
    path = folder / FINAL.checkpoint
    checkpoint.save(path, model, model_kwargs={"members": names}, dataset="synthetic:default", seed=0,
                    extra={"late_fusion": {"members": members}})
    return path


def reason(call) -> str:
    with pytest.raises(measure.MeasureError) as err:
        call()
    text = str(err.value)
    assert "\n" not in text and len(text) <= 300, text
    return text


# --- the ResNet ----------------------------------------------------------------------------------------

def test_the_resnet_is_measured_like_a_segment_model(submission, inputs):
    path = save_resnet(submission)
    probs, info, ckpt = pf.pipeline_resnet(RESNET, submission, path, inputs)
    same, _, _ = measure.pipeline_segments(RESNET, submission, path, inputs)  # ResNetClassifier needs no pipeline of its own
    assert np.shape(probs) == (4, config.NUM_CLASSES) and np.allclose(np.sum(probs, axis=1), 1)
    assert np.array_equal(probs, same)
    assert info["start_weights"] == "random" and info["arch"] == "resnet18"
    assert info["segment_seconds"] == 1.0 and info["segments"] >= 4 + 3
    assert ckpt["extra"]["segments"] == SEGMENTS


def test_imagenet_start_is_reported(submission, inputs):
    record = {"name": "resnet18-f37072fd.pth", "sha256": "f37072fd" + "0" * 56}
    path = save_resnet(submission, start_weights=record)
    _, info, _ = pf.pipeline_resnet(RESNET, submission, path, inputs)
    assert (info["start_weights"], info["weights_file"]) == ("imagenet", "resnet18-f37072fd.pth")


@pytest.mark.parametrize("case, expected", [
    ("resnet34 weights, resnet18 code", ["a resnet34 (3, 4, 6, 3 blocks per stage)", "builds a resnet18"]),
    ("head of 10", ["the head has 10 outputs, expected 8"]),
    ("wrong hash", ["resnet18-f37072fd.pth", "does not start with f37072fd"]),
    ("no checkpoint", ["checkpoint not found"]),
])
def test_a_checkpoint_that_does_not_fit_gets_one_line(submission, inputs, case, expected):
    path = submission / RESNET.checkpoint
    path.unlink(missing_ok=True)
    if case.startswith("resnet34"):
        save_resnet(submission, arch="resnet34", kwargs={"arch": "resnet18", "input_pool": POOL})
    elif case == "head of 10":
        save_resnet(submission, n_classes=10)
    elif case == "wrong hash":
        save_resnet(submission, start_weights={"name": "resnet18-f37072fd.pth", "sha256": "0123abcd" * 8})
    text = reason(lambda: pf.pipeline_resnet(RESNET, submission, path, inputs))
    assert "part5_resnet.pt" in text and all(e in text for e in expected), text


# --- the final model -----------------------------------------------------------------------------------

def test_the_final_model_is_the_weighted_sum_of_its_members(submission, inputs, monkeypatch):
    resnet_path, cnn_path = save_resnet(submission), save_cnn(submission)
    final_path = save_final(submission, {RESNET.id: 0.25, "part3_augmented": 0.75})
    calls = []
    segments = measure.pipeline_segments
    monkeypatch.setattr(measure, "pipeline_segments", lambda *a: calls.append(a[0].id) or segments(*a))
    p_resnet, _, _ = pf.pipeline_resnet(RESNET, submission, resnet_path, inputs)     # measured as its own part first
    p_cnn, _, _ = segments(parts.get("part3_augmented"), submission, cnn_path, inputs)
    probs, info, ckpt = pf.pipeline_late_fusion(FINAL, submission, final_path, inputs)
    assert np.allclose(probs, 0.25 * p_resnet + 0.75 * p_cnn, atol=1e-6)
    assert calls == [RESNET.id], "the ResNet measured already is not run again for the final model"
    assert info["members"] == {RESNET.id: 0.25, "part3_augmented": 0.75}
    assert info["start_weights"] == "random" and info["member_info"]["part3_augmented"]["segment_seconds"] == 1.0
    assert ckpt["model"]["class"] == "genre.final.LateFusion"


def test_members_measured_in_the_same_run_are_reused(submission, inputs, monkeypatch):
    """The measurement child measures every part before the final model: the final model sums the
    probabilities its members got as parts (run_child's ``inputs["measured"]``), without running them again."""
    save_resnet(submission), save_cnn(submission)
    final_path = save_final(submission, {RESNET.id: 0.25, "part3_augmented": 0.75})
    n = len(inputs["audio"])
    rng = np.random.default_rng(0)
    measured = {RESNET.id: (rng.dirichlet(np.ones(8), n).astype(np.float32), {"start_weights": "random"}),
                "part3_augmented": (rng.dirichlet(np.ones(8), n).astype(np.float32), {"segment_seconds": 1.0})}
    monkeypatch.setitem(measure.PIPELINES, "segments", lambda *a: pytest.fail("part 3 measured again"))
    monkeypatch.setitem(measure.PIPELINES, "resnet", lambda *a: pytest.fail("the ResNet measured again"))
    probs, info, _ = pf.pipeline_late_fusion(FINAL, submission, final_path, {**inputs, "measured": measured})
    assert np.allclose(probs, 0.25 * measured[RESNET.id][0] + 0.75 * measured["part3_augmented"][0], atol=1e-6)
    assert info["start_weights"] == "random"


def test_a_member_is_measured_again_when_its_checkpoint_changed(submission, inputs):
    resnet_path = save_resnet(submission, seed=0)
    save_cnn(submission)
    final_path = save_final(submission, {RESNET.id: 1.0, "part3_augmented": 0.0})
    first, _, _ = pf.pipeline_late_fusion(FINAL, submission, final_path, inputs)
    save_resnet(submission, seed=5)
    again, _, _ = pf.pipeline_resnet(RESNET, submission, resnet_path, inputs)
    assert not np.allclose(first, again)


@pytest.mark.parametrize("members, expected", [
    ({}, "no late-fusion members"),
    ({RESNET.id: 0.5, "part3_augmented": 0.6}, "the member weights sum to 1.1, expected 1"),
    ({RESNET.id: 1.5, "part3_augmented": -0.5}, "the weight of member 'part3_augmented' is -0.5"),
    ({RESNET.id: math.nan, "part3_augmented": 1.0}, "expected a finite number >= 0"),
    ({RESNET.id: "half", "part3_augmented": 0.5}, "is not a number ('half')"),
    ({"part9_magic": 1.0}, "member 'part9_magic' is not a part of this homework"),
    ({"part5_final": 0.5, RESNET.id: 0.5}, "cannot be a member of itself"),
])
def test_bad_members_or_weights_get_one_line(submission, inputs, members, expected):
    save_resnet(submission)
    save_cnn(submission)
    path = save_final(submission, members)
    text = reason(lambda: pf.pipeline_late_fusion(FINAL, submission, path, inputs))
    assert "part5_final.pt" in text and expected in text, text


def test_the_models_weights_must_agree_with_the_record(submission, inputs):
    save_resnet(submission)
    save_cnn(submission)
    path = save_final(submission, {RESNET.id: 0.25, "part3_augmented": 0.75},
                      buffer={RESNET.id: 0.5, "part3_augmented": 0.5})
    text = reason(lambda: pf.pipeline_late_fusion(FINAL, submission, path, inputs))
    assert "differ from extra['late_fusion']['members']" in text, text


def test_a_broken_member_names_the_member(submission, inputs):
    save_resnet(submission)
    (submission / "checkpoints" / "part3_augmented.pt").unlink(missing_ok=True)
    path = save_final(submission, {RESNET.id: 0.5, "part3_augmented": 0.5})
    text = reason(lambda: pf.pipeline_late_fusion(FINAL, submission, path, inputs))
    assert text.startswith("member part3_augmented:") and "part3_augmented.pt: checkpoint not found" in text, text


def test_a_member_needing_musicnn_needs_it_in_the_inputs(submission, inputs, monkeypatch):
    monkeypatch.setitem(parts.BY_ID, MUSICNN_PART.id, MUSICNN_PART)
    save_resnet(submission)
    path = save_final(submission, {RESNET.id: 0.5, MUSICNN_PART.id: 0.5})
    text = reason(lambda: pf.pipeline_late_fusion(FINAL, submission, path, inputs))
    assert "member part4_fusion needs the inputs musicnn" in text, text
