"""A per-host lock, so two runs (deploys, later runbooks) never change one host at once.

The lock is a small file on the host, ``/var/lib/orderops/host.lock``, holding
``<run id> <expiry epoch> <holder>``; it is taken and released under ``flock(1)`` so two
controllers racing for it cannot both win. A run may re-take its own lock (pyinfra evaluates
operations once to plan and once to execute). A lock whose expiry has passed is stale (its run
died) and is taken over with a warning.

Taking and releasing the lock is bookkeeping, not a change to the host's configuration: both
operations run their command directly and report through ``host.noop``, so an otherwise
converged host still reports zero changes.

When another live run holds the lock, :func:`acquire` fails on that host with the holder's name
and expiry. :func:`release_on_failure` registers a pyinfra callback that releases this run's lock
on a host as soon as an operation fails there, so a failed run does not block the next one.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid

from pyinfra import host, state
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.state import BaseStateCallback

from deploys.operations.errors import fail

__all__ = ["RUN_ID", "acquire", "release", "force_release", "release_on_failure", "acquire_script", "release_script"]

LOCK_DIR = "/var/lib/orderops"
LOCK_FILE = f"{LOCK_DIR}/host.lock"

#: This process's run ID (one pyinfra run or one runbook run); ``ORDEROPS_RUN_ID`` overrides.
RUN_ID = os.environ.get("ORDEROPS_RUN_ID") or uuid.uuid4().hex[:12]

#: Exit code of the lock script when another run holds the lock (EX_TEMPFAIL).
LOCKED_EXIT = 75


def holder() -> str:
    """``user@controller-host`` of this process, recorded in the lock for the operator."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def acquire_script(run_id: str, ttl: int, who: str, now: int | None = None, lock_dir: str = LOCK_DIR) -> StringCommand:
    """Shell command that takes the lock for ``run_id`` for ``ttl`` seconds.

    Prints ``acquired``, ``renewed`` (own lock) or ``taken-over <old holder>`` (stale lock)
    and exits 0, or prints the holder and exits :data:`LOCKED_EXIT`.
    """
    expiry = (now if now is not None else int(time.time())) + ttl
    lock_file = f"{lock_dir}/host.lock"
    body = (
        f'set -e; mkdir -p {lock_dir}; exec 9>{lock_dir}/.host.lock.guard; flock -w 30 9; '
        f'if [ -s {lock_file} ]; then read -r rid exp who < {lock_file} || true; '
        f'if [ "$rid" = "$1" ]; then state=renewed; '
        f'elif [ "${{exp:-0}}" -lt "$(date +%s)" ]; then state="taken-over $who (run $rid)"; '
        f'else echo "locked by $who (run $rid) until $(date -u -d @$exp +%FT%TZ)"; exit {LOCKED_EXIT}; fi; '
        f'else state=acquired; fi; '
        f'printf "%s %s %s\\n" "$1" "$2" "$3" > {lock_file}.new; mv {lock_file}.new {lock_file}; echo "$state"'
    )
    return StringCommand(
        "sh", "-c", QuoteString(body), "orderops-lock", QuoteString(run_id), str(expiry), QuoteString(who),
    )


def release_script(run_id: str, lock_dir: str = LOCK_DIR) -> StringCommand:
    """Shell command that removes the lock if ``run_id`` holds it; prints ``released`` or ``not-held``."""
    lock_file = f"{lock_dir}/host.lock"
    body = (
        f'mkdir -p {lock_dir}; exec 9>{lock_dir}/.host.lock.guard; flock -w 30 9; '
        f'if [ -s {lock_file} ] && read -r rid rest < {lock_file} && [ "$rid" = "$1" ]; '
        f'then rm -f {lock_file}; echo released; else echo not-held; fi'
    )
    return StringCommand("sh", "-c", QuoteString(body), "orderops-lock", QuoteString(run_id))


def _run(command: StringCommand) -> tuple[bool, list[str]]:
    ok, output = host.run_shell_command(command, _sudo=True)
    return ok, [line for line in output.stdout_lines] + [line for line in output.stderr_lines]


@operation(is_idempotent=False)
def acquire(ttl: int = 3600, run_id: str | None = None):
    """
    Take the host lock for this run (re-entrant), or fail naming who holds it.

    + ttl: seconds after which the lock counts as stale if this run never releases it
    + run_id: lock owner; defaults to this process's :data:`RUN_ID`
    """
    ok, lines = _run(acquire_script(run_id or RUN_ID, ttl, holder()))
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
    """
    _run(release_script(run_id or RUN_ID))
    host.noop(f"host lock of run {run_id or RUN_ID} released")
    return
    yield  # pragma: no cover - makes this function a generator, as pyinfra operations are


@operation(is_idempotent=False)
def force_release():
    """
    Remove the host lock whoever holds it (its run died, e.g. interrupted with Ctrl-C).

    Prints the holder it removed. Only for an operator who knows that run is gone.
    """
    lock_file = LOCK_FILE
    ok, lines = _run(StringCommand(
        "sh", "-c", QuoteString(
            f'exec 9>{LOCK_DIR}/.host.lock.guard 2>/dev/null || exit 0; flock -w 30 9; '
            f'if [ -s {lock_file} ]; then echo "removed lock of $(cat {lock_file})"; rm -f {lock_file}; '
            'else echo "no lock held"; fi'),
    ))
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
            host.run_shell_command(release_script(RUN_ID), _sudo=True)
        except Exception as e:  # noqa: BLE001 - never mask the operation's own error
            host.log(f"could not release the host lock: {e}")


def release_on_failure() -> None:
    """Register (once per run) the callback that releases the lock on hosts whose operation failed."""
    if not any(isinstance(h, _ReleaseOnFailure) for h in state.callback_handlers):
        state.add_callback_handler(_ReleaseOnFailure())
