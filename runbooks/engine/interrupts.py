"""POSIX signal handling of a runbook run, in one place.

SIGTERM (systemd stopping a timed-out scheduled run), SIGHUP and SIGINT (Ctrl-C) become one
``KeyboardInterrupt`` in the main thread; the runner (:func:`runbooks.engine.runner.run`) records
the run as aborted, stops the running steps' process groups, releases the host locks and
writes the reports. Later signals are ignored, so that clean-up is not interrupted in turn.
"""

from __future__ import annotations

import signal

__all__ = ["install", "ABORT_SIGNALS"]

ABORT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_received: list[int] = []


def _abort(signum, frame):  # noqa: ARG001 - signal handler signature
    if _received:
        return
    _received.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def install() -> None:
    """Install the abort handler for :data:`ABORT_SIGNALS` (call from the main thread)."""
    _received.clear()
    for sig in ABORT_SIGNALS:
        signal.signal(sig, _abort)
