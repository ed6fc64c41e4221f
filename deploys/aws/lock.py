"""The environment lock of ``orderops-aws``: the DynamoDB protocol of :mod:`deploys.contract.aws_lock`.

The SSH layouts lock a host (``flock`` on the host); an AWS environment has no host, so a run holds
one DynamoDB item written with a condition (see the contract module: atomic, expiring after
``ttl_seconds`` when its run died, re-entrant for the run in ``$ORDEROPS_RUN_ID`` so a runbook that
holds the lock can run ``orderops-aws rollback``). Errors are mapped here: :class:`LockHeld` for a
lock another run holds, :class:`AwsCallError` for any other failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from deploys.aws.errors import AwsCallError, LockHeld
from deploys.aws.session import AwsSession
from deploys.contract import aws_lock
from deploys.contract.aws_lock import DEFAULT_TTL_SECONDS, TABLE
from deploys.contract.lock import RUN_ID_ENV

__all__ = ["TABLE", "environment_lock", "acquire", "release", "break_lock"]


def acquire(aws: AwsSession, purpose: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
    """Take the lock; returns the owner token. Raises :class:`LockHeld` with the holder's record."""
    try:
        return aws_lock.acquire(aws.client("dynamodb"), aws.settings.name, purpose, ttl_seconds,
                                run_id=os.environ.get(RUN_ID_ENV, ""))
    except aws_lock.Held as held:
        raise LockHeld(f"{TABLE}/{aws.settings.name}", held.holder) from None
    except Exception as exc:  # noqa: BLE001 - map every botocore failure in one place
        raise AwsCallError("dynamodb", "PutItem", type(exc).__name__, str(exc)) from None


def break_lock(aws: AwsSession) -> str | None:
    """Delete the environment's lock whoever holds it (``orderops-aws unlock --yes``); returns the
    removed holder's record, or ``None`` when the environment was not locked."""
    try:
        return aws_lock.break_lock(aws.client("dynamodb"), aws.settings.name)
    except Exception as exc:  # noqa: BLE001
        raise AwsCallError("dynamodb", "DeleteItem", type(exc).__name__, str(exc)) from None


def release(aws: AwsSession, token: str) -> bool:
    """Delete the lock item if ``token`` still owns it; returns whether it did."""
    try:
        return aws_lock.release(aws.client("dynamodb"), aws.settings.name, token)
    except Exception as exc:  # noqa: BLE001
        raise AwsCallError("dynamodb", "DeleteItem", type(exc).__name__, str(exc)) from None


@contextmanager
def environment_lock(aws: AwsSession, purpose: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> Iterator[str]:
    """Hold the environment lock for the ``with`` block (released however the block ends)."""
    token = acquire(aws, purpose, ttl_seconds)
    try:
        yield token
    finally:
        release(aws, token)
