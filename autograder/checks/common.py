"""What every part's hidden checks share: plain types and the ``hidden`` wrapper."""

from __future__ import annotations

import functools

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
        except AssertionError as err:
            if type(err) is not AssertionError:  # the student's own subclass: not the check's verdict
                message = f"your code raised {type(err).__name__}"
            else:
                message = _message(err) or f"{check.__name__} failed"
        except BaseException as err:  # the student's code raised inside the check
            first = _message(err)
            message = f"your code raised {type(err).__name__}" + (f": {first}" if first else "")
        else:
            return None
        raise AssertionError(message) from None
    return run
