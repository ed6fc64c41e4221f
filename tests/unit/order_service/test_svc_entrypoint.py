"""``python -m order_service``: migrations under an advisory lock, settings errors, and a real ``serve``."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from order_service.core.config import Settings
from tests.unit.order_service.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from order_service.entrypoint import MIGRATION_LOCK_KEY, StartupError, migrate, uvicorn_argv

REPO_ROOT = Path(__file__).resolve().parents[3]


HEAD = "0002"


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Process environment carrying ``settings`` (and nothing else of the kind from outside)."""
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, list):
            env[name] = ",".join(value)
        else:
            env[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "order_service", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def alembic_version(pg_server: Any, dbname: str) -> list[tuple[str]]:
    with pg_server.admin(dbname) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()


def _hold_lock(pg_server: Any, dbname: str) -> psycopg.Connection[Any]:
    holder = pg_server.admin(dbname)
    holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    return holder


def test_parallel_starts_migrate_once(pg_server: Any, settings_factory: Any) -> None:
    """Three processes migrating one empty database at once (like replicas starting together).

    The test holds the lock until all three have tried to take it, so they
    really contend; without the lock all but one would fail ("order_status already exists").
    """
    settings = settings_factory(POSTGRES_DB=pg_server.create_database("orderops_parallel"))
    holder = _hold_lock(pg_server, "orderops_parallel")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "order_service", "migrate"],
            cwd=REPO_ROOT,
            env=service_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = ["", "", ""]
    try:
        # each process must report that it waits for the lock the test holds
        with selectors.DefaultSelector() as selector:
            for index, process in enumerate(processes):
                assert process.stdout is not None
                selector.register(process.stdout, selectors.EVENT_READ, index)
            pending = {0, 1, 2}
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.5):
                    chunk = os.read(key.fd, 65536)
                    outputs[key.data] += chunk.decode(errors="replace")
                    if not chunk or "waiting for the migration lock" in outputs[key.data]:
                        selector.unregister(key.fileobj)  # exited, or waits as it should
                        pending.discard(key.data)
        assert all("waiting for the migration lock" in output for output in outputs), outputs
    finally:
        holder.close()
    for index, process in enumerate(processes):
        outputs[index] += process.communicate(timeout=60)[0].decode(errors="replace")
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert alembic_version(pg_server, "orderops_parallel") == [(HEAD,)]
    assert sum("database migrated" in output for output in outputs) == 3


def test_migrate_waits_for_the_lock(pg_server: Any, settings_factory: Any) -> None:
    settings = settings_factory(POSTGRES_DB=pg_server.create_database("orderops_lockwait"))
    holder = _hold_lock(pg_server, "orderops_lockwait")
    releaser = threading.Timer(1.0, holder.close)  # closing the session releases its lock
    releaser.start()
    started = time.monotonic()
    try:
        migrate(settings, connect_timeout=5, lock_timeout=20)
    finally:
        releaser.join()
    assert time.monotonic() - started >= 0.9
    assert alembic_version(pg_server, "orderops_lockwait") == [(HEAD,)]


def test_migrate_gives_up_when_lock_stays_busy(pg_server: Any, settings_factory: Any) -> None:
    settings = settings_factory(POSTGRES_DB=pg_server.create_database("orderops_lockbusy"))
    with _hold_lock(pg_server, "orderops_lockbusy"):
        with pytest.raises(StartupError, match="migration lock"):
            migrate(settings, connect_timeout=5, lock_timeout=0.5)
    with pg_server.admin("orderops_lockbusy") as conn:
        assert conn.execute("SELECT to_regclass('orders')").fetchone() == (None,)


def test_migrate_gives_up_when_database_unreachable(settings_factory: Any, closed_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(StartupError, match="database unreachable"):
        migrate(settings_factory(POSTGRES_PORT=closed_port), connect_timeout=1)
    assert time.monotonic() - started < 10


def test_cli_migrate(pg_server: Any, settings_factory: Any) -> None:
    settings = settings_factory(POSTGRES_DB=pg_server.create_database("orderops_cli"))
    result = run_cli(["migrate"], service_env(settings))
    assert result.returncode == 0, result.stderr
    assert alembic_version(pg_server, "orderops_cli") == [(HEAD,)]
    messages = [json.loads(line)["message"] for line in result.stdout.splitlines() if line.strip()]
    assert "database migrated" in messages
    # a second run finds nothing to do and still succeeds
    assert run_cli(["migrate"], service_env(settings)).returncode == 0


def test_cli_refuses_weak_secrets_naming_fields(settings: Settings) -> None:
    env = service_env(
        settings, ENVIRONMENT="production", POSTGRES_PASSWORD="hunter2", SECRET_KEY="changethis"
    )
    env.pop("REDIS_PASSWORD")
    result = run_cli(["migrate"], env)
    assert result.returncode == 2
    assert "invalid settings" in result.stderr
    for field in ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert f"  {field}: " in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_cli_requires_a_command() -> None:
    result = run_cli([], dict(os.environ))
    assert result.returncode == 2
    assert "serve" in result.stderr


def test_uvicorn_command_line(settings_factory: Any) -> None:
    argv = uvicorn_argv(settings_factory(WORKERS=3, FORWARDED_ALLOW_IPS="172.18.0.0/16", LOG_LEVEL="WARNING"))
    assert argv[:3] == [sys.executable, "-m", "uvicorn"]
    joined = " ".join(argv)
    assert "--factory order_service.main:create_app" in joined
    assert "--host 0.0.0.0 --port 8000" in joined
    assert "--workers 3" in joined
    assert "--proxy-headers" in argv
    assert "--forwarded-allow-ips 172.18.0.0/16" in joined
    assert "--log-level warning" in joined
    assert Path(argv[argv.index("--log-config") + 1]).is_file()


def _get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def test_serve_migrates_and_runs_uvicorn(pg_server: Any, settings_factory: Any, closed_port: int) -> None:
    """Start against a database at the previous revision (0001, with an old ``confirmed`` order)."""
    settings = settings_factory(POSTGRES_DB=pg_server.create_database("orderops_serve"), WORKERS=2)
    migrate(settings, revision="0001", connect_timeout=10, lock_timeout=10)
    old_id = "00000000-0000-4000-8000-000000000001"
    with pg_server.admin("orderops_serve") as conn:
        conn.execute(
            "INSERT INTO orders (id, customer, currency, total_minor, status) "
            "VALUES (%s, 'old', 'EUR', 5, 'confirmed')",
            (old_id,),
        )
    base = f"http://127.0.0.1:{closed_port}/api"
    process = subprocess.Popen(
        [sys.executable, "-m", "order_service", "serve", "--host", "127.0.0.1", "--port", str(closed_port)],
        cwd=REPO_ROOT,
        env=service_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            assert process.poll() is None, process.communicate()
            try:
                status, headers, body = _get(f"{base}/health", {"X-Request-ID": "serve-health-1"})
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "serve did not answer within 40 s"
                time.sleep(0.2)
        assert (status, body) == (200, {"status": "ok"})
        assert headers["X-Request-ID"] == "serve-health-1"
        # the process was replaced by uvicorn (exec, same pid: it receives the SIGTERM)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"uvicorn" in cmdline and b"--proxy-headers" in cmdline
        assert _get(f"{base}/ready")[0] == 200
        form = urllib.parse.urlencode({"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
        token = _get(f"{base}/login/access-token", {"Content-Type": "application/x-www-form-urlencoded"}, form)[2]
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        assert _get(f"{base}/orders/{old_id}", auth)[2]["status"] == "paid"  # 'confirmed' became 'paid'
        order = {
            "customer": "via uvicorn",
            "currency": "USD",
            "lines": [{"sku": "A", "quantity": 2, "unit_price_minor": 5}],
        }
        status, _, created = _get(
            f"{base}/orders",
            {"Content-Type": "application/json", "X-Request-ID": "serve-post-1", "X-Forwarded-For": "203.0.113.7",
             **auth},
            json.dumps(order).encode(),
        )
        assert (status, created["total_minor"]) == (201, 10)
        assert _get(f"{base}/orders/{created['id']}", auth)[2] == created
        # two workers, one /metrics answer summing both (PROMETHEUS_MULTIPROC_DIR set by serve)
        with urllib.request.urlopen(f"http://127.0.0.1:{closed_port}/metrics", timeout=5) as answer:
            exposition = answer.read().decode()
        assert 'orderops_orders_created_total{status="pending"} 1.0' in exposition
        assert 'route="/api/orders/{order_id}"' in exposition
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]  # every line is JSON
    messages = [line["message"] for line in lines]
    assert "database migrated" in messages
    assert any("Started parent process" in message for message in messages)  # uvicorn's supervisor
    access = [line for line in lines if line.get("request_id") == "serve-post-1" and line["message"] == "request"]
    assert len(access) == 1
    assert access[0]["client"] == "203.0.113.7"  # X-Forwarded-For honoured from a trusted proxy
    assert access[0]["status"] == 201
