"""The AWS environment lock protocol, shared by ``orderops-aws`` (deploys/aws/lock.py) and the runbooks.

An AWS environment has no host to ``flock``: a run holds the DynamoDB item ``{"lock": <environment>}``
of the table :data:`TABLE` (created on first use, on-demand billing). Item attributes: ``owner`` (a
random token), ``run_id`` (the run's ID, :data:`deploys.contract.lock.RUN_ID_ENV`, or empty),
``holder`` (JSON: purpose, machine, pid, since) and ``expires_at`` (epoch seconds).

* :func:`acquire` puts the item only when none exists or the existing one has expired
  (``attribute_not_exists(#l) OR expires_at < :now``): atomic, so two runs can never both hold it,
  and a run that died frees the environment after its TTL. When the existing, live item carries the
  caller's ``run_id`` the lock is re-entered (``orderops-aws rollback`` started by a runbook that
  holds the lock): :data:`REENTERED` prefixes the returned token and :func:`release` leaves the
  item to its outer holder.
* A live item whose holder ran on this machine (``host`` equals :func:`socket.gethostname`) under a
  pid that no longer exists is a killed run's: :func:`acquire` takes it over (a put conditioned on
  the dead holder's ``owner``, so two runs cannot both take it) and reports the old holder through
  ``warn``. A holder on another machine, or whose pid is alive, keeps the lock.
* :func:`release` deletes the item only while ``owner`` is still the caller's token.
* :func:`break_lock` deletes the item whoever holds it (``orderops-aws unlock --yes``: an operator
  who knows the holder's run is gone).

Both take a boto3 DynamoDB client and the environment name and raise what botocore raises; callers
map errors (deploys/aws/session.py's ``call``, the runbooks' AWS executor).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["TABLE", "DEFAULT_TTL_SECONDS", "REENTERED", "Held", "ensure_table", "acquire", "release",
           "break_lock", "holder_is_dead_here"]

#: DynamoDB table holding one lock item per environment.
TABLE = "orderops-locks"
#: Seconds after which a lock whose run died stops counting.
DEFAULT_TTL_SECONDS = 3600
#: Prefix of the token :func:`acquire` returns when it re-entered the run's own lock.
REENTERED = "reentered:"


class Held(Exception):
    """The lock belongs to another live run; ``holder`` is its JSON record (or ``unknown``)."""

    def __init__(self, environment: str, holder: str):
        self.environment, self.holder = environment, holder
        super().__init__(f"environment lock {TABLE}/{environment} is held: {holder}")


def ensure_table(ddb: Any, wait: dict[str, Any] | None = None) -> None:
    """Create :data:`TABLE` if it is missing and wait until it exists (``wait``: waiter kwargs)."""
    try:
        ddb.describe_table(TableName=TABLE)
        return
    except ddb.exceptions.ResourceNotFoundException:
        pass
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "lock", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "lock", "KeyType": "HASH"}])
    ddb.get_waiter("table_exists").wait(TableName=TABLE, **(wait or {}))


def holder_is_dead_here(holder: str) -> bool:
    """True when the JSON ``holder`` record names this machine's host name and a pid that no longer
    exists (``os.kill(pid, 0)`` raises ``ProcessLookupError``); False for anything else, including
    an unreadable record."""
    try:
        record = json.loads(holder)
        pid = int(record["pid"])
        if record.get("host") != socket.gethostname() or pid <= 0:
            return False
    except (ValueError, TypeError, KeyError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def acquire(ddb: Any, environment: str, purpose: str, ttl_seconds: int = DEFAULT_TTL_SECONDS,
            run_id: str = "", now: int | None = None, warn: Callable[[str], None] | None = None) -> str:
    """Take the lock of ``environment`` for ``ttl_seconds``; returns the owner token.

    ``run_id``: the caller's run ID; a live lock of the same run is re-entered (token
    ``REENTERED + run_id``). A lock whose holder ran on this machine under a pid that is gone is
    taken over, and ``warn`` (default: a line on stderr) gets a line naming the old holder.
    Raises :class:`Held` when another live run holds it.
    """
    ensure_table(ddb)
    now = int(time.time()) if now is None else now
    key = {"lock": {"S": environment}}
    if run_id:
        item = ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
        if item.get("run_id", {}).get("S") == run_id and int(item.get("expires_at", {}).get("N", "0")) >= now:
            return REENTERED + run_id
    token = uuid.uuid4().hex
    holder = json.dumps({"purpose": purpose, "host": socket.gethostname(), "pid": os.getpid(), "since": now,
                         "run_id": run_id})
    item = {**key, "owner": {"S": token}, "run_id": {"S": run_id}, "holder": {"S": holder},
            "expires_at": {"N": str(now + ttl_seconds)}}
    try:
        ddb.put_item(
            TableName=TABLE, Item=item,
            ConditionExpression="attribute_not_exists(#l) OR expires_at < :now",
            ExpressionAttributeNames={"#l": "lock"},
            ExpressionAttributeValues={":now": {"N": str(now)}})
    except ddb.exceptions.ConditionalCheckFailedException:
        held = ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
        old = held.get("holder", {}).get("S", "unknown")
        old_owner = held.get("owner", {}).get("S")
        if not (old_owner and holder_is_dead_here(old)):
            raise Held(environment, old) from None
        try:  # only if the dead holder still owns it: two runs cannot both take it over
            ddb.put_item(TableName=TABLE, Item=item, ConditionExpression="#o = :o",
                         ExpressionAttributeNames={"#o": "owner"},
                         ExpressionAttributeValues={":o": {"S": old_owner}})
        except ddb.exceptions.ConditionalCheckFailedException:
            now_item = ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
            raise Held(environment, now_item.get("holder", {}).get("S", "unknown")) from None
        (warn or _stderr)(f"environment lock {TABLE}/{environment}: took over the lock of a run that "
                          f"died on this machine (its pid is gone): {old}")
    return token


def break_lock(ddb: Any, environment: str) -> str | None:
    """Delete the lock item of ``environment`` whoever holds it; returns the holder record it
    removed, or ``None`` when there was none."""
    ensure_table(ddb)
    gone = ddb.delete_item(TableName=TABLE, Key={"lock": {"S": environment}}, ReturnValues="ALL_OLD")
    attrs = gone.get("Attributes")
    return attrs.get("holder", {}).get("S", "unknown") if attrs else None


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def release(ddb: Any, environment: str, token: str) -> bool:
    """Delete the lock item if ``token`` still owns it; returns whether it did (a re-entered token
    releases nothing and returns ``True``: the outer holder releases)."""
    if token.startswith(REENTERED):
        return True
    try:
        ddb.delete_item(TableName=TABLE, Key={"lock": {"S": environment}},
                        ConditionExpression="#o = :t", ExpressionAttributeNames={"#o": "owner"},
                        ExpressionAttributeValues={":t": {"S": token}})
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True
