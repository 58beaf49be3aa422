"""How the grader measures part 4: the MLP on pooled musicnn embeddings, and the fusion model.

Both run in the measurement child (:mod:`autograder.measure`), in the submission folder, with the
student's own code; the musicnn frame embeddings of the test clips come from the grader
(``inputs["musicnn"]``: one (rows, 753) float32 array per test clip, in the order of
``inputs["audio"]``, computed with :func:`genrekit.embeddings.clip_frames` through the feature cache,
once per batch), never from student code:

- :func:`pipeline_mlp`: the student's ``pool_frames`` on each clip's rows -> the student's
  ``EmbeddingMLP`` from the checkpoint -> softmax.
- :func:`pipeline_fusion`: the student's ``log_mel`` -> the student's ``segment_clips`` at the
  checkpoint's segment length and hop -> the musicnn rows of each segment's context, as the checkpoint
  records it (``extra["musicnn"]["context"]``: all rows of its clip, or its own rows;
  :func:`genrekit.embeddings.context_frames`) -> the student's ``pool_frames`` per segment -> the
  student's ``FusionNet`` -> the student's ``clip_probabilities``.

Before the weights are loaded, the checkpoint's normalisation statistics and embedding size are
checked against the vectors the student's pooling makes from the grader's embeddings
(``part4.check_mlp_checkpoint`` / ``check_fusion_checkpoint``): a wrong musicnn model or layer, or
statistics that are missing, non-finite or never fitted, is a one-line reason, not a crash.
Same contract as :func:`autograder.measure.pipeline_segments`: returns (probabilities, facts, checkpoint);
a problem of the submission raises ``measure.MeasureError`` (one line).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np



def _quiet(fn, *args):
    """Call student code with whatever it prints thrown away (the child's stdout is not the result)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _musicnn_rows(inputs: dict) -> list[np.ndarray]:
    """The grader's musicnn frames, one (rows >= 1, d) array per test clip, checked against the audio."""
    rows = inputs.get("musicnn")
    if rows is None:
        raise measure.MeasureError("the grader gave no musicnn embeddings for this part (declare inputs=('audio', 'musicnn'))")
    if len(rows) != len(inputs["audio"]):
        raise measure.MeasureError(f"the grader gave musicnn embeddings for {len(rows)} clips, but {len(inputs['audio'])} "
                           f"test clips")
    out = [np.asarray(r, dtype=np.float32) for r in rows]
    bad = [i for i, r in enumerate(out) if r.ndim != 2 or len(r) < 1]
    if bad:
        raise measure.MeasureError(f"the grader's musicnn embedding of test clip {bad[0]} has shape {out[bad[0]].shape}")
    return out


def _pooled(code: dict, submission: Path, blocks, what: str) -> np.ndarray:
    """The student's pool_frames on every block of rows -> (len(blocks), D) finite float32."""
    pool = measure.student(code["pool"], submission)
    vectors, size = [], None
    for i, block in enumerate(blocks):
        v = np.asarray(_quiet(pool, np.array(block, dtype=np.float32)), dtype=np.float32)
        if v.ndim != 1 or v.size < 1 or (size is not None and v.shape[0] != size):
            raise measure.MeasureError(f"{code['pool']} returned shape {v.shape} for {what} {i}, expected one vector "
                               f"({size or 'dim'},) like the others")
        if not np.all(np.isfinite(v)):
            raise measure.MeasureError(f"{code['pool']} returned NaN or inf for {what} {i}")
        size = v.shape[0]
        vectors.append(v)
    if not vectors:
        raise measure.MeasureError(f"no {what}s to pool")
    return np.stack(vectors)


def _check_checkpoint(check, ckpt: dict, dim: int, ckpt_path: Path) -> None:
    """part4's checkpoint check against the size of the student's pooled vectors; MeasureError (one line)."""
    try:
        check(ckpt, musicnn_dim=dim)
    except AssertionError as err:
        raise measure.MeasureError(f"{ckpt_path}: {str(err).splitlines()[0] if str(err) else 'unusable checkpoint'}") from None


def pipeline_mlp(part, submission: Path, ckpt_path: Path, inputs: dict):
    """Part 4 MLP: the student's pool_frames on each test clip's musicnn rows -> the student's
    EmbeddingMLP from the checkpoint -> softmax. Returns (probabilities (clips, classes), facts, checkpoint)."""
    import torch

    from autograder.checks import part4
    from genrekit import checkpoint, train
    rows = _musicnn_rows(inputs)
    ckpt = checkpoint.load(ckpt_path)  # one-line CheckpointError naming the file
    vectors = _pooled(part.code, submission, rows, "test clip")
    _check_checkpoint(part4.check_mlp_checkpoint, ckpt, vectors.shape[1], ckpt_path)
    ckpt, model = measure._model(part.code, submission, ckpt_path)
    logits = train.predict_logits(model, torch.from_numpy(vectors), batch_size=64)
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    return probs, {"musicnn_dim": int(vectors.shape[1])}, ckpt


def musicnn_context(ckpt: dict, ckpt_path: Path) -> str:
    """``embeddings.checkpoint_context`` of the fusion checkpoint; MeasureError (one line naming the file)."""
    from genrekit import embeddings
    try:
        return embeddings.checkpoint_context(ckpt)
    except ValueError as err:
        raise measure.MeasureError(f"{ckpt_path}: {err}") from None


def pipeline_fusion(part, submission: Path, ckpt_path: Path, inputs: dict):
    """Part 4 fusion: log-mel -> segments at the checkpoint's settings -> the musicnn rows of each
    segment's context (its clip's or its own, as the checkpoint records) pooled by the student's
    pool_frames -> the student's FusionNet -> the student's aggregation.
    Returns (probabilities (clips, classes), facts, checkpoint)."""
    import torch

    from autograder.checks import part4
    from genrekit import checkpoint, config, embeddings, train
    audio = inputs["audio"]
    rows = _musicnn_rows(inputs)
    ckpt = checkpoint.load(ckpt_path)
    seconds, hop = measure.segment_settings(ckpt, ckpt_path)
    context = musicnn_context(ckpt, ckpt_path)
    seg_frames, hop_frames = config.seconds_to_frames(seconds), config.seconds_to_frames(hop)
    feats = measure._features(part.code, submission, audio)
    segs, index = measure.segments(part.code, submission, feats, seg_frames, hop_frames, audio)
    blocks = embeddings.context_frames(rows, index, seg_frames, hop_frames, context)
    vectors = _pooled(part.code, submission, blocks, "segment")
    _check_checkpoint(part4.check_fusion_checkpoint, ckpt, vectors.shape[1], ckpt_path)
    ckpt, model = measure._model(part.code, submission, ckpt_path)
    logits = train.predict_logits(model, torch.from_numpy(segs[:, None]), torch.from_numpy(vectors), batch_size=64)
    aggregate = measure.student(part.code["aggregate"], submission)
    probs = _quiet(aggregate, logits, index, len(audio))
    return probs, {"segment_seconds": seconds, "hop_seconds": hop, "segments": int(len(segs)),
                   "musicnn_dim": int(vectors.shape[1]), "musicnn_context": context}, ckpt


PIPELINES = {"mlp": pipeline_mlp, "fusion": pipeline_fusion}

# imported last: autograder.measure imports this module to register PIPELINES, and the functions above
# read measure's attributes when they are called
from autograder import measure  # noqa: E402
