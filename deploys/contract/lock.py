"""The per-host lock protocol, shared by the deploy (deploys/operations/lock.py) and the runbook engine.

The lock is :data:`~deploys.contract.paths.LOCK_FILE`, holding one line
``<run id> <expiry epoch> <holder>``, written and removed only under ``flock(1)`` on
:data:`~deploys.contract.paths.LOCK_GUARD`, so two controllers racing for it cannot both win.

* :func:`acquire_command` takes it for a run: prints ``acquired``, ``renewed`` (the run's own
  lock: re-entrant) or ``taken-over <holder> (run <id>)`` (expired: its run died) and exits 0;
  or prints ``locked by <holder> (run <id>) until <UTC time>`` and exits :data:`LOCKED_EXIT`.
* :func:`release_command` removes it if the run holds it: prints ``released`` or ``not-held``.
* :func:`force_release_command` removes it whoever holds it (operator, after a dead run).

A run's ID is exported to child processes as ``$ORDEROPS_RUN_ID`` (:data:`RUN_ID_ENV`), so a
deploy started by a runbook re-enters the runbook's lock instead of failing on it.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import time

from deploys.contract.paths import LOCK_GUARD_NAME, LOCK_NAME, STATE_DIR

__all__ = [
    "LOCKED_EXIT", "RUN_ID_ENV", "SCRIPT_NAME", "holder", "acquire_command", "release_command", "force_release_command",
]

#: Exit code of :func:`acquire_command` when another live run holds the lock (EX_TEMPFAIL, sysexits.h).
LOCKED_EXIT = 75
#: Environment variable carrying the run ID to child processes (a runbook's deploys).
RUN_ID_ENV = "ORDEROPS_RUN_ID"
#: ``$0`` of the lock scripts: what a process list (and the fake executor) shows.
SCRIPT_NAME = "orderops-lock"
#: Seconds to wait for the guard before giving up.
_GUARD_WAIT = 30


def holder() -> str:
    """``user@machine`` of this process, recorded in the lock for the operator."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _sh(body: str, *args: str) -> str:
    return shlex.join(["sh", "-c", body, SCRIPT_NAME, *args])


def acquire_command(run_id: str, ttl: int, who: str, now: int | None = None, lock_dir: str = STATE_DIR) -> str:
    """Shell command that takes the lock for ``run_id`` for ``ttl`` seconds (from ``now``, epoch seconds).

    Output and exit codes as in the module docstring. Runs as root (``sudo``); ``lock_dir`` is
    the directory of the lock (tests run the protocol in a temporary one).
    """
    expiry = (int(time.time()) if now is None else now) + ttl
    lock_file, guard = f"{lock_dir}/{LOCK_NAME}", f"{lock_dir}/{LOCK_GUARD_NAME}"
    body = (
        f'set -e; mkdir -p {lock_dir}; exec 9>{guard}; flock -w {_GUARD_WAIT} 9; '
        f'if [ -s {lock_file} ]; then read -r rid exp who < {lock_file} || true; '
        f'if [ "$rid" = "$1" ]; then state=renewed; '
        f'elif [ "${{exp:-0}}" -lt "$(date +%s)" ]; then state="taken-over $who (run $rid)"; '
        f'else echo "locked by $who (run $rid) until $(date -u -d @$exp +%FT%TZ)"; exit {LOCKED_EXIT}; fi; '
        f'else state=acquired; fi; '
        f'printf "%s %s %s\\n" "$1" "$2" "$3" > {lock_file}.new; mv {lock_file}.new {lock_file}; echo "$state"'
    )
    return _sh(body, run_id, str(expiry), who)


def release_command(run_id: str, lock_dir: str = STATE_DIR) -> str:
    """Shell command that removes the lock if ``run_id`` holds it; prints ``released`` or ``not-held``."""
    lock_file, guard = f"{lock_dir}/{LOCK_NAME}", f"{lock_dir}/{LOCK_GUARD_NAME}"
    body = (
        f'mkdir -p {lock_dir}; exec 9>{guard}; flock -w {_GUARD_WAIT} 9; '
        f'if [ -s {lock_file} ] && read -r rid rest < {lock_file} && [ "$rid" = "$1" ]; '
        f'then rm -f {lock_file}; echo released; else echo not-held; fi'
    )
    return _sh(body, run_id)


def force_release_command(lock_dir: str = STATE_DIR) -> str:
    """Shell command that removes the lock whoever holds it; prints ``removed lock of <line>`` or ``no lock held``."""
    lock_file, guard = f"{lock_dir}/{LOCK_NAME}", f"{lock_dir}/{LOCK_GUARD_NAME}"
    body = (
        f'exec 9>{guard} 2>/dev/null || exit 0; flock -w {_GUARD_WAIT} 9; '
        f'if [ -s {lock_file} ]; then echo "removed lock of $(cat {lock_file})"; rm -f {lock_file}; '
        'else echo "no lock held"; fi'
    )
    return _sh(body)
