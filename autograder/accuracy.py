"""Accuracy measured by the grader from a submission's checkpoint and the student's own code.

Run in a fresh subprocess per submission (``python -m autograder.accuracy PART SUBMISSION --data SPEC``),
with the submission folder as working directory and the only entry added to the import path, so that
nothing a notebook did can influence it. It imports the student's package, rebuilds the model from
the checkpoint into the student's own class, runs the student's front end on the test clips of the
grader's dataset and measures accuracy. It never reads a number the student saved or printed.
It writes the class probabilities of the test clips to ``--probs`` and prints one JSON object of facts
on stdout (exit 0), or ``{"error": one line}`` (exit 1). The parent computes the metrics itself, from
those probabilities and labels the child never receives.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

PARTS = {
    # part id: checkpoint path in the submission, model class, feature function
    "part1_baseline": {"checkpoint": "checkpoints/part1_baseline.pt", "model": "genre.models.BaselineCNN",
                       "features": "genre.features.log_mel"},
}


def _student(path: str, submission: Path):
    from genrekit.checkpoint import import_class
    obj = import_class(path)
    origin = Path(sys.modules[obj.__module__].__file__).resolve()
    if submission.resolve() not in origin.parents:
        raise RuntimeError(f"{path} was imported from {origin}, not from the submission")
    return obj


def predict(part: str, submission: Path, data_spec: str) -> tuple["np.ndarray", dict]:
    """Class probabilities (test clips, classes) of ``part`` of the submission, and facts about the run.

    Runs the student's code: it is called in a child process only. The metrics are computed by the
    parent (:func:`autograder.grade.measure_accuracy`) from these probabilities and labels it holds.
    """
    import numpy as np

    from genrekit import checkpoint, config, data, train
    spec = PARTS[part]
    ds = data.open_dataset(data_spec)  # the grader's configuration first, then the student's files
    ckpt_path = Path(os.path.relpath(submission / spec["checkpoint"]))  # messages name the file as students know it
    ckpt = checkpoint.load(ckpt_path)  # refuses another feature configuration, names the file
    model = checkpoint.load_model(ckpt_path, cls=_student(spec["model"], submission))
    features = _student(spec["features"], submission)
    feats = []
    for clip in ds.clips("test"):
        with contextlib.redirect_stdout(io.StringIO()):
            f = np.asarray(features(data.load_audio(clip.path), config.SAMPLE_RATE), dtype=np.float32)
        if f.ndim != 2 or f.shape[0] != config.N_MELS:
            raise RuntimeError(f"{spec['features']} returned shape {f.shape} for {clip.id}, expected ({config.N_MELS}, frames)")
        feats.append(f)
    probs = train.predict_proba(model, train.stack(feats), batch_size=16)
    return probs, {"part": part, "dataset": ds.spec, "checkpoint_dataset": str(ckpt.get("dataset", ""))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("submission", type=Path)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--probs", type=Path, required=True, help="where to write the probabilities (.npy)")
    args = parser.parse_args(argv)
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    try:
        probs, facts = predict(args.part, args.submission, args.data)
        np.save(args.probs, np.asarray(probs, dtype=np.float32))
    except Exception as err:  # any failure of the student's code or files is a reason, not a crash
        msg = str(err).splitlines()[0] if str(err) else ""
        print(json.dumps({"error": f"{type(err).__name__}: {msg}"[:300]}))
        return 1
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
