"""Fixtures of the order-service tests: a real PostgreSQL and a real Redis per test session.

- Redis: the pytest-redis plugin's ``redis_proc`` factory on Debian's
  ``/usr/bin/redis-server``, with a password (as in production).
- PostgreSQL: a small initdb + postgres fixture on Debian's
  ``/usr/lib/postgresql/15/bin``. The pytest-postgresql plugin cannot be used
  here: its process fixture runs initdb/pg_ctl as the current user, and this
  project's machines (and CI) run as root, which PostgreSQL refuses. This fixture
  runs the server as the ``postgres`` (or ``nobody``) user when started as root,
  with password (scram) authentication, as in production.
  The database is created by the service's own migration command (Alembic
  under the advisory lock), which is what the tests then exercise.

Override the binaries with ``ORDEROPS_TEST_PG_BIN`` / ``ORDEROPS_TEST_REDIS_SERVER``.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from pytest_redis import factories as redis_factories

with warnings.catch_warnings():
    # starlette's TestClient announces a future switch of HTTP client; not ours to act on.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from order_service.core.config import Settings
from order_service.entrypoint import migrate
from order_service.main import create_app
from tests.support.postgres import PostgresServer, free_port, local_postgres

REDIS_SERVER = os.environ.get("ORDEROPS_TEST_REDIS_SERVER", "/usr/bin/redis-server")
PG_USER = "orderops"
# URL-special characters on purpose: the service must escape them in its database URL.
PG_PASSWORD = "pg/@:%?#" + secrets.token_urlsafe(24)
REDIS_PASSWORD = "redis-" + secrets.token_urlsafe(24)
SERVICE_DB = "orderops_test"
ADMIN_EMAIL = "admin@orderops.test"
ADMIN_PASSWORD = "admin-" + secrets.token_urlsafe(24)
#: Local attachment volume of the tests (removed when the session ends).
STORAGE_DIR = tempfile.mkdtemp(prefix="orderops-attachments-")
atexit.register(shutil.rmtree, STORAGE_DIR, ignore_errors=True)

#: Settings fields that tests always pass explicitly (the environment must not leak in).
SETTINGS_ENV_NAMES = tuple(Settings.model_fields)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster for the test session (tests/support/postgres.py); it dies
    with pytest, so an interrupted or killed run leaves no server behind."""
    fast = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=100"]
    with local_postgres(PG_USER, PG_PASSWORD, fast) as server:
        yield server


service_redis_proc = redis_factories.redis_proc(executable=REDIS_SERVER, password=REDIS_PASSWORD)


def make_settings(pg: PostgresServer, redis_port: int, **overrides: Any) -> Settings:
    """Settings for the test servers; every field explicit, ``.env`` ignored."""
    values: dict[str, Any] = {
        "ENVIRONMENT": "local",
        "SECRET_KEY": "local-test-secret-" + "k" * 24,
        "POSTGRES_HOST": pg.host,
        "POSTGRES_PORT": pg.port,
        "POSTGRES_USER": pg.user,
        "POSTGRES_PASSWORD": pg.password,
        "POSTGRES_DB": SERVICE_DB,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": redis_port,
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "WORKERS": 1,
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": 2,
        "DB_MAX_OVERFLOW": 2,
        "DEPENDENCY_TIMEOUT_SECONDS": 2,
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PASSWORD_HASH_ROUNDS": 4,  # bcrypt's minimum: tests log in often
        "STORAGE_DIR": STORAGE_DIR,
        "S3_BUCKET": None,
        "CORS_ORIGINS": "",
        "RATE_LIMIT_USER": 600,
        "RATE_LIMIT_IP": 1200,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def migrated_db(pg_server: PostgresServer, service_redis_proc: Any) -> str:
    """The service database, created empty and migrated with ``migrate`` (Alembic + advisory lock)."""
    pg_server.create_database(SERVICE_DB)
    migrate(make_settings(pg_server, service_redis_proc.port), connect_timeout=10, lock_timeout=10)
    return SERVICE_DB


@pytest.fixture
def settings(pg_server: PostgresServer, service_redis_proc: Any, migrated_db: str) -> Settings:
    """Settings pointing at the migrated test database and the test Redis."""
    return make_settings(pg_server, service_redis_proc.port)


@pytest.fixture
def settings_factory(pg_server: PostgresServer, service_redis_proc: Any) -> Callable[..., Settings]:
    """``settings_factory(**overrides)``: test settings with some fields changed."""

    def factory(**overrides: Any) -> Settings:
        return make_settings(pg_server, service_redis_proc.port, **overrides)

    return factory


@pytest.fixture
def closed_port() -> int:
    """A local TCP port with nothing listening: connections to it are refused."""
    return free_port()


@pytest.fixture
def clean_db(pg_server: PostgresServer, migrated_db: str, service_redis_proc: Any) -> None:
    """Empty the tables and Redis (rate-limit counters, idempotency records) before the test."""
    with pg_server.admin(migrated_db) as conn:
        conn.execute("TRUNCATE orders, order_lines, order_transitions, attachments, users")
    import redis  # noqa: PLC0415

    redis.Redis(host="127.0.0.1", port=service_redis_proc.port, password=REDIS_PASSWORD).flushall()


@pytest.fixture
def app(settings: Settings, clean_db: None) -> FastAPI:
    """An application on the test servers, with empty tables (the admin is seeded at start)."""
    return create_app(settings)


def login(client: TestClient, email: str, password: str) -> dict[str, str]:
    """``Authorization`` header for ``email`` (OAuth2 password flow); asserts success."""
    response = client.post("/api/login/access-token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def anon_client(app: FastAPI) -> Iterator[TestClient]:
    """Unauthenticated HTTP client of ``app`` (lifespan run); server errors come back as responses."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin_headers(anon_client: TestClient) -> dict[str, str]:
    """Bearer header of the seeded admin."""
    return login(anon_client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def user_factory(anon_client: TestClient, admin_headers: dict[str, str]) -> Callable[..., dict[str, str]]:
    """``user_factory(role, email=None)``: create a user through the admin API; returns its bearer header."""
    counter = iter(range(1_000_000))

    def factory(role: str, email: str | None = None) -> dict[str, str]:
        email = email or f"{role}{next(counter)}@example.com"
        password = "pw-" + secrets.token_urlsafe(12)
        response = anon_client.post(
            "/api/users", json={"email": email, "password": password, "role": role}, headers=admin_headers
        )
        assert response.status_code == 201, response.text
        return login(anon_client, email, password)

    return factory


@pytest.fixture
def client(anon_client: TestClient, user_factory: Callable[..., dict[str, str]]) -> TestClient:
    """HTTP client of ``app`` authenticated as a fresh ``customer``."""
    anon_client.headers.update(user_factory("customer"))
    return anon_client


@pytest.fixture
def operator_headers(user_factory: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Bearer header of a fresh ``operator``."""
    return user_factory("operator")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``create_app`` configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def order_body() -> dict[str, Any]:
    """A valid ``POST /api/orders`` body (total 3*1250 + 1*99 = 3849)."""
    return {
        "customer": "ACME GmbH",
        "currency": "EUR",
        "lines": [
            {"sku": "WIDGET-1", "quantity": 3, "unit_price_minor": 1250},
            {"sku": "GADGET-2", "quantity": 1, "unit_price_minor": 99},
        ],
    }
