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
* :func:`release` deletes the item only while ``owner`` is still the caller's token.

Both take a boto3 DynamoDB client and the environment name and raise what botocore raises; callers
map errors (deploys/aws/session.py's ``call``, the runbooks' AWS executor).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

__all__ = ["TABLE", "DEFAULT_TTL_SECONDS", "REENTERED", "Held", "ensure_table", "acquire", "release"]

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


def acquire(ddb: Any, environment: str, purpose: str, ttl_seconds: int = DEFAULT_TTL_SECONDS,
            run_id: str = "", now: int | None = None) -> str:
    """Take the lock of ``environment`` for ``ttl_seconds``; returns the owner token.

    ``run_id``: the caller's run ID; a live lock of the same run is re-entered (token
    ``REENTERED + run_id``). Raises :class:`Held` when another live run holds it.
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
    try:
        ddb.put_item(
            TableName=TABLE,
            Item={**key, "owner": {"S": token}, "run_id": {"S": run_id}, "holder": {"S": holder},
                  "expires_at": {"N": str(now + ttl_seconds)}},
            ConditionExpression="attribute_not_exists(#l) OR expires_at < :now",
            ExpressionAttributeNames={"#l": "lock"},
            ExpressionAttributeValues={":now": {"N": str(now)}})
    except ddb.exceptions.ConditionalCheckFailedException:
        item = ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
        raise Held(environment, item.get("holder", {}).get("S", "unknown")) from None
    return token


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
