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
import ctypes
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
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

PG_BIN = Path(os.environ.get("ORDEROPS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster listening on 127.0.0.1:``port`` (password auth)."""

    port: int
    user: str
    password: str
    host: str = "127.0.0.1"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit connection to ``dbname`` (for CREATE/DROP DATABASE and checks)."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """Create the empty database ``name`` (dropping an old one) and return its name."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess`` arguments that run the child as ``user`` (nothing when ``None``)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


_CHILD_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def _die_with_parent() -> None:
    """In the child: get SIGQUIT (PostgreSQL's immediate shutdown) when pytest dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


def _server_user() -> pwd.struct_passwd | None:
    """``None`` when not root; else the unprivileged user the server runs as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _wait_until_accepting(process: subprocess.Popen[bytes], server: PostgresServer, logfile: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{logfile.read_text()}")
        try:
            server.admin().close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections in 60 s:\n{logfile.read_text()}") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """Run a throw-away PostgreSQL cluster (initdb in a temporary directory) for the test session.

    The postmaster is a direct child of pytest that dies with it, so an interrupted
    or killed test run leaves no server behind.
    """
    postgres, initdb = PG_BIN / "postgres", PG_BIN / "initdb"
    if not postgres.exists():
        raise RuntimeError(
            f"{postgres} not found: install Debian's postgresql-15 (or set ORDEROPS_TEST_PG_BIN)"
        )
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="orderops-pg-"))
    datadir, logfile, pwfile = root / "data", root / "postgres.log", root / "pwfile"
    pwfile.write_text(PG_PASSWORD + "\n")
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    try:
        result = subprocess.run(
            [str(initdb), "-D", str(datadir), "-U", PG_USER, "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
            cwd=root, env=_CHILD_ENV, capture_output=True, text=True, timeout=120, check=False,
            **_as_user(user),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        server = PostgresServer(port=free_port(), user=PG_USER, password=PG_PASSWORD)
        with logfile.open("wb") as log:
            process = subprocess.Popen(
                [str(postgres), "-D", str(datadir), "-p", str(server.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=100"],
                cwd=root, env=_CHILD_ENV, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, **_as_user(user),
            )
        try:
            _wait_until_accepting(process, server, logfile)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
