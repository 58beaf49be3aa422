"""The parts of the homework, declared once.

Release, the reference run, calibration, grading and the tests all read :data:`PARTS`; adding a part
is one entry here plus its own code (its notebook, its student module, its hidden checks and, when it
needs a new way of being measured, one pipeline in :mod:`autograder.measure`).

An entry says:
- ``id``: the key of its thresholds in ``thresholds.json`` and of its column in ``grades.csv``;
- ``notebook``: the notebook (stem) that trains it and saves its checkpoint;
- ``cell``: the ``grade_id`` of that notebook's test cell whose score the measured accuracy sets
  (its points, in the notebook's nbgrader metadata, are the part's accuracy points);
- ``checkpoint``: where the notebook saves the trained model, relative to the assignment folder;
- ``pipeline``: how the grader measures it (a name in :data:`autograder.measure.PIPELINES`);
- ``code``: the student's code that pipeline calls, role -> import path inside the student package;
- ``audits``: checks of the checkpoint's provenance made by the grader, with the labels and ids it holds
  (:data:`autograder.measure.AUDITS`), e.g. that no validation or test clip was a training source;
- ``inputs``: what the measurement child receives per test clip besides nothing else: ``"audio"``
  always, ``"musicnn"`` (frame embeddings computed by the grader with the toolkit) for parts that use them;
- ``builds_on``: the parts whose reference it must beat by more than the spread over seeds (the
  lesson's claim, checked on the calibration's seeds by :mod:`autograder.gains`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    id: str
    title: str
    notebook: str
    cell: str
    checkpoint: str
    pipeline: str
    code: dict = field(default_factory=dict)
    audits: tuple = ()
    inputs: tuple = ("audio",)
    builds_on: tuple = ()


PARTS: tuple[Part, ...] = (
    Part(id="part1_baseline", title="1 baseline CNN (whole clips)", notebook="1_baseline", cell="test_accuracy",
         checkpoint="checkpoints/part1_baseline.pt", pipeline="clips",
         code={"model": "genre.models.BaselineCNN", "features": "genre.features.log_mel"}),
    Part(id="part2_segments", title="2 segments, mean of probabilities", notebook="2_segments",
         cell="test_accuracy_segments", checkpoint="checkpoints/part2_segments.pt", pipeline="segments",
         code={"model": "genre.models.BaselineCNN", "features": "genre.features.log_mel",
               "segment": "genre.segments.segment_clips", "aggregate": "genre.segments.clip_probabilities"},
         builds_on=("part1_baseline",)),
    Part(id="part3_augmented", title="3 segments + offline augmentation", notebook="3_augmentation",
         cell="test_accuracy_augmented", checkpoint="checkpoints/part3_augmented.pt", pipeline="segments",
         code={"model": "genre.models.BaselineCNN", "features": "genre.features.log_mel",
               "segment": "genre.segments.segment_clips", "aggregate": "genre.segments.clip_probabilities"},
         audits=("training_sources",), builds_on=("part2_segments",)),
    Part(id="part4_mlp", title="4 MLP on musicnn embeddings", notebook="4_musicnn_fusion",
         cell="test_accuracy_mlp", checkpoint="checkpoints/part4_mlp.pt", pipeline="mlp",
         code={"model": "genre.fusion.EmbeddingMLP", "pool": "genre.fusion.pool_frames"},
         inputs=("audio", "musicnn"), builds_on=("part3_augmented",)),
    Part(id="part4_fusion", title="4 fusion: CNN + musicnn", notebook="4_musicnn_fusion",
         cell="test_accuracy_fusion", checkpoint="checkpoints/part4_fusion.pt", pipeline="fusion",
         code={"model": "genre.fusion.FusionNet", "features": "genre.features.log_mel",
               "segment": "genre.segments.segment_clips", "pool": "genre.fusion.pool_frames",
               "aggregate": "genre.segments.clip_probabilities"},
         inputs=("audio", "musicnn"), builds_on=("part3_augmented", "part4_mlp")),
    Part(id="part5_resnet", title="5 ResNet finetuned on log-mels", notebook="5_finetune",
         cell="test_accuracy_resnet", checkpoint="checkpoints/part5_resnet.pt", pipeline="resnet",
         code={"model": "genre.finetune.ResNetClassifier", "features": "genre.features.log_mel",
               "segment": "genre.segments.segment_clips", "aggregate": "genre.segments.clip_probabilities"},
         builds_on=("part3_augmented",)),
    Part(id="part5_final", title="5 final: late fusion", notebook="5_finetune",
         cell="test_accuracy_final", checkpoint="checkpoints/part5_final.pt", pipeline="late_fusion",
         code={"model": "genre.final.LateFusion"}, inputs=("audio", "musicnn"),
         builds_on=("part4_fusion", "part5_resnet")),
)

BY_ID: dict[str, Part] = {p.id: p for p in PARTS}


def get(part_id: str) -> Part:
    """The part called ``part_id``; KeyError (one line) names the parts that exist."""
    if part_id not in BY_ID:
        raise KeyError(f"unknown part '{part_id}' (have {', '.join(BY_ID)})")
    return BY_ID[part_id]
