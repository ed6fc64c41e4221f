"""Property-based API test: schemathesis generates requests from the service's own OpenAPI schema
(valid and invalid bodies, parameters and headers for every operation) and sends them, with an
admin token, to the app on the real test PostgreSQL and Redis. No answer may be a server error.

Bounded (``MAX_EXAMPLES`` per operation) so the service tests stay fast; raise it locally with
``ORDEROPS_SCHEMATHESIS_EXAMPLES=500`` for a deeper run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from order_service.core.config import Settings
from order_service.main import create_app
from tests.unit.order_service.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings

MAX_EXAMPLES = int(os.environ.get("ORDEROPS_SCHEMATHESIS_EXAMPLES", "15"))


class _Forward:
    """ASGI app forwarding to ``target``: the schema is loaded at import (from an app with default
    settings, which connects to nothing), the requests go to the app on the test servers."""

    def __init__(self) -> None:
        self.target: Any = create_app(Settings(_env_file=None))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


_forward = _Forward()
schema = schemathesis.openapi.from_asgi("/api/openapi.json", _forward)


@pytest.fixture(scope="module")
def running_app(pg_server: Any, service_redis_proc: Any, migrated_db: str) -> Iterator[tuple[Any, dict[str, str]]]:
    """The app on the test servers (lifespan running, admin seeded) and an admin bearer header."""
    app = create_app(make_settings(pg_server, service_redis_proc.port, RATE_LIMIT_USER=0, RATE_LIMIT_IP=0))
    with TestClient(app) as client:
        _forward.target = app
        yield app, login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: Any, running_app: tuple[Any, dict[str, str]]) -> None:
    _, admin_headers = running_app
    headers = dict(case.headers or {})
    headers["Authorization"] = admin_headers["Authorization"]
    response = case.call(headers=headers)
    if os.environ.get("ORDEROPS_SCHEMATHESIS_TRACE"):
        print("TRACE", case.method, case.path, response.status_code)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
