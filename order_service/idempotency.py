"""``Idempotency-Key`` for ``POST /api/orders``, stored in Redis.

Record ``idem:<user id>:<sha256(key)>`` (keys are scoped per user) holds JSON:

- ``{"state": "in_flight", "fingerprint": ...}`` while the first request runs
  (expires after :data:`IN_FLIGHT_TTL_SECONDS`, so a crashed worker frees it);
- ``{"state": "done", "fingerprint": ..., "status": 201, "body": ..., "headers": {...}}``
  afterwards, for ``IDEMPOTENCY_TTL_SECONDS`` (default 24 h).

A retry with the same key and the same body gets the stored answer again; the same
key with another body is refused (422); a retry while the first is still running
is refused (409).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis

IN_FLIGHT_TTL_SECONDS = 60
#: Accepted keys: 1..255 visible ASCII characters (UUIDs, ULIDs, random tokens).
KEY_MAX_LENGTH = 255


def fingerprint(payload: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``payload`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def valid_key(key: str) -> bool:
    """``True`` for 1..255 printable ASCII characters without spaces."""
    return 0 < len(key) <= KEY_MAX_LENGTH and all(33 <= ord(char) <= 126 for char in key)


@dataclass(frozen=True)
class Stored:
    """A finished first answer."""

    status: int
    body: Any
    headers: dict[str, str]


class KeyReusedError(Exception):
    """The key was used with a different request body (answer 422)."""


class InFlightError(Exception):
    """The first request with this key is still running (answer 409)."""


class IdempotencyStore:
    """Claims, completes and releases idempotency records for one user."""

    def __init__(self, redis: Redis, user_id: uuid.UUID, key: str, ttl_seconds: int) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        self.redis = redis
        self.redis_key = f"idem:{user_id}:{digest}"
        self.ttl_seconds = ttl_seconds

    def claim(self, request_fingerprint: str) -> Stored | None:
        """Claim the key for this request; ``None`` when claimed (go ahead).

        Returns the stored answer for a finished identical request; raises
        :class:`KeyReusedError` (other body) or :class:`InFlightError` (still running).
        """
        record = json.dumps({"state": "in_flight", "fingerprint": request_fingerprint})
        if self.redis.set(self.redis_key, record, nx=True, ex=IN_FLIGHT_TTL_SECONDS):
            return None
        raw = self.redis.get(self.redis_key)
        if raw is None:  # expired between SET and GET: try once more
            if self.redis.set(self.redis_key, record, nx=True, ex=IN_FLIGHT_TTL_SECONDS):
                return None
            raise InFlightError
        existing = json.loads(raw)
        if existing.get("fingerprint") != request_fingerprint:
            raise KeyReusedError
        if existing.get("state") != "done":
            raise InFlightError
        return Stored(status=int(existing["status"]), body=existing["body"], headers=dict(existing["headers"]))

    def complete(self, request_fingerprint: str, answer: Stored) -> None:
        """Store the first answer for ``IDEMPOTENCY_TTL_SECONDS``."""
        record = {
            "state": "done",
            "fingerprint": request_fingerprint,
            "status": answer.status,
            "body": answer.body,
            "headers": answer.headers,
        }
        self.redis.set(self.redis_key, json.dumps(record), ex=self.ttl_seconds)

    def release(self) -> None:
        """Forget the in-flight claim (the request failed; a retry may run again)."""
        self.redis.delete(self.redis_key)
