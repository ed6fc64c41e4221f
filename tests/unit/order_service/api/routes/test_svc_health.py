"""``/api/health`` (liveness, no dependencies) and ``/api/ready`` (PostgreSQL and Redis)."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from order_service.main import create_app


def test_health_ok(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_needs_no_dependency(settings_factory: Any, closed_port: int) -> None:
    settings = settings_factory(POSTGRES_PORT=closed_port, REDIS_PORT=closed_port)
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_ok_when_both_reachable(client: TestClient) -> None:
    response = client.get("/api/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "redis": "ok"}}


def _ready(settings: Any) -> tuple[int, dict[str, Any], float]:
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        response = client.get("/api/ready")
        return response.status_code, response.json(), time.monotonic() - started


def test_ready_503_when_redis_unreachable(settings_factory: Any, closed_port: int) -> None:
    status, body, elapsed = _ready(settings_factory(REDIS_PORT=closed_port))
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "error: ConnectionError"
    assert elapsed < 5


def test_ready_503_when_database_unreachable(settings_factory: Any, closed_port: int) -> None:
    status, body, elapsed = _ready(settings_factory(POSTGRES_PORT=closed_port))
    assert status == 503
    assert body["checks"]["database"] == "error: OperationalError"
    assert body["checks"]["redis"] == "ok"
    assert elapsed < 5


def test_ready_503_when_both_unreachable(settings_factory: Any, closed_port: int) -> None:
    status, body, _ = _ready(settings_factory(POSTGRES_PORT=closed_port, REDIS_PORT=closed_port))
    assert status == 503
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["redis"].startswith("error")


def test_ready_503_when_credentials_wrong(settings_factory: Any) -> None:
    status, body, _ = _ready(
        settings_factory(REDIS_PASSWORD="wrong-password-for-redis", POSTGRES_PASSWORD="wrong-password-for-pg")
    )
    assert status == 503
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["redis"].startswith("error")
    assert "wrong-password" not in str(body)
