"""Accuracy measured by the grader from a submission's checkpoint and the student's own code.

Run in a fresh subprocess per submission (``python -m autograder.accuracy PART SUBMISSION --data SPEC``),
with the submission folder as working directory and the only entry added to the import path, so that
nothing a notebook did can influence it. It imports the student's package, rebuilds the model from
the checkpoint into the student's own class, runs the student's front end on the test clips of the
grader's dataset and measures accuracy. It never reads a number the student saved or printed.
Prints one JSON object on stdout; exits 0 when it measured, 1 with a one-line reason otherwise.
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


def measure(part: str, submission: Path, data_spec: str) -> dict:
    """Test accuracy of ``part`` of the submission in ``submission`` (the folder with the notebooks)."""
    import numpy as np

    from genrekit import checkpoint, config, data, metrics, train
    spec = PARTS[part]
    ds = data.open_dataset(data_spec)  # the grader's configuration first, then the student's files
    ckpt_path = Path(os.path.relpath(submission / spec["checkpoint"]))  # messages name the file as students know it
    ckpt = checkpoint.load(ckpt_path)  # refuses another feature configuration, names the file
    model = checkpoint.load_model(ckpt_path, cls=_student(spec["model"], submission))
    features = _student(spec["features"], submission)
    clips = ds.clips("test")
    feats = []
    for clip in clips:
        with contextlib.redirect_stdout(io.StringIO()):
            f = np.asarray(features(data.load_audio(clip.path), config.SAMPLE_RATE), dtype=np.float32)
        if f.ndim != 2 or f.shape[0] != config.N_MELS:
            raise RuntimeError(f"{spec['features']} returned shape {f.shape} for {clip.id}, expected ({config.N_MELS}, frames)")
        feats.append(f)
    probs = train.predict_proba(model, train.stack(feats), batch_size=16)
    if not np.all(np.isfinite(probs)):
        raise RuntimeError("the model produced NaN or infinite outputs on the test clips")
    result = metrics.summary(ds.labels("test"), probs)
    pred = probs.argmax(1)
    result.update({"part": part, "dataset": ds.spec, "checkpoint_dataset": ckpt.get("dataset", ""),
                   "predicted_classes": int(len(set(pred.tolist())))})
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("submission", type=Path)
    parser.add_argument("--data", default="synthetic")
    args = parser.parse_args(argv)
    import warnings
    warnings.filterwarnings("ignore")
    try:
        result = measure(args.part, args.submission, args.data)
    except Exception as err:  # any failure of the student's code or files is a reason, not a crash
        msg = str(err).splitlines()[0] if str(err) else ""
        print(json.dumps({"error": f"{type(err).__name__}: {msg}"[:300]}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
