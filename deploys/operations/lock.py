"""A per-host lock, so two runs (deploys, later runbooks) never change one host at once.

The protocol (lock file, guard, scripts, exit codes) is the host contract's,
:mod:`deploys.contract.lock`, which the runbook engine uses too. A run may re-take its own lock
(pyinfra evaluates operations once to plan and once to execute). A lock whose expiry has passed
is stale (its run died) and is taken over with a warning.

Taking and releasing the lock is bookkeeping, not a change to the host's configuration: both
operations run their command directly and report through ``host.noop``, so an otherwise
converged host still reports zero changes. They run it only when pyinfra executes
(``state.is_executing``), never while it plans: without ``-y`` pyinfra runs every operation body
once to detect changes and again to execute, and ``--dry`` runs only that first pass, so a dry
run (the daily runbook's drift check) takes, renews and releases no lock, and never drops the
lock of the runbook it runs inside (``$ORDEROPS_RUN_ID``).

When another live run holds the lock, :func:`acquire` fails on that host with the holder's name
and expiry. :func:`release_on_failure` registers a pyinfra callback that releases this run's lock
on a host as soon as an operation fails there, so a failed run does not block the next one.
"""

from __future__ import annotations

import os
import uuid

from pyinfra import host, state
from pyinfra.api import StringCommand, operation
from pyinfra.api.state import BaseStateCallback

from deploys.contract.lock import LOCKED_EXIT, RUN_ID_ENV, acquire_command, force_release_command, holder, release_command
from deploys.facts.cache import bookkeeping
from deploys.operations.errors import fail

__all__ = ["RUN_ID", "acquire", "release", "force_release", "release_on_failure"]

#: This process's run ID (one pyinfra run or one runbook run); ``$ORDEROPS_RUN_ID`` overrides.
RUN_ID = os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex[:12]


def _planning() -> bool:
    """True while pyinfra plans (the change-detection pass without ``-y``, all of ``--dry``)."""
    return not state.is_executing


def _run(command: StringCommand) -> tuple[bool, list[str]]:
    with bookkeeping(host):  # the lock's file is no fact the deploy caches (deploys/facts/cache.py)
        ok, output = host.run_shell_command(command, _sudo=True)
    return ok, [line for line in output.stdout_lines] + [line for line in output.stderr_lines]


@operation(is_idempotent=False)
def acquire(ttl: int = 3600, run_id: str | None = None):
    """
    Take the host lock for this run (re-entrant), or fail naming who holds it.

    + ttl: seconds after which the lock counts as stale if this run never releases it
    + run_id: lock owner; defaults to this process's :data:`RUN_ID`

    Taken when pyinfra executes; while it plans (``--dry``) nothing runs on the host.
    """
    if _planning():
        host.noop(f"host lock taken by run {run_id or RUN_ID} when the deploy executes (none while planning)")
        return
    ok, lines = _run(StringCommand(acquire_command(run_id or RUN_ID, ttl, holder())))
    text = " ".join(lines).strip()
    if not ok:
        yield fail(
            f"host is busy: {text or 'lock script failed'}; wait, or if that run is dead: "
            "pyinfra <inventory> deploys/unlock.py --limit <host>",
            LOCKED_EXIT,
        )
        return
    if text.startswith("taken-over"):
        host.log(f"stale lock {text[len('taken-over '):]} taken over")
    host.noop(f"host lock held by run {run_id or RUN_ID}")


@operation(is_idempotent=False)
def release(run_id: str | None = None):
    """
    Release the host lock if this run holds it.

    + run_id: lock owner; defaults to this process's :data:`RUN_ID`

    Released when pyinfra executes; while it plans (``--dry``) nothing runs on the host.
    """
    if _planning():
        host.noop(f"host lock of run {run_id or RUN_ID} released when the deploy executes")
        return
    _run(StringCommand(release_command(run_id or RUN_ID)))
    host.noop(f"host lock of run {run_id or RUN_ID} released")
    return
    yield  # pragma: no cover - makes this function a generator, as pyinfra operations are


@operation(is_idempotent=False)
def force_release():
    """
    Remove the host lock whoever holds it (its run died, e.g. interrupted with Ctrl-C).

    Prints the holder it removed. Only for an operator who knows that run is gone. Removed when
    pyinfra executes; ``--dry`` removes nothing.
    """
    if _planning():
        host.noop("host lock removed (whoever holds it) when this executes")
        return
    ok, lines = _run(StringCommand(force_release_command()))
    host.noop(" ".join(lines).strip() or "no lock held")
    return
    yield  # pragma: no cover


class _ReleaseOnFailure(BaseStateCallback):
    """pyinfra state callback: release this run's lock on a host whose operation failed."""

    @staticmethod
    def operation_host_error(state, host, op_hash, retry_count: int = 0, max_retries: int = 0):
        if retry_count < max_retries:
            return  # pyinfra will retry the operation
        try:
            host.run_shell_command(StringCommand(release_command(RUN_ID)), _sudo=True)
        except Exception as e:  # noqa: BLE001 - never mask the operation's own error
            host.log(f"could not release the host lock: {e}")


def release_on_failure() -> None:
    """Register (once per run) the callback that releases the lock on hosts whose operation failed."""
    if not any(isinstance(h, _ReleaseOnFailure) for h in state.callback_handlers):
        state.add_callback_handler(_ReleaseOnFailure())
