"""Errors of the AWS layout, mapped from botocore at one point (:func:`deploys.aws.session.call`).

Hierarchy::

    RuntimeError
     └── AwsError                   any failed AWS step; message names the step, never a secret
          ├── AwsCallError          an API call failed (.service, .operation, .code)
          ├── StackFailed           a stack change rolled back (.events: the events that explain it)
          ├── LockHeld              the environment lock belongs to another run (.holder)
          ├── ReleaseFailed         a release did not become healthy (.rolled_back_to)
          └── NotApproved           the operator declined (exit 3); nothing was changed
"""

from __future__ import annotations

__all__ = ["AwsError", "AwsCallError", "StackFailed", "LockHeld", "ReleaseFailed", "NotApproved"]


class AwsError(RuntimeError):
    """A failed AWS step."""


class AwsCallError(AwsError):
    """An AWS API call failed.

    + service / operation: e.g. ``cloudformation`` / ``ExecuteChangeSet``
    + code: the AWS error code (``ValidationError``, ``AccessDenied``...) or ``NoCredentials``
    """

    def __init__(self, service: str, operation: str, code: str, message: str):
        self.service, self.operation, self.code = service, operation, code
        super().__init__(f"{service} {operation} failed: {code}: {message}")


class StackFailed(AwsError):
    """A stack create/update failed and CloudFormation rolled it back.

    + events: ``[(logical id, resource type, status, reason)]``, the failed ones, oldest first
    """

    def __init__(self, stack: str, status: str, events: list[tuple[str, str, str, str]]):
        self.stack, self.status, self.events = stack, status, events
        lines = "".join(f"\n  {lid} ({rtype}): {st}: {reason}" for lid, rtype, st, reason in events)
        super().__init__(f"stack {stack} ended in {status}{lines}")


class LockHeld(AwsError):
    """Another run holds the environment lock (``holder``: its JSON record)."""

    def __init__(self, parameter: str, holder: str):
        self.parameter, self.holder = parameter, holder
        super().__init__(f"environment lock {parameter} is held: {holder}; it expires after its TTL, "
                         "or, when that run is certainly gone (another machine, or its pid reused), "
                         "break it with: orderops-aws -i <inventory> unlock --yes")


class ReleaseFailed(AwsError):
    """A release failed its checks; ``rolled_back_to`` is the task definition restored (or None)."""

    def __init__(self, message: str, rolled_back_to: str | None):
        self.rolled_back_to = rolled_back_to
        super().__init__(message + (f"; rolled back to {rolled_back_to}" if rolled_back_to else ""))


class NotApproved(AwsError):
    """The operator did not approve the plan; nothing was changed (the CLI exits 3)."""
