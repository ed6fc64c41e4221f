"""``/api/health`` (liveness) and ``/api/ready`` (readiness)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text

from order_service.api.deps import EngineDep, RedisDep
from order_service.schemas import Health, Readiness

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: 200 ``{"status": "ok"}`` while the process serves; checks no dependency."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(engine: EngineDep, redis: RedisDep, request: Request, response: Response) -> Readiness:
    """Readiness: ``SELECT 1`` on PostgreSQL, ``PING`` on Redis, migrations at head.

    ``checks.migrations`` is ``ok`` when ``alembic_version`` holds exactly the
    head revision(s) this code ships, else ``error: at <rev>, head <rev>``.

    200 with every check ``ok``; 503 with ``status: unavailable`` and, for each
    failed dependency, the error's class name (details go to the log only).
    Each check is bounded by ``DEPENDENCY_TIMEOUT_SECONDS``.
    """
    checks: dict[str, str] = {}
    heads: frozenset[str] = request.app.state.migration_heads
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
            current = frozenset(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
        if current == heads:
            checks["migrations"] = "ok"
        else:
            checks["migrations"] = f"error: at {','.join(sorted(current)) or 'none'}, head {','.join(sorted(heads))}"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        logger.warning("readiness: database check failed", extra={"error": repr(exc)})
        if "database" in checks:
            checks["migrations"] = f"error: {type(exc).__name__}"
        else:
            checks["database"] = f"error: {type(exc).__name__}"
            checks["migrations"] = "unknown"
    try:
        redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: redis check failed", extra={"error": repr(exc)})
        checks["redis"] = f"error: {type(exc).__name__}"
    if all(value == "ok" for value in checks.values()):
        return Readiness(status="ok", checks=checks)
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="unavailable", checks=checks)
