"""FastAPI dependencies: settings, database session, Redis, storage, the current user and roles.

The objects live on ``app.state`` (set by :func:`order_service.main.create_app`),
so each application instance (and each test) carries its own.

Authentication: ``Authorization: Bearer <JWT>`` from ``POST /api/login/access-token``.
Missing, malformed, expired or badly signed tokens, unknown and deactivated users
all get 401 with ``WWW-Authenticate: Bearer``; a valid user without the role gets 403.
Every authenticated request counts against the per-user and the per-address rate
limit (429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from cachetools import TTLCache
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from order_service import crud, ratelimit
from order_service.core.config import Settings
from order_service.core.redis_clients import make_async_redis
from order_service.core.security import InvalidTokenError, VerifiedTokens
from order_service.models import TRANSITION_ROLES, Role, User
from order_service.storage import Storage

TOKEN_URL = "/api/login/access-token"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_settings(request: Request) -> Settings:
    """The application's :class:`Settings`."""
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    """The application's SQLAlchemy engine."""
    return request.app.state.engine


async def _close(session: Session) -> None:
    if session.in_transaction():
        await run_in_threadpool(session.close)
    else:
        session.close()


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session for the duration of the request; rolled back if not committed, then closed.

    Creating a session does no I/O (the connection is taken at the first query, in the
    route's worker thread), so this runs on the event loop and saves a thread hop per
    request. Routes end their transactions themselves; when one is left open (an error),
    closing it here is a short ROLLBACK.
    """
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        await _close(session)


async def get_autocommit_db(request: Request) -> AsyncIterator[Session]:
    """:func:`get_db` on autocommit connections: for routes that run one (atomic) statement."""
    session = request.app.state.autocommit_session_factory()
    try:
        yield session
    finally:
        await _close(session)


async def get_redis(request: Request) -> Redis:
    """The application's Redis client (connections are made lazily, per command)."""
    return request.app.state.redis


def async_redis(request: Request) -> AsyncRedis:
    """The application's asyncio Redis client for the running event loop (made on first use).

    One per loop: a uvicorn worker has one; test clients may run several, and asyncio
    connections must not cross loops.
    """
    clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRedis] = request.app.state.async_redis
    loop = asyncio.get_running_loop()
    client = clients.get(loop)
    if client is None:
        client = clients[loop] = make_async_redis(request.app.state.settings)
    return client


def rate_limiter(request: Request) -> ratelimit.RateLimiter:
    """The rate limiter of the running event loop, on :func:`async_redis`'s connection pool."""
    limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ratelimit.RateLimiter] = (
        request.app.state.rate_limiters
    )
    loop = asyncio.get_running_loop()
    limiter = limiters.get(loop)
    if limiter is None:
        limiter = limiters[loop] = ratelimit.RateLimiter(async_redis(request))
    return limiter


async def get_storage(request: Request) -> Storage:
    """The application's attachment storage (S3 or local volume)."""
    return request.app.state.storage


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_db)]
AutocommitSessionDep = Annotated[Session, Depends(get_autocommit_db)]
RedisDep = Annotated[Redis, Depends(get_redis)]
StorageDep = Annotated[Storage, Depends(get_storage)]


async def client_address_dep(request: Request) -> str:
    """:func:`client_address` as a dependency (runs on the event loop, no thread hop)."""
    return client_address(request)


def client_address(request: Request) -> str:
    """The client's IP address (behind nginx: the real client, via uvicorn's proxy headers)."""
    return request.client.host if request.client else "unknown"


def _too_many(exc: ratelimit.RateLimited) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"too many requests ({exc.scope}); retry after {exc.retry_after} s",
        headers={"Retry-After": str(exc.retry_after)},
    )


async def limit_by_address(request: Request, settings: SettingsDep) -> None:
    """Count the request against the per-address limit only (unauthenticated routes: login)."""
    try:
        await rate_limiter(request).hit(
            ratelimit.Limit("ip", client_address(request), settings.RATE_LIMIT_IP, settings.RATE_LIMIT_WINDOW_SECONDS),
        )
    except ratelimit.RateLimited as exc:
        raise _too_many(exc) from None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


@dataclass(frozen=True)
class Principal:
    """The authenticated user as the routes see it (a snapshot of the ``users`` row)."""

    id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Principal:
        """Snapshot of ``user``."""
        return cls(id=user.id, email=user.email, role=user.role, is_active=user.is_active, created_at=user.created_at)


class UserCache:
    """Per-process snapshots of users for ``AUTH_CACHE_SECONDS`` (saves a query per request).

    A :class:`cachetools.TTLCache` of at most :attr:`MAX_USERS` entries (least recently
    used evicted first) on the monotonic clock, behind a lock: the event loop reads and
    fills it, admin routes in the thread pool call :meth:`forget`. A change through this
    process's API (role, deactivation) is seen at once; other worker processes see it
    within ``AUTH_CACHE_SECONDS``. ``0`` disables the cache.
    """

    MAX_USERS = 10_000

    def __init__(self, ttl_seconds: float, timer: Callable[[], float] = time.monotonic) -> None:
        """``ttl_seconds``: lifetime of an entry; ``timer``: the clock, in seconds (tests pass their own)."""
        self.ttl_seconds = ttl_seconds
        self._entries: TTLCache[uuid.UUID, Principal] | None = (
            TTLCache(maxsize=self.MAX_USERS, ttl=ttl_seconds, timer=timer) if ttl_seconds > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, user_id: uuid.UUID) -> Principal | None:
        """The cached snapshot when it is fresh, else ``None``."""
        if self._entries is None:
            return None
        with self._lock:
            return self._entries.get(user_id)

    def put(self, principal: Principal) -> None:
        """Remember ``principal`` for ``ttl_seconds``."""
        if self._entries is not None:
            with self._lock:
                self._entries[principal.id] = principal

    def forget(self, user_id: uuid.UUID) -> None:
        """Drop ``user_id`` (after a change)."""
        if self._entries is not None:
            with self._lock:
                self._entries.pop(user_id, None)


def _load_principal(request: Request, user_id: uuid.UUID) -> Principal | None:
    with request.app.state.session_factory() as session:
        user = crud.get_user(session, user_id)
        return Principal.of(user) if user is not None else None


async def get_current_user(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The active user of the bearer token, after the rate limits; 401 / 429 otherwise.

    Runs on the event loop: the token check is CPU only, the rate-limit counters go through
    the asyncio Redis client, and only a user-cache miss takes a thread for the database.
    """
    if not token:
        raise _unauthorized("not authenticated")
    try:
        tokens: VerifiedTokens = request.app.state.verified_tokens
        claims = tokens.decode(token)
    except InvalidTokenError:
        raise _unauthorized("invalid or expired token") from None
    try:
        await rate_limiter(request).hit(
            ratelimit.Limit("user", str(claims.user_id), settings.RATE_LIMIT_USER, settings.RATE_LIMIT_WINDOW_SECONDS),
            ratelimit.Limit("ip", client_address(request), settings.RATE_LIMIT_IP, settings.RATE_LIMIT_WINDOW_SECONDS),
        )
    except ratelimit.RateLimited as exc:
        raise _too_many(exc) from None
    cache: UserCache = request.app.state.user_cache
    principal = cache.get(claims.user_id)
    if principal is None:
        principal = await run_in_threadpool(_load_principal, request, claims.user_id)
        if principal is None:
            raise _unauthorized("invalid or expired token")
        cache.put(principal)
    if not principal.is_active:
        raise _unauthorized("invalid or expired token")
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """Dependency factory: the current user when their role is one of ``roles``, else 403."""

    async def dependency(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="not allowed for your role")
        return user

    return dependency


AdminUser = Annotated[Principal, Depends(require_role(Role.admin))]
#: A user who may change an order's status (the roles of :data:`~order_service.models.TRANSITION_ROLES`).
StaffUser = Annotated[Principal, Depends(require_role(*sorted(TRANSITION_ROLES)))]
