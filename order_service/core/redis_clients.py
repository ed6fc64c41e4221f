"""The service's Redis clients, sync and asyncio, built from one set of options.

Both clients connect lazily (no I/O here), time out after ``DEPENDENCY_TIMEOUT_SECONDS``
(connect and each command) and retry a failed command twice, at most 0.5 s apart, so
readiness answers within its timeout budget instead of redis-py's default of seconds of
backoff. The sync client is used by routes in the thread pool (idempotency records,
readiness); the asyncio client by dependencies on the event loop (rate limits), one per
event loop since asyncio connections must not cross loops.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from order_service.core.config import Settings

#: Retries of a failed command and the backoff between them (seconds: 0.05 doubling, capped).
RETRIES = 2
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 0.5


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments common to :class:`redis.Redis` and :class:`redis.asyncio.Redis`.

    ``host``, ``port``, ``password`` (``None`` without ``REDIS_PASSWORD``) and the socket
    timeouts in seconds; with ``REDIS_TLS``: ``ssl`` on, the server certificate required
    (``ssl_cert_reqs="required"``, checked against ``REDIS_TLS_CA_FILE`` or the system's CAs) and its
    host name checked. The retry policy is added per client type by the factories below.
    """
    options: dict[str, Any] = {
        "host": settings.REDIS_HOST,
        "port": settings.REDIS_PORT,
        "password": settings.REDIS_PASSWORD.get_secret_value() if settings.REDIS_PASSWORD else None,
        "socket_connect_timeout": settings.DEPENDENCY_TIMEOUT_SECONDS,
        "socket_timeout": settings.DEPENDENCY_TIMEOUT_SECONDS,
    }
    if settings.REDIS_TLS:
        options.update(ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True)
        if settings.REDIS_TLS_CA_FILE:
            options["ssl_ca_certs"] = settings.REDIS_TLS_CA_FILE
    return options


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS)


def make_redis(settings: Settings) -> Redis:
    """The sync client (thread-safe connection pool), with a 30 s connection health check."""
    return Redis(**client_options(settings), health_check_interval=30, retry=Retry(_backoff(), retries=RETRIES))


def make_async_redis(settings: Settings) -> AsyncRedis:
    """An asyncio client for the running event loop (make one per loop)."""
    return AsyncRedis(**client_options(settings), retry=AsyncRetry(_backoff(), retries=RETRIES))
