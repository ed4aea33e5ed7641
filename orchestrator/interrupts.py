"""Stop signals as Ctrl-C, held back while a call that must not be cut in two finishes.

While a sweep runs, SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt in the driver
(``orchestrator.runner.stop_signals_as_ctrl_c``). One that arrives inside ``uninterrupted()`` (a write to
MLflow's sqlite store: an interrupted transaction keeps the database locked, and closing the sweep run
then waits out sqlite's 20 s busy timeout and fails) is raised when that block ends instead.
"""
from __future__ import annotations

import contextlib
import signal
import threading

_state = {"depth": 0, "pending": None}


def raise_or_defer(signum, frame) -> None:
    """A signal handler: KeyboardInterrupt now, or when the current ``uninterrupted()`` block ends."""
    if _state["depth"]:
        _state["pending"] = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def uninterrupted():
    if threading.current_thread() is not threading.main_thread():  # signal handlers run in the main thread
        yield
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            raise KeyboardInterrupt(signal.Signals(signum).name)
