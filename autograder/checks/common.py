"""What every part's hidden checks share: plain types, and checks written as a probe and a verdict."""

from __future__ import annotations

import contextlib
import functools
import os
import threading

import numpy as np


def plain(x, dtype=None) -> np.ndarray:
    """A student's output as a plain numpy array: a tensor subclass, an ndarray subclass or an object
    with its own ``__eq__``/``__array__`` cannot change how the check compares it (copied, then viewed
    as the base class). Use it on every value a check compares."""
    import torch
    if isinstance(x, torch.Tensor):
        x = torch.Tensor.detach(x).cpu()
        x = torch.Tensor.numpy(x.as_subclass(torch.Tensor)) if type(x) is not torch.Tensor else x.numpy()
    arr = np.array(x, dtype=dtype, copy=True)
    if arr.dtype == object:
        raise AssertionError(f"expected an array of numbers, got {type(x).__name__}")
    return arr.view(np.ndarray)


def plain_tensor(x, dtype=None):
    """A student's tensor output as a plain ``torch.Tensor`` (a subclass cannot lie to comparisons)."""
    import torch
    return torch.from_numpy(plain(x, dtype)).as_subclass(torch.Tensor)


def _message(err: BaseException) -> str:
    try:
        text = str(err)
    except BaseException:  # a student's exception whose __str__ raises
        text = ""
    first = text.splitlines()[0][:200] if text else ""
    return first


def hidden(check):
    """Run a check and re-raise any failure as a bare AssertionError with its one-line message.

    The feedback then shows the call and the message, never the check's own lines (the traceback of
    the original failure is dropped). Whatever the student's code raises (an exception whose message
    itself raises, SystemExit, KeyboardInterrupt, a subclass of AssertionError) fails the check with
    a message; a check passes only when it returns normally.
    """
    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            check(*args, **kwargs)
        except BaseException as err:
            message = failure_message(err, check.__name__)
        else:
            return None
        raise AssertionError(message) from None
    return run


# --- checks that cannot be faked: a probe (the student's code) and a verdict (the grader's) ---------
#
# A check run in the student's kernel can be rebound by the student's own code (their package is
# imported first and may replace ``part1.check_log_mel_values`` in memory). So a check is written in
# two halves. The *probe* calls the student's code on inputs the check chooses and returns what came
# back as plain values (numbers, arrays, short strings): it asserts nothing. The *verdict* judges that
# record and recomputes everything it can itself (the inputs, the expected outputs). Run by the
# instructor (make reference, the tests), a check runs both halves in the notebook, one after the
# other. When grading, the grader runs every probe in the measurement sandbox, on the student's
# package, and every verdict in its own process (:func:`judge`); in the autograde kernel the call does
# nothing (``JUDGED_BY_GRADER``), and a test cell keeps its points only when the verdicts pass.
# Forging a probe's record means computing the right answer.

# Set by the grader in the autograde kernels: there a check's call does nothing, because the grader
# runs every probe on the submitted package in a child of its own and judges it outside the kernel
# (:func:`autograder.grade.apply_verdicts`), so the kernel's result could add nothing but CPU time
# (the probes' inputs, librosa's first use). A student who unsets it gains nothing: a cell keeps its
# points only when the grader's verdicts pass. The instructor's own runs (make reference, the tests)
# leave it unset and run both halves in the kernel.
JUDGED_BY_GRADER = "GENRE_CHECKS_JUDGED_BY_GRADER"
RECORD_LIMIT = 2 * 2**20  # bytes of one probe's record (a few KB are typical)
# one verdict at a time in a process: some rebuild the probe's seeded networks from torch's global
# random generator, which the grader's threads (one per submission graded at once) would otherwise share
_JUDGING = threading.Lock()
CHECKS: dict = {}         # "part1.check_log_mel_shape" -> Check


class Check:
    """A hidden check: ``probe(*student_objects) -> dict`` and ``verdict(record)``.

    ``student``: the import path, in the student's package, of each object the hidden cell passes
    (``"genre.features.log_mel"``); the grader imports them from the submission to run the probe.
    Calling the check (``part1.check_log_mel_shape(log_mel)``, in a hidden cell) runs the probe, sends
    its record through the same encoding the grader uses, and runs the verdict; any failure is one
    AssertionError line.
    """

    def __init__(self, probe, student: tuple[str, ...]):
        self.probe = probe
        self.student = tuple(student)
        self.name = f"{probe.__module__.rsplit('.', 1)[-1]}.{probe.__name__}"
        self.judge_record = None
        functools.update_wrapper(self, probe)
        CHECKS[self.name] = self

    def verdict(self, fn):
        """Decorator: the verdict of this check, ``fn(record) -> None``, AssertionError when wrong."""
        self.judge_record = fn
        return fn

    def record(self, *objects) -> bytes:
        """Run the probe on the student's objects: the encoded record, or the encoded failure."""
        try:
            return encode(self.probe(*objects))
        except BaseException as err:  # the student's code raised, or its output is not plain data
            return encode({ERROR: failure_message(err, self.probe.__name__)})

    def __call__(self, *objects) -> None:
        if os.environ.get(JUDGED_BY_GRADER) == "1":
            return None  # autograde: the grader probes the package and judges this check itself
        with random_state_kept():  # the probe and the verdict both seed torch
            message = judge(self.name, self.record(*objects))
        if message is not None:
            raise AssertionError(message) from None


@contextlib.contextmanager
def random_state_kept():
    """The global random generators (torch's, numpy's legacy one, Python's) as they were before.

    Probes and verdicts seed torch's generator to build their own small networks. In the instructor's
    run (make reference, calibration) the hidden cells run in the notebook between the training cells:
    without this, what a notebook trains after a check would depend on the check's seeds, not the
    notebook's, and would differ from a student's run, which has no hidden cells. (The grader's own
    processes train nothing: its probes and verdicts run without it.)"""
    import random

    import torch
    np_state, py_state = np.random.get_state(), random.getstate()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def get(name: str) -> Check:
    """The check called ``name`` (``"part1.check_log_mel_shape"``), its module imported when needed."""
    import importlib
    module = name.split(".")[0]
    if name not in CHECKS and module.startswith("part") and module[4:].isdigit():
        importlib.import_module(f"autograder.checks.{module}")
    return CHECKS[name]


def probe(*student: str):
    """Decorator: ``@probe("genre.features.log_mel")`` declares a check by its probe (see :class:`Check`)."""
    return lambda fn: Check(fn, student)


ERROR = "__error__"   # record key of a probe that failed: its one-line message


def encode(record) -> bytes:
    """A probe's record (str keys -> arrays of numbers, numbers, bools, short strings, None, or lists
    of those) as ``.npz`` bytes: arrays as arrays, the rest as JSON. TypeError for anything else."""
    import io
    import json
    if not isinstance(record, dict):
        raise TypeError(f"a probe returns a dict, got {type(record).__name__}")
    arrays, meta = {}, {}
    for key, value in record.items():
        if type(key) is not str:
            raise TypeError("record keys are strings")
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"record '{key}': an array of {value.dtype}, not numbers")
            arrays[key] = np.array(value).view(np.ndarray)
        else:
            meta[key] = _json_value(value, key)
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def _json_value(value, key: str):
    if value is None or type(value) in (bool, int, float, str):
        if type(value) is str and len(value) > 500:
            raise TypeError(f"record '{key}': string longer than 500 characters")
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if type(value) in (list, tuple):
        return [_json_value(v, key) for v in value]
    raise TypeError(f"record '{key}': {type(value).__name__} is not plain data")


def decode(raw: bytes) -> dict:
    """The record :func:`encode` made, read without pickle; ValueError when it is not one."""
    import io
    import json
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > RECORD_LIMIT:
        raise ValueError("record missing or too large")
    with np.load(io.BytesIO(bytes(raw)), allow_pickle=False) as npz:
        meta = json.loads(bytes(npz["__meta__"]).decode())
        if not isinstance(meta, dict):
            raise ValueError("record is not a dict")
        meta.update({k: np.array(npz[k]) for k in npz.files if k != "__meta__"})
    return meta


def judge(name: str, raw) -> str | None:
    """The verdict of check ``name`` on a probe's encoded record, in the grader's process: None when it
    passes, else the one-line reason. Never raises: a record that is malformed fails the check."""
    try:
        record = decode(raw)
    except Exception:
        return "the check's probe returned no usable record"
    if ERROR in record:
        return str(record[ERROR])[:300] or f"{name} failed"
    try:
        verdict = get(name).judge_record
    except Exception:
        return f"{name}: no such check"
    try:
        with _JUDGING:
            verdict(record)
    except AssertionError as err:
        return _message(err) or f"{name} failed"
    except Exception as err:  # a record of the wrong shape or type: the student's output was not usable
        return f"your code's output could not be checked ({type(err).__name__}: {_message(err)})"
    return None


class CheckTimeout(BaseException):
    """Raised in a probe that ran past its time (by the grader's alarm): its message is the reason."""


def failure_message(err: BaseException, what: str) -> str:
    """The one-line message of a failure inside a probe (the check's own assertion or the student's error)."""
    if type(err) is CheckTimeout:
        return _message(err)
    if type(err) is AssertionError:
        return _message(err) or f"{what} failed"
    if isinstance(err, AssertionError):  # the student's own subclass: not the check's verdict
        return f"your code raised {type(err).__name__}"
    first = _message(err)
    return f"your code raised {type(err).__name__}" + (f": {first}" if first else "")
