"""Fixed-window rate limiting in Redis, per user and per client address.

A request counts against ``rl:<scope>:<subject>:<window start>`` (``INCR`` plus
``EXPIRE`` in one pipeline, a single round trip). Over the limit the API answers
429 with ``Retry-After`` (seconds until the window ends). When Redis is
unreachable the limiter lets requests through (logged): losing the limiter must
not take the API down with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` per ``window_seconds`` for ``subject`` in ``scope`` (``ip`` or ``user``)."""

    scope: str
    subject: str
    requests: int
    window_seconds: int


class RateLimited(Exception):  # noqa: N818 - reads as a state, like HTTP's "Too Many Requests"
    """Raised by :func:`hit` when a limit is exceeded; ``retry_after`` is in whole seconds (>= 1)."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded ({scope})")
        self.scope = scope
        self.retry_after = retry_after


def _keys(limits: tuple[Limit, ...], now: float) -> list[tuple[Limit, int, str]]:
    return [
        (limit, int(now // limit.window_seconds), f"rl:{limit.scope}:{limit.subject}:{int(now // limit.window_seconds)}")
        for limit in limits
        if limit.requests > 0
    ]


def _check(keyed: list[tuple[Limit, int, str]], results: list[object], now: float) -> None:
    for index, (limit, window, _key) in enumerate(keyed):
        count = int(results[2 * index])  # type: ignore[call-overload]
        if count > limit.requests:
            retry_after = max(1, int((window + 1) * limit.window_seconds - now + 0.999))
            raise RateLimited(limit.scope, retry_after)


async def hit_async(redis: AsyncRedis, *limits: Limit, now: float | None = None) -> None:
    """:func:`hit` for the event loop (``redis.asyncio`` client): same keys, same answers."""
    now = time.time() if now is None else now
    keyed = _keys(limits, now)
    if not keyed:
        return
    pipe = redis.pipeline(transaction=False)
    for limit, _window, key in keyed:
        pipe.incr(key)
        pipe.expire(key, limit.window_seconds + 1)
    try:
        results = await pipe.execute()
    except (RedisError, OSError) as exc:
        logger.warning("rate limiter unavailable, request allowed", extra={"error": type(exc).__name__})
        return
    _check(keyed, results, now)


def hit(redis: Redis, *limits: Limit, now: float | None = None) -> None:
    """Count one request against every limit (one Redis round trip); raise :class:`RateLimited`.

    Limits with ``requests == 0`` are disabled and not counted.
    """
    active = [limit for limit in limits if limit.requests > 0]
    if not active:
        return
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    keys = []
    for limit in active:
        window = int(now // limit.window_seconds)
        key = f"rl:{limit.scope}:{limit.subject}:{window}"
        keys.append((limit, window))
        pipe.incr(key)
        pipe.expire(key, limit.window_seconds + 1)
    try:
        results = pipe.execute()
    except RedisError as exc:
        logger.warning("rate limiter unavailable, request allowed", extra={"error": type(exc).__name__})
        return
    for index, (limit, window) in enumerate(keys):
        count = int(results[2 * index])
        if count > limit.requests:
            retry_after = max(1, int((window + 1) * limit.window_seconds - now + 0.999))
            raise RateLimited(limit.scope, retry_after)
