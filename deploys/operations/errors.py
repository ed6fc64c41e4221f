"""Failing an operation the way pyinfra shows best: as a failed command on that host.

An exception raised inside an operation at execution time aborts the whole run with a
traceback; a command that prints the reason to stderr and exits non-zero is reported as that
host's error, stops only that host, and triggers pyinfra's ``operation_host_error`` callbacks
(which release the host lock).
"""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand

__all__ = ["fail"]


def fail(message: str, code: int = 1) -> StringCommand:
    """A command that writes ``message`` to stderr and exits with ``code`` (1..255)."""
    if not 1 <= code <= 255:
        raise ValueError(f"exit code must be 1..255, got {code}")
    return StringCommand("echo", QuoteString(f"orderops: {message}"), ">&2;", "exit", str(code))
