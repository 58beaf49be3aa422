"""Accuracy measured by the grader, label-blind: the student's code sees audio and nothing else.

Two sides:

- The **parent** (the grader, :func:`measure`) holds the test set: it loads the test clips once per
  batch (:func:`test_set`), shuffles their order with a secret permutation, and writes the waveforms
  (no path, file name, clip id, genre or label) to a request file. For each submission it starts one
  child with that file as standard input, reads the class probabilities of every part back from the
  child's standard output, validates them (shape, finiteness, one row per clip; the metrics use each row's ranking, so scores
  that are not normalised are graded as they rank)
  and computes the metrics itself with the labels the child never had.
- The **child** (``python -m autograder.measure SUBMISSION``, :func:`child_main`) runs in the
  submission folder (in the sandbox when grading sandboxed). It moves its standard output aside
  before importing any student code, so what the student prints cannot mix with the result, then
  runs each requested part's pipeline with the student's own code on the checkpoint the notebook
  saved: the student's model class, front end, segmentation and aggregation.

Pipelines (:data:`PIPELINES`) are the ways of turning audio into clip probabilities; a part names
one in :mod:`autograder.parts`. Several parts share a pipeline (parts 2 and 3 are both measured on
segments with the student's aggregation).

The same child also runs the **probes** of the hidden checks (:mod:`autograder.checks.common`) on the
student's package, before the parts, and the parent judges each probe's record with the check's
verdict in its own process: the code-test points do not depend on anything the student's code could
do in their notebook's kernel (where, when grading, the checks' calls do nothing).

Request (standard input, ``.npz``): ``audio`` (all clips concatenated, float32), ``lengths`` (samples
per clip) and ``request`` (JSON: the parts to measure, the checks to probe). Response (standard
output, ``.npz``): one array of probabilities (clips, classes) per part that worked, ``facts`` (JSON:
per part, what the checkpoint says, or ``{"error": one line}``) and ``check:NAME`` (each probe's
encoded record), in length-prefixed frames (:func:`read_frames`): one per probe, then the parts'.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autograder import parts as parts_mod

RESPONSE_LIMIT = 32 * 2**20  # bytes of the child's standard output kept (the response is a few hundred KB)
# what the child's environment never gets: where the data, caches and labels live
_REQUEST_LOCK = threading.Lock()  # submissions graded at once share one request file per set of parts
HIDDEN_ENV = ("GENREKIT_DATA_DIR", "GENREKIT_CACHE_DIR", "GENRE_DATASET", "GENREKIT_WEIGHTS_DIR")


class MeasureError(Exception):
    """A problem of one part's measurement; one line, shown to the student."""


# === child side: the student's code, audio only ======================================================

def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:240]}" if text else type(err).__name__


def student(path: str, submission: Path):
    """Import ``path`` (``genre.module.name``) and check that it comes from the submission folder."""
    from genrekit.checkpoint import import_class
    obj = import_class(path)
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    origin = Path(getattr(module, "__file__", "") or "/").resolve()
    if submission.resolve() not in origin.parents:
        raise MeasureError(f"{path} was imported from {origin}, not from your submission")
    return obj


_FEATURES: dict = {}  # the student's front end per (import path, audio): computed once for all parts


def _features(code: dict, submission: Path, audio: list[np.ndarray]) -> list[np.ndarray]:
    """The student's front end on every clip, checked: (N_MELS, frames) finite float arrays.

    Parts that share a front end (1-3 all use ``log_mel``) share its output: it is computed once per
    measurement, on fresh copies of the audio."""
    key = (code["features"], id(audio))
    if key not in _FEATURES:
        _FEATURES[key] = _compute_features(code, submission, audio)
    return [f.copy() for f in _FEATURES[key]]


def _compute_features(code: dict, submission: Path, audio: list[np.ndarray]) -> list[np.ndarray]:
    from genrekit import config
    features = student(code["features"], submission)
    out = []
    for i, y in enumerate(audio):
        with contextlib.redirect_stdout(io.StringIO()):
            f = np.asarray(features(y.copy(), config.SAMPLE_RATE), dtype=np.float32)
        if f.ndim != 2 or f.shape[0] != config.N_MELS or f.shape[1] < 1:
            raise MeasureError(f"{code['features']} returned shape {f.shape} for test clip {i}, "
                               f"expected ({config.N_MELS}, frames)")
        if not np.all(np.isfinite(f)):
            raise MeasureError(f"{code['features']} returned NaN or inf for test clip {i}")
        out.append(f)
    return out


def _model(code: dict, submission: Path, ckpt_path: Path):
    from genrekit import checkpoint
    ckpt = checkpoint.load(ckpt_path)  # one-line CheckpointError naming the file
    return ckpt, checkpoint.load_model(ckpt_path, cls=student(code["model"], submission))


def pipeline_clips(part, submission: Path, ckpt_path: Path, inputs: dict):
    """Part 1: the student's log-mel of each whole clip -> the student's model -> softmax."""
    from genrekit import train
    audio = inputs["audio"]
    ckpt, model = _model(part.code, submission, ckpt_path)
    feats = _features(part.code, submission, audio)
    probs = train.predict_proba(model, train.stack(feats), batch_size=16)
    return probs, {}, ckpt


def segment_settings(ckpt: dict, ckpt_path: Path) -> tuple[float, float]:
    """(segment seconds, hop seconds) the checkpoint was trained with; MeasureError naming the file."""
    settings = (ckpt.get("extra") or {}).get("segments")
    try:
        seconds, hop = float(settings["seconds"]), float(settings["hop_seconds"])
        assert 0 < seconds <= 30 and 0 < hop <= 30
    except Exception:
        raise MeasureError(f"{ckpt_path}: the checkpoint has no valid segment settings (save it with "
                           f"extra={{'segments': {{'seconds': ..., 'hop_seconds': ...}}}})") from None
    return seconds, hop


def segments(code: dict, submission: Path, feats, seg_frames: int, hop_frames: int, audio) -> tuple[np.ndarray, np.ndarray]:
    """The student's ``segment_clips`` on the front end's output, checked: (segments, N_MELS, seg_frames)
    float32 and an int64 clip index covering every test clip; MeasureError (one line) otherwise."""
    from genrekit import config
    segment = student(code["segment"], submission)
    with contextlib.redirect_stdout(io.StringIO()):
        segs, index = segment(feats, seg_frames, hop_frames)
    segs = np.asarray(segs, dtype=np.float32)
    index = np.asarray(index)
    n = len(audio)
    if segs.ndim != 3 or segs.shape[1:] != (config.N_MELS, seg_frames):
        raise MeasureError(f"{code['segment']} returned segments of shape {segs.shape}, "
                           f"expected (segments, {config.N_MELS}, {seg_frames})")
    if index.shape != (len(segs),) or not np.issubdtype(index.dtype, np.integer):
        raise MeasureError(f"{code['segment']} returned a clip index of shape {index.shape} "
                           f"({index.dtype}), expected ({len(segs)},) integers")
    if len(index) and (index.min() < 0 or index.max() >= n):
        raise MeasureError(f"{code['segment']}: clip index outside 0..{n - 1}")
    missing = np.setdiff1d(np.arange(n), index)
    if len(missing):
        raise MeasureError(f"{code['segment']} gave no segment for {len(missing)} of {n} test clips "
                           f"(e.g. clip {missing[0]}, {len(audio[missing[0]]) / config.SAMPLE_RATE:.1f} s long)")
    return segs, index.astype(np.int64)


def pipeline_segments(part, submission: Path, ckpt_path: Path, inputs: dict):
    """Parts 2 and 3: log-mel -> the student's segmentation at the checkpoint's segment length and hop
    -> the student's model on every segment -> the student's aggregation (mean of probabilities)."""
    import torch

    from genrekit import config, train
    audio = inputs["audio"]
    ckpt, model = _model(part.code, submission, ckpt_path)
    seconds, hop = segment_settings(ckpt, ckpt_path)
    seg_frames, hop_frames = config.seconds_to_frames(seconds), config.seconds_to_frames(hop)
    feats = _features(part.code, submission, audio)
    segs, index = segments(part.code, submission, feats, seg_frames, hop_frames, audio)
    logits = train.predict_logits(model, torch.from_numpy(segs[:, None]), batch_size=64)
    aggregate = student(part.code["aggregate"], submission)
    with contextlib.redirect_stdout(io.StringIO()):
        probs = aggregate(logits, index, len(audio))
    return probs, {"segment_seconds": seconds, "hop_seconds": hop, "segments": int(len(segs))}, ckpt


PIPELINES = {"clips": pipeline_clips, "segments": pipeline_segments}  # parts 4 and 5 add theirs at the end


def _plain_probs(probs, n: int, what: str) -> np.ndarray:
    """The clip scores as a plain float32 array (n, classes), or MeasureError saying what is wrong."""
    from genrekit import config
    try:
        arr = np.array(probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs, dtype=np.float64)
    except Exception as err:
        raise MeasureError(f"{what} returned something that is not an array ({_first_line(err)})") from None
    if arr.shape != (n, config.NUM_CLASSES):
        raise MeasureError(f"{what} returned shape {arr.shape}, expected ({n}, {config.NUM_CLASSES}): "
                           f"one row of class probabilities per clip")
    if not np.all(np.isfinite(arr)):
        raise MeasureError(f"{what} returned NaN or inf")
    return arr.astype(np.float32)


def run_child(submission: Path, request: dict, inputs: dict) -> tuple[dict, dict]:
    """Measure the requested parts with the student's code: ({part: probs}, {part: facts or error})."""
    results, facts = {}, {}
    inputs = {**inputs, "measured": {}}  # part -> (probs, info) measured so far: a late fusion reuses its members'
    for spec in request["parts"]:
        part = parts_mod.get(spec["id"])
        try:
            ckpt_path = Path(os.path.relpath(submission / part.checkpoint))  # named as the student knows it
            probs, info, ckpt = PIPELINES[part.pipeline](part, submission, ckpt_path, inputs)
            what = part.code.get("aggregate", part.code["model"])
            results[part.id] = _plain_probs(probs, len(inputs["audio"]), what)
            inputs["measured"][part.id] = (results[part.id].copy(), info)
            facts[part.id] = {"checkpoint_dataset": str(ckpt.get("dataset", "")), **info}
            if "training_sources" in part.audits:
                facts[part.id]["training_sources"] = _training_sources(ckpt)
        except Exception as err:  # any failure of the student's code or files is a reason, not a crash
            facts[part.id] = {"error": str(err).splitlines()[0][:300] if isinstance(err, MeasureError)
                              else _first_line(err)}
    return results, facts


PROBE_SECONDS = 20  # each check's probe, wall clock (the reference's slowest takes 2 s alone, 6 s with three
                    # submissions on two cores); an endless loop in one function costs that function's checks only
PROBES_ALLOWANCE = 60.0  # seconds the probes add to the measurement's limit (the reference's 44 take 6 s)


def run_probes(submission: Path, names, seconds: float = PROBE_SECONDS, emit=None) -> tuple[dict[str, bytes], str | None]:
    """The encoded record of each hidden check's probe on the student's package (a failure to import
    the student's object, any error of their code, or a probe running past ``seconds`` is encoded as
    that check's failure), and why the student's package could not be imported in time (None when it
    could). ``emit(name, record)`` is called as each one is made (the child sends it at once: a run
    cut short keeps the records made before)."""
    import signal

    from autograder.checks import common

    def expired(signum, frame):
        raise common.CheckTimeout(f"took longer than {seconds:g} s (an endless loop in your code?)")

    records, broken = {}, {}  # broken: import path -> why it could not be imported (tried once)
    hung = None               # an import of the student's package that ran out of time: no more tries
    if names:  # librosa compiled before any probe's clock starts (cold, 10-40 s: the grader's cost)
        from genrekit.data import warm_up_librosa
        warm_up_librosa()
    previous = signal.signal(signal.SIGALRM, expired)
    try:
        for name in names:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                check = common.get(name)
                objects = []
                for path in check.student:
                    if hung:
                        raise MeasureError(hung)
                    if path not in broken:
                        try:
                            objects.append(student(path, submission))
                            continue
                        except common.CheckTimeout:
                            hung = broken[path] = f"importing {path} took longer than {seconds:g} s"
                        except BaseException as err:
                            broken[path] = f"could not import {path}: {_first_line(err)}"
                    raise MeasureError(broken[path])
                with contextlib.redirect_stdout(io.StringIO()):
                    records[name] = check.record(*objects)
            except BaseException as err:
                records[name] = common.encode({common.ERROR: str(err).splitlines()[0][:300]
                                               if isinstance(err, MeasureError) else common.failure_message(err, name)})
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if emit is not None:
                emit(name, records[name])
    finally:
        signal.signal(signal.SIGALRM, previous)
    return records, hung


def _training_sources(ckpt: dict):
    """The source clip id of every training example, as the checkpoint's provenance records it (None if absent)."""
    sources = ((ckpt.get("extra") or {}).get("augmentation") or {}).get("sources")
    if not isinstance(sources, (list, tuple)):
        return None
    return [str(s)[:300] for s in sources[:200_000]]


def child_main(argv=None) -> int:
    """``python -m autograder.measure SUBMISSION`` with the request on standard input."""
    submission = Path((argv or sys.argv[1:])[0]).resolve()
    result_fd = os.dup(1)      # the result channel: the original standard output
    os.dup2(2, 1)              # from here on, anything printed goes to standard error
    sys.stdout = sys.stderr
    import warnings
    warnings.filterwarnings("ignore")
    raw = sys.stdin.buffer.read()
    sys.stdin.close()
    with np.load(io.BytesIO(raw), allow_pickle=False) as req:
        request = json.loads(bytes(req["request"]).decode())
        inputs = {"audio": np.split(req["audio"], np.cumsum(req["lengths"])[:-1])}
        if "musicnn" in req.files:  # musicnn frame embeddings per clip, computed by the grader
            inputs["musicnn"] = np.split(req["musicnn"], np.cumsum(req["musicnn_rows"])[:-1])
    sys.path.insert(0, str(submission))
    os.chdir(submission)
    with os.fdopen(result_fd, "wb") as out:
        # the checks' probes first (small inputs, seconds): their records reach the grader even when
        # the accuracy measurement that follows runs out of time
        _, hung = run_probes(submission, request.get("checks", []), float(request.get("probe_seconds", PROBE_SECONDS)),
                             emit=lambda name, raw: _write_frame(out, {f"check:{name}": np.frombuffer(raw, dtype=np.uint8)}))
        if hung:  # an import that never ends would only run out the measurement's time limit
            results, facts = {}, {spec["id"]: {"error": f"{hung} (an endless loop at import?)"} for spec in request["parts"]}
        else:
            results, facts = run_child(submission, request, inputs)
        _write_frame(out, {"facts": np.frombuffer(json.dumps(facts).encode(), dtype=np.uint8), **results})
    return 0


def _write_frame(out, arrays: dict) -> None:
    """One frame of the response: its length (8 bytes, little-endian), then an ``.npz`` of ``arrays``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out.write(len(buf.getvalue()).to_bytes(8, "little") + buf.getvalue())
    out.flush()


def read_frames(raw: bytes) -> list[bytes]:
    """The complete frames of a response, in order (a run cut short leaves the first ones)."""
    frames, at = [], 0
    while at + 8 <= len(raw):
        size = int.from_bytes(raw[at:at + 8], "little")
        if at + 8 + size > len(raw):
            break
        frames.append(raw[at + 8:at + 8 + size])
        at += 8 + size
    return frames


# === parent side: the grader, with the labels ========================================================

def audit_training_sources(fact: dict, tests: "TestSet") -> str | None:
    """Part 3: the checkpoint must name its training sources, and none may be a validation or test clip."""
    from genrekit.augcache import leaks
    sources = fact.get("training_sources")
    if not sources:
        return ("the checkpoint does not record the source clip of its training examples "
                "(extra['augmentation']['sources']): leakage cannot be ruled out")
    leaked = leaks(sources, tests.held_out_ids)
    if leaked:
        return (f"trained on {len(leaked)} validation or test clips (e.g. {leaked[0]}): augmenting held-out "
                f"clips into training is leakage, so this accuracy does not count")
    return None


AUDITS = {"training_sources": audit_training_sources}


def run_audits(part_id: str, fact: dict, tests: "TestSet") -> str | None:
    """The first failed audit of a part (one line), or None."""
    for name in parts_mod.get(part_id).audits:
        problem = AUDITS[name](fact, tests)
        if problem:
            return problem
    return None


@dataclass
class TestSet:
    """The grader's test clips for one batch, in a secret shuffled order, and the request file."""
    spec: str
    labels: np.ndarray                 # (clips,) labels in the shuffled order; never leaves the parent
    lengths: np.ndarray
    request_dir: Path                  # private folder holding the audio file given to each child
    skipped: list = field(default_factory=list)
    held_out_ids: frozenset = frozenset()  # ids of the validation and test clips (never training sources)
    clips: list = field(default_factory=list, repr=False)  # the test clips in the shuffled order (parent only)

    @property
    def n(self) -> int:
        return len(self.labels)

    def request_file(self, part_ids, checks=()) -> Path:
        """The request (audio, other inputs the parts need, parts to measure, checks to probe) as a
        file to give the child as its standard input; made once per batch and set of parts and checks
        (the first of the submissions graded at once makes it, the others wait for it)."""
        import hashlib
        key = hashlib.sha256(json.dumps([list(part_ids), list(checks), PROBE_SECONDS]).encode()).hexdigest()[:16]
        path = self.request_dir / f"request-{key}.npz"
        with _REQUEST_LOCK:
            if not path.is_file():
                self._write_request(path, part_ids, checks)
        return path

    def _write_request(self, path: Path, part_ids, checks=()) -> None:
        request = {"parts": [{"id": p} for p in part_ids], "checks": list(checks), "probe_seconds": PROBE_SECONDS}
        needs = {name for p in part_ids for name in parts_mod.get(p).inputs}
        extra = {}
        if "musicnn" in needs:
            frames = self.musicnn_frames()
            extra = {"musicnn": np.concatenate(frames), "musicnn_rows": np.array([len(f) for f in frames])}
        with np.load(self.request_dir / "audio.npz") as audio:
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as f:  # checks alone need no audio
                np.savez(f, audio=audio["audio"] if part_ids else np.zeros(0, np.float32),
                         lengths=audio["lengths"] if part_ids else np.zeros(0, np.int64),
                         request=np.frombuffer(json.dumps(request).encode(), dtype=np.uint8), **extra)
            os.replace(tmp, path)

    def musicnn_frames(self) -> list[np.ndarray]:
        """musicnn frame embeddings of the test clips in the shuffled order, computed by the toolkit
        through the feature cache (once per clip, ever), never by student code."""
        from genrekit import cache, embeddings
        frames, _, _ = cache.features(embeddings.clip_frames, self.clips, desc="musicnn (test clips)", progress=False)
        return [np.asarray(f, dtype=np.float32) for f in frames]


def held_out_ids(ds) -> frozenset:
    """Ids of a dataset's validation and test clips: what no training example may come from."""
    return frozenset(c.id for s in ("valid", "test") if ds.has(s) for c in ds.clips(s))


def test_set(data_spec: str, workdir: Path | None = None, seed: int | None = None) -> TestSet:
    """Load the test clips of ``data_spec`` once, shuffled with a secret order (``seed`` for tests).

    A test clip that cannot be read is left out for every submission alike and listed in ``skipped``.
    """
    from genrekit import data
    from genrekit.data import AudioError
    ds = data.open_dataset(data_spec)
    waves, labels, kept, skipped = [], [], [], []
    for clip in ds.clips("test"):
        try:
            waves.append(data.load_audio(clip.path))
            labels.append(clip.label)
            kept.append(clip)
        except AudioError as err:
            skipped.append(str(err))
    if not waves:
        raise MeasureError(f"dataset {ds.spec} has no readable test clips")
    rng = np.random.default_rng(seed if seed is not None else int.from_bytes(os.urandom(8), "little"))
    order = rng.permutation(len(waves))
    waves = [waves[i] for i in order]
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    request_dir = Path(tempfile.mkdtemp(prefix="measure-", dir=workdir))
    os.chmod(request_dir, 0o700)
    np.savez(request_dir / "audio.npz", audio=np.concatenate(waves).astype(np.float32), lengths=lengths)
    return TestSet(ds.spec, np.asarray(labels, dtype=np.int64)[order], lengths, request_dir, skipped, held_out_ids(ds),
                   [kept[i] for i in order])


def measure(folder: Path, part_ids, tests: TestSet, timeout: float, runner=None, checks=(),
            keep_probs: bool = False) -> dict:
    """Accuracy of each part of the submission in ``folder``: {part: metrics + facts, or {"error": ...}}.

    The student's code runs in one child process for all parts, with a time limit (``runner``:
    a function like :func:`autograder.course.run_limited`, e.g. a sandboxed one). ``checks``: hidden
    checks (``"part1.check_log_mel_shape"``) whose probes run in the same child, first (the limit grows
    by ``PROBES_ALLOWANCE``); their verdicts, judged here, come back under ``out["checks"]``:
    {check: None when it passed, else one line}. A child that ends before its last probe (a probe
    crashed or hung it) costs the checks not probed, never the accuracy: the parts are measured
    again in a fresh child. ``keep_probs``: each measured part's result also holds its validated test
    probabilities under ``"probs"`` (clips in ``tests``' order; for the instructor's reports, never
    written to a student's row). Never raises.
    """
    part_ids = list(part_ids)
    folder = Path(folder).resolve()
    limit = timeout + (PROBES_ALLOWANCE if checks else 0.0)
    res, records, response = _run(folder, part_ids, tests, limit, runner, checks)
    out = _parts(res, response, part_ids, tests, limit, keep_probs)
    if checks:
        out["checks"] = _verdicts(records, checks, res, limit)
        if response is None and part_ids and len(records) < len(checks):
            res, _, response = _run(folder, part_ids, tests, timeout, runner)
            out.update(_parts(res, response, part_ids, tests, timeout, keep_probs))
    return out


def _run(folder: Path, part_ids: list, tests: TestSet, timeout: float, runner, checks=()):
    """One run of the child: (how it ended, {check: record}, the parts' (facts, probabilities) or None)."""
    from autograder.course import nbgrader_env, run_limited
    env = {k: v for k, v in nbgrader_env().items() if k not in HIDDEN_ENV}
    env["PYTHONPATH"] = ""
    cmd = [sys.executable, "-m", "autograder.measure", str(folder)]
    res = (runner or run_limited)(cmd, folder, env, timeout, stdin=tests.request_file(part_ids, checks),
                                  stdout_limit=RESPONSE_LIMIT, binary_stdout=True)
    records, response = {}, None  # response: the parts' (facts, probabilities), once read
    for frame in read_frames(res.stdout or b""):  # one frame per probe, then the parts' frame
        try:
            with np.load(io.BytesIO(frame), allow_pickle=False) as npz:
                if "facts" in npz.files:
                    response = (json.loads(bytes(npz["facts"]).decode()),
                                {p: np.array(npz[p]) for p in part_ids if p in npz.files})
                for key in npz.files:
                    name = key.removeprefix("check:")
                    if name != key and name not in records:
                        records[name] = bytes(npz[key])
        except Exception:
            continue
    return res, records, response


def _failure(res, timeout: float) -> str:
    """Why a run of the child gave no usable response, one line."""
    from autograder.course import strip_ansi
    if getattr(res, "breach", ""):
        return f"stopped: {res.breach}"
    if res.timed_out:
        return f"took longer than {timeout:.0f} s (an endless loop in your code?)"
    err = [line for line in strip_ansi(res.stderr).splitlines() if line.strip()]
    return f"crashed: {err[-1][:200] if err else f'exit {res.returncode}'}"


def _verdicts(records: dict, checks, res, timeout: float) -> dict:
    """The grader's verdict on each check's probe record: {check: None, or one line}. A check without a
    record (the run ended before its probe) fails: not checked is not passed."""
    from autograder.checks import common
    missing = f"not checked: the grader's run of your code {_failure(res, timeout)}" \
        if getattr(res, "breach", "") or res.timed_out or res.returncode != 0 \
        else "not checked: the check's probe returned nothing"
    return {name: common.judge(name, records[name]) if name in records else missing for name in checks}


def _parts(res, response: tuple | None, part_ids: list, tests: TestSet, timeout: float,
           keep_probs: bool = False) -> dict:
    """Each part's metrics from the child's (facts, probabilities), or {"error": ...}."""
    from autograder.course import strip_ansi
    from genrekit import metrics
    if getattr(res, "breach", "") or res.timed_out or response is None:
        return {p: {"error": f"accuracy measurement {_failure(res, timeout)}"} for p in part_ids}
    facts, arrays = response
    out = {}
    for p in part_ids:
        fact = facts.get(p) if isinstance(facts, dict) else None
        if not isinstance(fact, dict):
            out[p] = {"error": "no result for this part"}
        elif "error" in fact:
            out[p] = {"error": strip_ansi(str(fact["error"]))[:300]}
        elif p not in arrays:
            out[p] = {"error": "no probabilities were returned"}
        else:
            try:
                probs = _plain_probs(arrays[p], tests.n, "the measurement")
            except MeasureError as err:
                out[p] = {"error": str(err)}
                continue
            problem = run_audits(p, fact, tests)
            if problem:
                out[p] = {"error": problem}
                continue
            result = metrics.summary(tests.labels, probs)
            result.update({k: v for k, v in fact.items() if k != "training_sources"})
            result["dataset"] = tests.spec
            result["predicted_classes"] = int(len(set(probs.argmax(1).tolist())))
            if keep_probs:
                result["probs"] = probs
            out[p] = result
    return out


def _register_pipelines() -> None:
    """The pipelines of parts 4 (musicnn) and 5 (finetuning) live in their own modules."""
    from autograder import pipelines_finetune, pipelines_musicnn
    PIPELINES.update(pipelines_musicnn.PIPELINES)
    PIPELINES.update({"resnet": pipelines_finetune.pipeline_resnet, "late_fusion": pipelines_finetune.pipeline_late_fusion})


if __name__ == "__main__":
    # run as the package's module (which registers the pipelines), so that the pipelines' modules share
    # its state: one front-end cache, one MeasureError
    from autograder import measure as _measure
    sys.exit(_measure.child_main())
else:
    _register_pipelines()
