"""Fixed-window rate limiting in Redis, per user and per client address, with :pypi:`limits`.

Each :class:`Limit` is a ``limits`` fixed window (``FixedWindowRateLimiter`` on the asyncio
Redis storage, redis-py implementation): the first request of a subject starts a window of
``window_seconds``, each request increments the subject's counter (one Lua ``INCR`` +
``EXPIRE`` round trip per limit, the limits run concurrently), and over ``requests`` the API
answers 429 with ``Retry-After`` (seconds until the window ends, from the counter's TTL).
Keys are ``rl:LIMITER/<scope>/<subject>/<requests>/<window_seconds>/second``.

When Redis is unreachable the limiter lets requests through (logged): losing the limiter
must not take the API down with it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

#: Prefix of every rate-limit key in Redis.
KEY_PREFIX = "rl"


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` per ``window_seconds`` for ``subject`` in ``scope`` (``ip`` or ``user``).

    ``requests == 0`` disables the limit (nothing is counted).
    """

    scope: str
    subject: str
    requests: int
    window_seconds: int


class RateLimited(Exception):  # noqa: N818 - reads as a state, like HTTP's "Too Many Requests"
    """Raised by :meth:`RateLimiter.hit` when a limit is exceeded; ``retry_after`` is in whole seconds (>= 1)."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded ({scope})")
        self.scope = scope
        self.retry_after = retry_after


class RateLimiter:
    """Counts requests against :class:`Limit` s in Redis, through the connection pool of ``redis``.

    Bound to the event loop of ``redis`` (an asyncio client): make one per loop.
    """

    def __init__(self, redis: AsyncRedis) -> None:
        storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=KEY_PREFIX,
            connection_pool=redis.connection_pool,
        )
        self._strategy = FixedWindowRateLimiter(storage)
        self._items: dict[tuple[int, int], RateLimitItem] = {}

    def _item(self, limit: Limit) -> RateLimitItem:
        key = (limit.requests, limit.window_seconds)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = RateLimitItemPerSecond(limit.requests, limit.window_seconds)
        return item

    async def hit(self, *limits: Limit) -> None:
        """Count one request against every active limit; raise :class:`RateLimited` for the first exceeded.

        Redis errors (and socket errors) are logged and the request is allowed.
        """
        active = [(limit, self._item(limit)) for limit in limits if limit.requests > 0]
        if not active:
            return
        try:
            allowed = await asyncio.gather(
                *(self._strategy.hit(item, limit.scope, limit.subject) for limit, item in active)
            )
            for (limit, item), ok in zip(active, allowed, strict=True):
                if not ok:
                    stats = await self._strategy.get_window_stats(item, limit.scope, limit.subject)
                    raise RateLimited(limit.scope, max(1, math.ceil(stats.reset_time - time.time())))
        except (RedisError, OSError) as exc:
            logger.warning("rate limiter unavailable, request allowed", extra={"error": type(exc).__name__})
