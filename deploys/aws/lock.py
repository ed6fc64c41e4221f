"""The environment lock of the AWS layout: one DynamoDB item written with a condition.

The SSH layouts lock a host (``flock`` on the host); an AWS environment has no host, so a run holds
the item ``{"lock": <environment>}`` of the table :data:`TABLE` (created on first use, on-demand
billing). The put succeeds only when no item exists or the existing one has expired
(``attribute_not_exists(#l) OR expires_at < :now``): atomic, so two runs can never both hold it,
and a run that died frees the environment after ``ttl_seconds``. Release deletes the item only
while it is still ours (condition on the owner token).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from deploys.aws.errors import AwsCallError, LockHeld
from deploys.aws.session import AwsSession, call

__all__ = ["TABLE", "environment_lock", "acquire", "release"]

#: DynamoDB table holding one lock item per environment.
TABLE = "orderops-locks"
DEFAULT_TTL_SECONDS = 3600


def _ensure_table(aws: AwsSession) -> None:
    ddb = aws.client("dynamodb")
    try:
        ddb.describe_table(TableName=TABLE)
        return
    except ddb.exceptions.ResourceNotFoundException:
        pass
    call("dynamodb", "CreateTable", ddb.create_table, TableName=TABLE, BillingMode="PAY_PER_REQUEST",
         AttributeDefinitions=[{"AttributeName": "lock", "AttributeType": "S"}],
         KeySchema=[{"AttributeName": "lock", "KeyType": "HASH"}])
    call("dynamodb", "Wait", ddb.get_waiter("table_exists").wait, TableName=TABLE)


def acquire(aws: AwsSession, purpose: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
    """Take the lock; returns the owner token. Raises :class:`LockHeld` with the holder's record."""
    _ensure_table(aws)
    ddb = aws.client("dynamodb")
    token = uuid.uuid4().hex
    now = int(time.time())
    holder = json.dumps({"purpose": purpose, "host": socket.gethostname(), "pid": os.getpid(), "since": now})
    try:
        ddb.put_item(
            TableName=TABLE,
            Item={"lock": {"S": aws.settings.name}, "owner": {"S": token}, "holder": {"S": holder},
                  "expires_at": {"N": str(now + ttl_seconds)}},
            ConditionExpression="attribute_not_exists(#l) OR expires_at < :now",
            ExpressionAttributeNames={"#l": "lock"},
            ExpressionAttributeValues={":now": {"N": str(now)}})
    except ddb.exceptions.ConditionalCheckFailedException:
        item = ddb.get_item(TableName=TABLE, Key={"lock": {"S": aws.settings.name}}).get("Item", {})
        raise LockHeld(f"{TABLE}/{aws.settings.name}", item.get("holder", {}).get("S", "unknown")) from None
    except Exception as exc:  # noqa: BLE001 - map every botocore failure in one place
        raise AwsCallError("dynamodb", "PutItem", type(exc).__name__, str(exc)) from None
    return token


def release(aws: AwsSession, token: str) -> bool:
    """Delete the lock item if ``token`` still owns it; returns whether it did."""
    ddb = aws.client("dynamodb")
    try:
        ddb.delete_item(TableName=TABLE, Key={"lock": {"S": aws.settings.name}},
                        ConditionExpression="#o = :t", ExpressionAttributeNames={"#o": "owner"},
                        ExpressionAttributeValues={":t": {"S": token}})
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


@contextmanager
def environment_lock(aws: AwsSession, purpose: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> Iterator[str]:
    """Hold the environment lock for the ``with`` block (released however the block ends)."""
    token = acquire(aws, purpose, ttl_seconds)
    try:
        yield token
    finally:
        release(aws, token)
