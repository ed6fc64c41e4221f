"""Every command a step starts runs in its own process group; a :class:`Scope` can stop them all.

One mechanism for step timeouts and aborts: the engine gives each step attempt a
:class:`Scope` (:func:`use_scope`); executors start their child processes through
:meth:`Scope.start` (directly, or via :func:`run_process`), which puts each child in a new
session and so in its own process group. :meth:`Scope.cancel` (the step timed out, or the run
was aborted) sends ``SIGTERM`` to every group still running, then ``SIGKILL`` after
``grace`` seconds, and refuses new commands in that scope; transports that own their child
(ansible-runner) poll :attr:`Scope.cancelled` and kill their own group. The engine releases the
host locks afterwards, in fresh scopes.

:func:`run_process` is also the one place where operating-system errors of child processes
become :mod:`runbooks.core.errors` (``OSError`` -> :class:`ExecutorError`, a timeout ->
:class:`CommandTimeout`, a cancelled scope -> :class:`CommandCancelled`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from runbooks.core.errors import CommandCancelled, CommandTimeout, ExecutorError
from runbooks.core.types import CommandResult

__all__ = ["Scope", "current_scope", "use_scope", "run_process", "kill_group"]


def kill_group(pgid: int, grace: float = 2.0, proc: subprocess.Popen | None = None) -> None:
    """``SIGTERM`` process group ``pgid``, wait up to ``grace`` seconds for ``proc`` (its leader)
    to exit, then ``SIGKILL`` the group (children that ignored ``SIGTERM``). Gone groups are fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    else:
        time.sleep(min(grace, 0.2))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Scope:
    """The process groups of one step attempt (``name`` for messages).

    Thread-safe. After :meth:`cancel`, :attr:`cancelled` is true and :meth:`start` raises
    :class:`CommandCancelled`.
    """

    def __init__(self, name: str = "run"):
        self.name = name
        self.cancel_reason: str | None = None
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen] = {}

    @property
    def cancelled(self) -> bool:
        """``True`` once :meth:`cancel` was called."""
        return self.cancel_reason is not None

    def is_cancelled(self) -> bool:
        """:attr:`cancelled` as a callable (ansible-runner's ``cancel_callback``)."""
        return self.cancelled

    def running(self) -> list[int]:
        """Process-group IDs started in this scope and not finished yet."""
        with self._lock:
            return list(self._running)

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
              what: str = "command", stdin: bool = False) -> subprocess.Popen:
        """``Popen(argv)`` in a new session (own process group), stdout/stderr piped as text;
        stdin piped when ``stdin`` (else ``/dev/null``).

        Raises :class:`CommandCancelled` when the scope is cancelled, :class:`ExecutorError` when
        the program cannot start.
        """
        with self._lock:
            if self.cancel_reason is not None:
                raise CommandCancelled(what, self.cancel_reason)
            try:
                proc = subprocess.Popen(
                    list(argv), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    errors="replace", env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
                )
            except OSError as e:
                raise ExecutorError(f"cannot start {what}: {e}") from None
            self._running[proc.pid] = proc  # start_new_session: pgid == pid
            return proc

    def finished(self, proc: subprocess.Popen) -> None:
        """Forget ``proc`` (it exited and its output was read)."""
        with self._lock:
            self._running.pop(proc.pid, None)

    def cancel(self, reason: str, grace: float = 2.0) -> list[int]:
        """Refuse new commands and kill every running group (``SIGTERM``, ``SIGKILL`` after
        ``grace`` s). Returns the process-group IDs signalled."""
        with self._lock:
            if self.cancel_reason is None:
                self.cancel_reason = reason
            running = list(self._running.items())
        for pgid, proc in running:
            kill_group(pgid, grace, proc)
        return [pgid for pgid, _ in running]


_ROOT = Scope("root")
_CURRENT: contextvars.ContextVar[Scope] = contextvars.ContextVar("orderops_runbook_scope", default=_ROOT)


def current_scope() -> Scope:
    """The scope of the running step attempt (a never-cancelled root scope outside steps)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_scope(scope: Scope) -> Iterator[Scope]:
    """Make ``scope`` current in this thread (context) for the ``with`` block."""
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


def run_process(argv: Sequence[str], *, timeout: float, what: str, env: Mapping[str, str] | None = None,
                cwd: str | None = None, grace: float = 2.0, input: str | None = None) -> CommandResult:
    """Run ``argv`` to completion in its own process group of the current scope.

    + input: text written to its stdin (then closed); ``None``: stdin is ``/dev/null``
    + timeout: seconds; when it passes the group is killed (``SIGTERM``, ``SIGKILL`` after
      ``grace`` s) and :class:`CommandTimeout` is raised naming ``what``
    Returns a :class:`CommandResult` (any exit code). Raises :class:`ExecutorError` when the
    program cannot start, :class:`CommandCancelled` when the scope was cancelled meanwhile.
    """
    scope = current_scope()
    start = time.monotonic()
    proc = scope.start(argv, env=env, cwd=cwd, what=what, stdin=input is not None)
    try:
        try:
            out, err = proc.communicate(input, timeout=max(timeout, 0.001))
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, grace, proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)
            raise CommandTimeout(what, timeout) from None
    finally:
        scope.finished(proc)
    if scope.cancelled:
        raise CommandCancelled(what, scope.cancel_reason or "cancelled")
    return CommandResult(proc.returncode, out or "", err or "", time.monotonic() - start)
