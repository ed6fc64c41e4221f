"""Errors of the runbooks, in one module (``runbooks.core`` sits below engine and executors).

Everything raised on purpose derives from :class:`RunbookError`, so the CLI turns any of them
into one clear line (and a non-zero exit) instead of a traceback. Errors raised before a run
starts (unknown runbook, bad parameters, bad inventory or ``--limit``) are raised before any host
is touched::

    Exception
     └── RunbookError                  base: a message meant for the operator
          ├── UnknownRunbook           no runbook of that name (.name, .known)
          ├── ParameterError           a -p key=value is unknown or invalid (.runbook, .field)
          ├── TargetError              inventory cannot be loaded / --limit matches no host
          └── ExecutorError            a transport failed (not the command: the transport)
               ├── ApiError            an AWS API call failed (.service, .operation, .code)
               ├── CommandTimeout      a command or step ran out of time (.seconds)
               └── CommandCancelled    the run was aborted or the step timed out: its
                                       process groups were killed (runbooks.core.process)

Where errors are mapped: operating-system errors of child processes (``OSError`` at start,
``subprocess.TimeoutExpired``) become these classes in one place,
:func:`runbooks.core.process.run_process`; inventory errors
(:class:`inventories.schema.InventoryError`) become :class:`TargetError` in
:mod:`runbooks.engine.targets`.

A failing *command* is not an exception: executors return a
:class:`~runbooks.core.types.CommandResult` with a non-zero ``rc`` and the step decides what that
means.
"""

from __future__ import annotations

__all__ = ["RunbookError", "UnknownRunbook", "ParameterError", "TargetError", "ExecutorError", "ApiError",
           "CommandTimeout", "CommandCancelled"]


class RunbookError(Exception):
    """Base class: ``str(error)`` is a complete, operator-facing message."""


class UnknownRunbook(RunbookError):
    """No runbook called ``name``; ``known`` lists the names that exist."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = known
        super().__init__(f"unknown runbook {name!r}; known runbooks: {', '.join(known)}")


class ParameterError(RunbookError):
    """A runbook parameter is unknown, malformed or invalid; ``field`` names it."""

    def __init__(self, runbook: str, field: str, message: str):
        self.runbook = runbook
        self.field = field
        super().__init__(f"runbook {runbook!r}: parameter {field}: {message}")


class TargetError(RunbookError):
    """The inventory cannot be loaded or validated, or ``--limit`` matches no host."""


class ExecutorError(RunbookError):
    """A transport failed (SSH unreachable, ansible-runner could not start, ...)."""


class ApiError(ExecutorError):
    """An AWS API call failed: ``service`` / ``operation`` (boto3 names, e.g. ``ecs`` /
    ``describe_services``) and ``code`` (AWS's error code, e.g. ``DBSnapshotNotFound``, or the
    botocore exception's class name). Mapped in one place: :mod:`runbooks.executors.aws`."""

    def __init__(self, service: str, operation: str, code: str, message: str):
        self.service, self.operation, self.code = service, operation, code
        super().__init__(f"{service} {operation} failed: {code}: {message}")


class CommandTimeout(ExecutorError):
    """A command or a whole step did not finish within ``seconds``."""

    def __init__(self, what: str, seconds: float):
        self.seconds = seconds
        super().__init__(f"{what} timed out after {seconds:.4g} s")


class CommandCancelled(ExecutorError):
    """A command was stopped (or refused to start) because its step was cancelled: the step
    timed out or the run was aborted (``reason``)."""

    def __init__(self, what: str, reason: str):
        self.reason = reason
        super().__init__(f"{what} stopped: {reason}")
