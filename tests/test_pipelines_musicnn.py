"""The grader's part 4 measurement (autograder/pipelines_musicnn.py), called in-process on a copy of the
reference package with small untrained checkpoints and random musicnn-shaped inputs (fast: no musicnn,
no subprocess). The pipelines give what the notebook's own code gives, measure a consistent student on
their own terms, and turn a bad checkpoint or bad student output into a one-line reason."""

import importlib
import shutil
import sys

import numpy as np
import pytest
import torch

from autograder import measure, parts, pipelines_musicnn
from autograder.course import ASSIGNMENT, SOLUTIONS
from genrekit import checkpoint, config, embeddings

# The registry entries these pipelines are written for (autograder/parts.py uses them once registered).
PROPOSED = {
    "part4_mlp": parts.Part(
        id="part4_mlp", title="4 MLP on musicnn embeddings", notebook="4_musicnn_fusion", cell="test_accuracy_mlp",
        checkpoint="checkpoints/part4_mlp.pt", pipeline="mlp",
        code={"model": "genre.fusion.EmbeddingMLP", "pool": "genre.fusion.pool_frames"},
        inputs=("audio", "musicnn")),
    "part4_fusion": parts.Part(
        id="part4_fusion", title="4 fusion: CNN + musicnn", notebook="4_musicnn_fusion", cell="test_accuracy_fusion",
        checkpoint="checkpoints/part4_fusion.pt", pipeline="fusion",
        code={"model": "genre.fusion.FusionNet", "features": "genre.features.log_mel",
              "segment": "genre.segments.segment_clips", "pool": "genre.fusion.pool_frames",
              "aggregate": "genre.segments.clip_probabilities"},
        inputs=("audio", "musicnn")),
}
PART_MLP = parts.BY_ID.get("part4_mlp", PROPOSED["part4_mlp"])
PART_FUSION = parts.BY_ID.get("part4_fusion", PROPOSED["part4_fusion"])
DIM = 2 * embeddings.DIM                   # 1506: rows pooled to [mean, max]
CNN_KWARGS = {"channels": (4, 4, 8, 8), "dropout": 0.3}
SEGMENTS = {"seconds": 4.0, "hop_seconds": 2.0}
MUSICNN_INFO = {**embeddings.describe(), "pooling": "mean+max"}   # the fusion adds "context"
CLIP_SECONDS = (5.0, 6.5, 8.0, 4.2, 9.0, 2.5)   # the last one is shorter than a segment


def _rows(samples: int) -> int:
    """Rows of embeddings.clip_frames for a clip of ``samples`` at 16 kHz."""
    frames = 1 + samples // 256
    return max(1, 1 + (frames - embeddings.PATCH_FRAMES) // embeddings.ROW_HOP_FRAMES)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(int(s * config.SAMPLE_RATE))).astype(np.float32) for s in CLIP_SECONDS]
    musicnn_rows = [rng.gamma(2.0, 1.0, size=(_rows(len(y)), embeddings.DIM)).astype(np.float32) for y in audio]
    return {"audio": audio, "musicnn": musicnn_rows}


class Submission:
    """A copy of the reference package in a folder, importable as ``genre`` while a test runs."""

    def __init__(self, folder):
        self.folder = folder

    def forget(self):
        """Drop the imported student modules (after editing a file, the next import reads it again)."""
        for name in [m for m in sys.modules if m == "genre" or m.startswith("genre.")]:
            del sys.modules[name]
        importlib.invalidate_caches()

    def edit(self, rel, old, new):
        text = (self.folder / rel).read_text()
        assert old in text, old
        (self.folder / rel).write_text(text.replace(old, new, 1))
        self.forget()

    def module(self, name):
        return importlib.import_module(f"genre.{name}")

    def path(self, part):
        return self.folder / part.checkpoint

    def edit_checkpoint(self, part, change):
        """Rewrite a saved checkpoint dict (e.g. drop or spoil normalisation statistics)."""
        ckpt = torch.load(self.path(part), weights_only=True)
        change(ckpt)
        torch.save(ckpt, self.path(part))

    def measure(self, part, inputs):
        fn = pipelines_musicnn.PIPELINES[part.pipeline]
        return fn(part, self.folder, self.path(part), inputs)


@pytest.fixture
def submission(tmp_path, monkeypatch, inputs):
    folder = tmp_path / "sub"
    shutil.copytree(SOLUTIONS / ASSIGNMENT, folder, ignore=shutil.ignore_patterns("checkpoints", "__pycache__", "*.ipynb"))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # edited files are always read again
    for name in [m for m in sys.modules if m == "genre" or m.startswith("genre.")]:
        monkeypatch.delitem(sys.modules, name)  # another test's reference package: put back afterwards
    monkeypatch.syspath_prepend(str(folder))
    sub = Submission(folder)
    fusion = sub.module("fusion")
    rng = np.random.default_rng(1)
    x = np.stack([fusion.pool_frames(rng.gamma(2.0, 1.0, size=(3, embeddings.DIM))) for _ in range(20)])
    torch.manual_seed(0)
    mlp = fusion.EmbeddingMLP(DIM).fit_normalization(x)
    checkpoint.save(sub.path(PART_MLP), mlp, model_kwargs={"in_dim": DIM}, dataset="synthetic:default", seed=0,
                    extra={"musicnn": MUSICNN_INFO})
    fnet = fusion.FusionNet(CNN_KWARGS, musicnn_dim=DIM, heads=2).fit_normalization(x)   # heads averaged, as shipped
    checkpoint.save(sub.path(PART_FUSION), fnet, model_kwargs={"cnn_kwargs": CNN_KWARGS, "musicnn_dim": DIM, "heads": 2},
                    dataset="synthetic:default", seed=0, extra={"segments": SEGMENTS, "musicnn": {**MUSICNN_INFO, "context": "clip"}})
    yield sub
    sub.forget()  # before monkeypatch restores the modules it removed


def _reason(sub, part, inputs) -> str:
    with pytest.raises(measure.MeasureError) as err:
        sub.measure(part, inputs)
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_entries_name_these_pipelines():
    for part in (PART_MLP, PART_FUSION):
        assert part.pipeline in pipelines_musicnn.PIPELINES and "musicnn" in part.inputs
        assert set(part.code) <= {"model", "pool", "features", "segment", "aggregate"}


def test_mlp_is_the_notebooks_computation(submission, inputs):
    probs, facts, ckpt = submission.measure(PART_MLP, inputs)
    n = len(inputs["audio"])
    assert np.shape(probs) == (n, config.NUM_CLASSES) and np.allclose(np.sum(probs, axis=1), 1)
    assert facts == {"musicnn_dim": DIM} and ckpt["extra"]["musicnn"]["layer"] == "max_pool"
    fusion = submission.module("fusion")
    model = checkpoint.load_model(submission.path(PART_MLP), cls=fusion.EmbeddingMLP)
    vectors = torch.from_numpy(np.stack([fusion.pool_frames(r) for r in inputs["musicnn"]]))
    with torch.no_grad():
        expected = torch.softmax(model(vectors), dim=1).numpy()
    assert np.allclose(probs, expected, atol=1e-5)


def _set_context(submission, context):
    """Record (or, with None, drop) the musicnn context in the saved fusion checkpoint."""
    def change(ckpt):
        ckpt["extra"]["musicnn"] = {k: v for k, v in ckpt["extra"]["musicnn"].items() if k != "context"}
        if context is not None:
            ckpt["extra"]["musicnn"]["context"] = context
    submission.edit_checkpoint(PART_FUSION, change)


@pytest.mark.parametrize("context, pooled_rows", [
    ("clip", lambda rows, index, seg, hop: [rows[c] for c in index]),               # all rows of the clip
    ("segment", lambda rows, index, seg, hop: embeddings.segment_frames(rows, index, seg, hop)),
    (None, lambda rows, index, seg, hop: embeddings.segment_frames(rows, index, seg, hop)),  # recorded none
])
def test_fusion_is_the_notebooks_computation(submission, inputs, context, pooled_rows):
    _set_context(submission, context)
    probs, facts, _ = submission.measure(PART_FUSION, inputs)
    n = len(inputs["audio"])
    features, segments, fusion = (submission.module(m) for m in ("features", "segments", "fusion"))
    seg_frames, hop_frames = config.seconds_to_frames(4.0), config.seconds_to_frames(2.0)
    segs, index = segments.segment_clips([features.log_mel(y) for y in inputs["audio"]], seg_frames, hop_frames)
    vectors = np.stack([fusion.pool_frames(b) for b in pooled_rows(inputs["musicnn"], index, seg_frames, hop_frames)])
    model = checkpoint.load_model(submission.path(PART_FUSION), cls=fusion.FusionNet)
    with torch.no_grad():
        logits = model(torch.from_numpy(segs[:, None]), torch.from_numpy(vectors)).numpy()
    expected = segments.clip_probabilities(logits, index, n)
    assert np.shape(probs) == (n, config.NUM_CLASSES) and np.allclose(probs, expected, atol=1e-5)
    assert facts == {"segment_seconds": 4.0, "hop_seconds": 2.0, "segments": len(segs), "musicnn_dim": DIM,
                     "musicnn_context": context or embeddings.DEFAULT_CONTEXT}
    assert np.bincount(index, minlength=n).tolist()[-1] == 1       # the 2.5 s clip: one looped segment


def test_the_two_contexts_differ(submission, inputs):
    """The recorded context is what the grader feeds: a clip's segments share one vector or have their own."""
    _set_context(submission, "clip")
    whole, _, _ = submission.measure(PART_FUSION, inputs)
    _set_context(submission, "segment")
    own, _, _ = submission.measure(PART_FUSION, inputs)
    assert not np.allclose(whole, own, atol=1e-4)


@pytest.mark.parametrize("context", ["song", "", 3])
def test_unknown_context_gets_one_line_reason(submission, inputs, context):
    _set_context(submission, context)
    assert "context" in _reason(submission, PART_FUSION, inputs)


@pytest.mark.parametrize("context", embeddings.CONTEXTS)
def test_fusion_uses_each_segments_own_rows(submission, inputs, context):
    """Changing only the musicnn rows of one clip changes that clip's probabilities and no other's."""
    _set_context(submission, context)
    base, _, _ = submission.measure(PART_FUSION, inputs)
    rows = [r.copy() for r in inputs["musicnn"]]
    rows[2] = rows[2] * 3 + 1
    changed, _, _ = submission.measure(PART_FUSION, {**inputs, "musicnn": rows})
    moved = np.abs(changed - base).max(axis=1) > 1e-6
    assert moved.tolist() == [i == 2 for i in range(len(rows))]


def test_a_consistent_student_is_measured_on_their_own_terms(submission, inputs):
    """Mean-only pooling costs the hidden pooling check, not the accuracy of a model trained with it."""
    submission.edit("genre/fusion.py", "    return np.concatenate([frames.mean(axis=0), frames.max(axis=0)]).astype(np.float32)",
                    "    return frames.mean(axis=0).astype(np.float32)")
    fusion = submission.module("fusion")
    x = np.random.default_rng(2).gamma(2.0, 1.0, size=(20, embeddings.DIM)).astype(np.float32)
    mlp = fusion.EmbeddingMLP(embeddings.DIM).fit_normalization(x)
    checkpoint.save(submission.path(PART_MLP), mlp, model_kwargs={"in_dim": embeddings.DIM}, extra={"musicnn": MUSICNN_INFO})
    probs, facts, _ = submission.measure(PART_MLP, inputs)
    assert np.shape(probs) == (len(inputs["audio"]), config.NUM_CLASSES) and facts["musicnn_dim"] == embeddings.DIM


def test_wrong_embedding_dimension_or_model(submission, inputs):
    fusion = submission.module("fusion")
    x = np.random.default_rng(3).gamma(2.0, 1.0, size=(20, 400)).astype(np.float32)   # penultimate (200) pooled
    checkpoint.save(submission.path(PART_MLP), fusion.EmbeddingMLP(400).fit_normalization(x), model_kwargs={"in_dim": 400})
    assert "400-dim" in _reason(submission, PART_MLP, inputs)
    fnet = fusion.FusionNet(CNN_KWARGS, musicnn_dim=400).fit_normalization(x)
    checkpoint.save(submission.path(PART_FUSION), fnet, model_kwargs={"cnn_kwargs": CNN_KWARGS, "musicnn_dim": 400},
                    extra={"segments": SEGMENTS})
    assert "400-dim" in _reason(submission, PART_FUSION, inputs)
    submission.edit_checkpoint(PART_FUSION, lambda c: c["extra"].update(musicnn={"model": "MTT_musicnn"}))
    assert "MTT_musicnn" in _reason(submission, PART_FUSION, inputs)


@pytest.mark.parametrize("part_id, prefix", [("part4_mlp", "norm."), ("part4_fusion", "emb_norm.")])
def test_bad_normalisation_statistics(submission, inputs, part_id, prefix):
    part = PART_MLP if part_id == "part4_mlp" else PART_FUSION

    def drop(c):
        for key in ("mean", "std"):
            del c["state_dict"][prefix + key]

    def spoil(c):
        c["state_dict"][prefix + "std"][3] = float("nan")

    def unfit(c):
        c["state_dict"][prefix + "mean"].zero_()
        c["state_dict"][prefix + "std"].fill_(1.0)

    for change, words in ((spoil, "not finite"), (unfit, "never fitted"), (drop, "no normalisation statistics")):
        submission.edit_checkpoint(part, change)
        assert words in _reason(submission, part, inputs), words


def test_fusion_without_segment_settings_or_cnn(submission, inputs):
    submission.edit_checkpoint(PART_FUSION, lambda c: c["extra"].pop("segments"))
    assert "no valid segment settings" in _reason(submission, PART_FUSION, inputs)
    submission.edit_checkpoint(PART_FUSION, lambda c: c["extra"].update(segments=SEGMENTS))
    submission.edit_checkpoint(PART_FUSION, lambda c: [c["state_dict"].pop(k) for k in list(c["state_dict"]) if k.startswith("cnn.")])
    assert "no CNN branch" in _reason(submission, PART_FUSION, inputs)


@pytest.mark.parametrize("new, words", [
    ("    return frames.max(axis=0)[:-1 if len(frames) % 2 else None].astype(np.float32)", "like the others"),
    ("    return np.full(3, np.nan, np.float32)", "NaN or inf"),
    ("    return frames.astype(np.float32)", "expected one vector"),
])
def test_bad_pooling_gets_one_line_reason(submission, inputs, new, words):
    submission.edit("genre/fusion.py", "    return np.concatenate([frames.mean(axis=0), frames.max(axis=0)]).astype(np.float32)", new)
    for part in (PART_MLP, PART_FUSION):
        assert words in _reason(submission, part, inputs)


def test_bad_segmentation_and_grader_inputs(submission, inputs):
    assert "musicnn embeddings for 5 clips" in _reason(submission, PART_MLP, {**inputs, "musicnn": inputs["musicnn"][:5]})
    assert "no musicnn embeddings" in _reason(submission, PART_FUSION, {"audio": inputs["audio"]})
    submission.edit("genre/segments.py", "    return np.concatenate(cut).astype(np.float32, copy=False), clip_index",
                    "    return np.concatenate(cut[1:]), clip_index[len(cut[0]):]")
    assert "gave no segment for 1 of 6 test clips" in _reason(submission, PART_FUSION, inputs)


def test_code_from_outside_the_submission_is_refused(submission, inputs, tmp_path):
    other = tmp_path / "elsewhere"
    shutil.copytree(submission.folder, other)
    with pytest.raises(measure.MeasureError, match="not from your submission"):
        pipelines_musicnn.pipeline_mlp(PART_MLP, other, other / PART_MLP.checkpoint, inputs)
