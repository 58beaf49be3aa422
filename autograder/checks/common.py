"""What every part's hidden checks share."""

from __future__ import annotations

import functools


def hidden(check):
    """Run a check and re-raise any failure as a bare AssertionError with its one-line message.

    The feedback then shows the call and the message, never the check's own lines (the traceback of
    the original failure is dropped).
    """
    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            check(*args, **kwargs)
            return None
        except AssertionError as err:
            message = str(err) or f"{check.__name__} failed"
        except Exception as err:  # the student's code raised inside the check
            first = str(err).splitlines()[0][:200] if str(err) else ""
            message = f"your code raised {type(err).__name__}: {first}"
        raise AssertionError(message) from None
    return run
