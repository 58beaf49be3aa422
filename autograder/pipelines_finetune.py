"""The grader's measurement pipelines of part 5: the finetuned ResNet and the final (late-fusion) model.

Both run in the measurement child (:mod:`autograder.measure`), with the student's own code, on the
test clips' audio only, and have the signature of :data:`autograder.measure.PIPELINES`:
``pipeline(part, submission, ckpt_path, inputs) -> (clip probabilities, info, checkpoint dict)``.

- :func:`pipeline_resnet`: first checks the checkpoint against the student's model class with
  :func:`autograder.checks.part5.verify_checkpoint` (a ResNet34 checkpoint where the code builds a
  ResNet18, a head of the wrong size, a start-weights record whose hash does not match its name: one
  line naming the file and what differs), then measures it exactly as parts 2 and 3 are measured
  (:func:`autograder.measure.pipeline_segments`: ``ResNetClassifier`` takes the same (B, 1, 96, T)
  log-mel segments as ``BaselineCNN``). ``info["start_weights"]`` says which weights the finetuning
  started from (``"random"``, ``"imagenet"``, ``"other"`` or ``"unknown"``): the grader picks the
  thresholds of that entry.
- :func:`pipeline_late_fusion`: the final model's checkpoint records
  ``extra["late_fusion"]["members"] = {part id: weight}``; every member is a registered part other than
  the final one, measured with its own pipeline on its own checkpoint; the result is the weighted sum.

Within one child, a member measured already (the ResNet part is usually measured just before the
final model) is not run again: results are kept per part, checkpoint file and test set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

# part id -> (audio list the result was computed on, checkpoint file, modification time, result):
# one child process measures one submission on one test set, so a member measured once is reused.
_RESULTS: dict = {}


def _measure():
    """autograder.measure, imported when first needed (it may import this module to register us)."""
    from autograder import measure
    return measure


def _ckpt_key(ckpt_path: Path) -> tuple[str, int]:
    path = Path(ckpt_path)
    return str(path.resolve()), (path.stat().st_mtime_ns if path.is_file() else -1)


def _remember(part, ckpt_path: Path, inputs: dict, result) -> None:
    _RESULTS[part.id] = (inputs["audio"], _ckpt_key(ckpt_path), result)


def _recall(part, ckpt_path: Path, inputs: dict):
    hit = _RESULTS.get(part.id)
    if hit and hit[0] is inputs["audio"] and hit[1] == _ckpt_key(ckpt_path):
        return hit[2]
    return None


def pipeline_resnet(part, submission: Path, ckpt_path: Path, inputs: dict):
    """Part 5 ResNet: verify the checkpoint against the student's class, then measure it on segments.

    ``part.code`` as for parts 2-3 (``model``, ``features``, ``segment``, ``aggregate``); the model is
    the student's ``genre.finetune.ResNetClassifier``. Returns ``(probs, info, ckpt)`` with ``info``
    holding the segment settings and ``start_weights``, ``arch``, ``weights_file``.
    Raises MeasureError (one line naming the file) when the checkpoint does not fit the code.
    """
    from autograder.checks import part5
    from genrekit import checkpoint
    measure = _measure()
    cached = _recall(part, ckpt_path, inputs)
    if cached is not None:
        return cached
    model_cls = measure.student(part.code["model"], submission)
    try:
        facts = part5.verify_checkpoint(ckpt_path, model_cls)
    except checkpoint.CheckpointError as err:
        raise measure.MeasureError(str(err).splitlines()[0]) from None
    probs, info, ckpt = measure.pipeline_segments(part, submission, ckpt_path, inputs)
    info = {**info, "start_weights": facts["start"], "arch": facts["arch"], "weights_file": facts["weights_file"]}
    result = (probs, info, ckpt)
    _remember(part, ckpt_path, inputs, result)
    return result


def _members(ckpt_path: Path, ckpt: dict, final_id: str) -> dict[str, float]:
    """{part id: weight} from the final checkpoint, or MeasureError naming the file and the problem."""
    from autograder import parts
    measure = _measure()
    record = ((ckpt.get("extra") or {}).get("late_fusion") or {}).get("members")
    if not isinstance(record, dict) or not record:
        raise measure.MeasureError(f"{ckpt_path}: no late-fusion members (save it with "
                                   f"extra={{'late_fusion': {{'members': {{part id: weight, ...}}}}}})")
    members = {}
    for name, w in record.items():
        if name == final_id:
            raise measure.MeasureError(f"{ckpt_path}: the final model cannot be a member of itself ({name})")
        if name not in parts.BY_ID:
            raise measure.MeasureError(f"{ckpt_path}: member '{name}' is not a part of this homework "
                                       f"(have {', '.join(p for p in parts.BY_ID if p != final_id)})")
        if parts.get(name).pipeline == "late_fusion":
            raise measure.MeasureError(f"{ckpt_path}: member '{name}' is itself a late fusion")
        try:
            members[name] = float(w)
        except (TypeError, ValueError):
            raise measure.MeasureError(f"{ckpt_path}: the weight of member '{name}' is not a number ({w!r})") from None
        if not math.isfinite(members[name]) or members[name] < 0:
            raise measure.MeasureError(f"{ckpt_path}: the weight of member '{name}' is {w!r}, expected a finite "
                                       f"number >= 0")
    total = sum(members.values())
    if abs(total - 1.0) > 1e-4:
        raise measure.MeasureError(f"{ckpt_path}: the member weights sum to {total:.6g}, expected 1")
    return members


def _stored_weights_agree(part, submission: Path, ckpt_path: Path, members: dict) -> None:
    """When the part names a model class (``genre.final.LateFusion``), the checkpoint must load into it
    and its ``weights`` buffer must agree with the recorded members."""
    measure = _measure()
    if "model" not in part.code:
        return
    _, model = measure._model(part.code, submission, ckpt_path)
    names, buffer = getattr(model, "members", None), getattr(model, "weights", None)
    if names is None or buffer is None:
        return
    stored = dict(zip([str(n) for n in names], np.asarray(buffer.detach().cpu(), dtype=np.float64).ravel()))
    if set(stored) != set(members) or any(abs(stored[m] - members[m]) > 1e-4 for m in members):
        shown = ", ".join(f"{m} {w:.3g}" for m, w in stored.items())
        raise measure.MeasureError(f"{ckpt_path}: the model's weights ({shown}) differ from "
                                   f"extra['late_fusion']['members'] ({', '.join(f'{m} {w:.3g}' for m, w in members.items())})")


def pipeline_late_fusion(part, submission: Path, ckpt_path: Path, inputs: dict):
    """The final model: the weighted sum of its members' clip probabilities.

    Reads ``extra["late_fusion"]["members"]`` ({part id: weight}) from ``ckpt_path``; every member must
    be a registered part other than ``part`` (and not itself a late fusion), the weights finite, >= 0
    and summing to 1. Each member is measured by its own pipeline on its own checkpoint in the
    submission (with the inputs it declares: a member needing musicnn frames needs them in ``inputs``),
    unless the same run measured it already as a part of its own (``inputs["measured"]``).
    Returns ``(probs, info, ckpt)``: ``info["members"]`` the weights, ``info["member_info"]`` what each
    member's pipeline reported, ``info["start_weights"]`` that of a member that reports one.
    Raises MeasureError (one line naming the file or the member and what is wrong).
    """
    from autograder import parts
    from genrekit import checkpoint
    measure = _measure()
    try:
        ckpt = checkpoint.load(ckpt_path)
    except checkpoint.CheckpointError as err:
        raise measure.MeasureError(str(err).splitlines()[0]) from None
    members = _members(ckpt_path, ckpt, part.id)
    _stored_weights_agree(part, submission, ckpt_path, members)
    n = len(inputs["audio"])
    fused, member_info = None, {}
    for name, weight in members.items():
        member = parts.get(name)
        lacking = [i for i in member.inputs if i not in inputs]
        if lacking:
            raise measure.MeasureError(f"member {name} needs the inputs {', '.join(lacking)}, which the part "
                                       f"{part.id} does not declare")
        pipeline = measure.PIPELINES.get(member.pipeline)
        if pipeline is None:
            raise measure.MeasureError(f"member {name}: no measurement pipeline '{member.pipeline}'")
        try:
            if name in inputs.get("measured", {}):  # measured earlier in this run, as its own part
                probs, info = inputs["measured"][name]
            else:
                member_path = Path(os.path.relpath(submission / member.checkpoint))  # named as the student knows it
                probs, info, _ = pipeline(member, submission, member_path, inputs)
            what = member.code.get("aggregate", member.code.get("model", name))
            probs = measure._plain_probs(probs, n, what).astype(np.float64)
        except Exception as err:  # the member's own reason, prefixed by the member
            reason = str(err).splitlines()[0] if isinstance(err, measure.MeasureError) else measure._first_line(err)
            raise measure.MeasureError(f"member {name}: {reason}"[:300]) from None
        member_info[name] = info
        fused = weight * probs if fused is None else fused + weight * probs
    info = {"members": members, "member_info": member_info}
    starts = [i["start_weights"] for i in member_info.values() if isinstance(i, dict) and "start_weights" in i]
    if starts:
        info["start_weights"] = starts[0]
    return fused.astype(np.float32), info, ckpt
