"""The ASGI application: ``create_app()`` factory and the module attribute ``app``.

``app`` is built on first access (``order_service.main:app``) from the
environment's :class:`~order_service.core.config.Settings`; tests call
``create_app(settings)`` directly. Every request gets an id (the incoming
``X-Request-ID`` when it is well-formed, else a new UUID4) that is echoed in the
response header and put on every log line written while the request is handled.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from alembic.script import ScriptDirectory
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy import exc as sa_exc
from starlette.datastructures import MutableHeaders
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_service import __version__, crud, metrics
from order_service.api.deps import UserCache
from order_service.api.main import api_router
from order_service.core.config import Settings, get_settings
from order_service.core.db import make_autocommit_session_factory, make_engine, make_session_factory
from order_service.core.logging import configure_logging, request_id_var
from order_service.core.redis_clients import make_redis
from order_service.core.security import VerifiedTokens
from order_service.storage import StorageError, make_storage

logger = logging.getLogger("order_service")
access_logger = logging.getLogger("order_service.access")

REQUEST_ID_HEADER = "X-Request-ID"
#: Incoming ids must look like this (nginx's ``$request_id`` and UUIDs do); others are replaced.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:+=/-]{1,128}$")
API_PREFIX = "/api"
#: ``serve`` sets this to ``1``: freeze start-up objects out of the garbage collector.
GC_FREEZE_ENV = "ORDER_SERVICE_GC_FREEZE"
#: Methods that get their own metrics label (anything else is ``other``: labels stay bounded).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestContextMiddleware:
    """Pure ASGI middleware: request id, one access log line per request, last-resort 500.

    - Takes ``X-Request-ID`` from the request when it matches
      :data:`REQUEST_ID_PATTERN`, otherwise generates a UUID4; sets
      :data:`~order_service.core.logging.request_id_var` for the request and adds
      the header to the response (including error responses).
    - Logs ``request`` with method, path, status and duration_ms, and records the
      request in the Prometheus counter and latency histogram under its route template.
    - An exception no handler took becomes a JSON 500 ``{"detail": "internal server error"}``
      (with the traceback logged), never an HTML page or a dropped connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception("unhandled error")
            if response_started:
                raise
            status_code = 500
            response = JSONResponse(
                {"detail": "internal server error"},
                status_code=500,
                headers={REQUEST_ID_HEADER: request_id},
            )
            await response(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - started
            template = _route_template(scope)
            method = scope.get("method", "")
            labels = (method if method in KNOWN_METHODS else "other", template, str(status_code))
            metrics.HTTP_REQUESTS.labels(*labels).inc()
            metrics.HTTP_LATENCY.labels(*labels).observe(elapsed)
            access_logger.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "route": template,
                    "status": status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": scope["client"][0] if scope.get("client") else None,
                },
            )
            request_id_var.reset(token)


def _route_template(scope: Scope) -> str:
    """The full path template of the matched route (``/api/orders/{order_id}``), else ``unmatched``.

    FastAPI puts the matched route (with its path relative to its router) in
    ``scope["route"]``; the full template is the application path that matches the
    request and ends with that relative path. Resolved once per route, then cached.
    """
    route = scope.get("route")
    if route is None:
        return "unmatched"
    cache: dict[int, str] = _TEMPLATE_CACHE
    template = cache.get(id(route))
    if template is not None:
        return template
    app = scope.get("app")
    relative = getattr(route, "path", "") or ""
    path = scope.get("path", "")
    template = relative or "unmatched"
    for candidate in getattr(app, "openapi", lambda: {"paths": {}})().get("paths", {}):
        if candidate.endswith(relative) and compile_path(candidate)[0].fullmatch(path):
            template = candidate
            break
    cache[id(route)] = template
    return template


_TEMPLATE_CACHE: dict[int, str] = {}


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            try:
                candidate = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            return candidate if REQUEST_ID_PATTERN.fullmatch(candidate) else None
    return None


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 ``{"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}``; inputs are not echoed."""
    errors = [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "invalid value")),
            "type": str(error.get("type", "value_error")),
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 ``{"detail": "database unavailable"}`` when PostgreSQL cannot be reached."""
    logger.warning("database unavailable", extra={"error": type(exc).__name__})
    return JSONResponse(
        {"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "5"}
    )


async def redis_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 ``{"detail": "redis unavailable"}`` when Redis cannot be reached (idempotency needs it)."""
    logger.warning("redis unavailable", extra={"error": type(exc).__name__})
    return JSONResponse({"detail": "redis unavailable"}, status_code=503, headers={"Retry-After": "5"})


async def storage_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 ``{"detail": "storage unavailable"}`` when the attachment store fails."""
    logger.warning("storage unavailable", extra={"error": str(exc)})
    return JSONResponse({"detail": "storage unavailable"}, status_code=503, headers={"Retry-After": "5"})


def seed_admin(app: FastAPI) -> None:
    """Create the first admin (``ADMIN_EMAIL`` / ``ADMIN_PASSWORD``) when it does not exist.

    Nothing happens without ``ADMIN_PASSWORD``. Failures (database down, schema not
    migrated) are logged, not raised: the service still starts and reports not ready.
    """
    settings: Settings = app.state.settings
    if settings.ADMIN_PASSWORD is None:
        logger.info("no ADMIN_PASSWORD: no admin seeded")
        return
    try:
        with app.state.session_factory() as session:
            created = crud.ensure_admin(
                session,
                settings.ADMIN_EMAIL,
                settings.ADMIN_PASSWORD.get_secret_value(),
                settings.PASSWORD_HASH_ROUNDS,
            )
    except Exception as exc:  # noqa: BLE001 - must not stop the service
        logger.warning("could not seed the admin user", extra={"error": type(exc).__name__})
        return
    if created:
        logger.info("admin user created", extra={"email": settings.ADMIN_EMAIL})


def migration_heads() -> frozenset[str]:
    """The head revision(s) of the packaged Alembic scripts (what ``/api/ready`` expects)."""
    from order_service.entrypoint import ALEMBIC_INI  # noqa: PLC0415 - avoid an import cycle
    from alembic.config import Config  # noqa: PLC0415

    return frozenset(ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_heads())


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    logger.info(
        "order service starting",
        extra={"version": __version__, "environment": settings.ENVIRONMENT},
    )
    seed_admin(app)
    if os.environ.get(GC_FREEZE_ENV) == "1":
        # Objects alive after start-up (modules, app, routes) leave the collector's view: fewer
        # and shorter full collections, hence less tail latency. Set by ``serve`` only (a test
        # process building many apps must keep collecting them).
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        app.state.engine.dispose()
        app.state.redis.close()
        for client in list(app.state.async_redis.values()):
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - a client of another (finished) loop
                pass
        metrics.process_exiting()
        logger.info("order service stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: :func:`get_settings`, the environment).

    Configures JSON logging at ``LOG_LEVEL``, creates the database engine and
    the Redis client (both connect lazily: a missing dependency does not stop
    the app from starting or ``/api/health`` from answering) and mounts the
    routes under ``/api``.
    """
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL)

    app = FastAPI(
        title="orderops order service",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=_lifespan,
    )
    engine = make_engine(settings)
    metrics.instrument_engine(engine, settings.DB_POOL_SIZE, settings.DB_MAX_OVERFLOW)
    app.state.settings = settings
    app.state.migration_heads = migration_heads()
    app.state.storage = make_storage(settings)
    app.state.user_cache = UserCache(settings.AUTH_CACHE_SECONDS)
    app.state.verified_tokens = VerifiedTokens(settings.SECRET_KEY.get_secret_value())
    app.state.async_redis = weakref.WeakKeyDictionary()  # event loop -> redis.asyncio client
    app.state.rate_limiters = weakref.WeakKeyDictionary()  # event loop -> RateLimiter on that client
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.autocommit_session_factory = make_autocommit_session_factory(engine)
    app.state.redis = make_redis(settings)

    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    app.add_exception_handler(RequestValidationError, validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.OperationalError, database_unavailable_handler)
    app.add_exception_handler(sa_exc.TimeoutError, database_unavailable_handler)
    app.add_exception_handler(RedisError, redis_unavailable_handler)
    app.add_exception_handler(StorageError, storage_unavailable_handler)
    app.include_router(api_router, prefix=API_PREFIX)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text exposition (not under ``/api``: nginx does not expose it)."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """Build ``app`` on first access, so importing this module has no side effects."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
