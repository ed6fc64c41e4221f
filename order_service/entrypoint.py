"""Command line of the service container: ``python -m order_service {serve,migrate}``.

- ``migrate``: wait for PostgreSQL (up to 60 s), take a PostgreSQL advisory lock
  (so replicas starting together migrate one at a time; the others wait, then
  find nothing to do), ``alembic upgrade head``, release the lock.
- ``serve``: ``migrate``, then replace this process (``exec``) with uvicorn:
  ``--workers WORKERS --proxy-headers --forwarded-allow-ips FORWARDED_ALLOW_IPS``
  on 0.0.0.0:8000, JSON logs. uvicorn handles SIGTERM (graceful shutdown).

Exit status: 0 on success, 2 for invalid settings (one line per bad field,
secrets never shown), 1 when the database stays unreachable or the lock busy.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from order_service.core.config import Settings
from order_service.core.db import make_migration_engine
from order_service.core.logging import configure_logging

logger = logging.getLogger("order_service.entrypoint")

PACKAGE_DIR = Path(__file__).resolve().parent
ALEMBIC_INI = PACKAGE_DIR / "alembic.ini"
UVICORN_LOG_CONFIG = PACKAGE_DIR / "logging.ini"
#: Key of the PostgreSQL advisory lock that serialises migrations (a fixed signed 64-bit int).
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"orderops:order_service:migrations").digest()[:8], "big", signed=True
)
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - inside the container, behind nginx
DEFAULT_PORT = 8000


class StartupError(RuntimeError):
    """The database could not be reached, or the migration lock not taken, in time."""


def alembic_config(settings: Settings, connection: Connection | None = None) -> Config:
    """Alembic :class:`Config` for the packaged ``alembic.ini``, bound to ``settings``.

    With ``connection``, migrations run on that connection (see ``migrations/env.py``).
    """
    config = Config(str(ALEMBIC_INI))
    config.attributes["settings"] = settings
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _log_database_wait(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.info("waiting for the database", extra={"error": type(getattr(error, "orig", error)).__name__})


def _connect(engine: Engine, timeout: float) -> Connection:
    """``engine.connect()``, tried every second for ``timeout`` seconds (tenacity)."""
    retrying = Retrying(
        retry=retry_if_exception_type(sa_exc.OperationalError),
        wait=wait_fixed(1),
        stop=stop_after_delay(timeout),
        before_sleep=_log_database_wait,
        reraise=True,
    )
    try:
        return retrying(engine.connect)
    except sa_exc.OperationalError as exc:
        raise StartupError(f"database unreachable after {timeout:.0f}s: {exc.orig}") from exc


def _log_lock_wait(state: RetryCallState) -> None:
    if state.attempt_number == 1:  # once, not every 0.25 s
        logger.info("waiting for the migration lock held by another process")


def _lock(connection: Connection, timeout: float) -> None:
    """Take the migration advisory lock, tried every 0.25 s for ``timeout`` seconds (tenacity)."""

    def try_lock() -> bool:
        locked = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        ).scalar_one()
        connection.commit()  # session-level lock: it outlives this transaction
        return bool(locked)

    retrying = Retrying(
        retry=retry_if_result(lambda locked: not locked),
        wait=wait_fixed(0.25),
        stop=stop_after_delay(timeout),
        before_sleep=_log_lock_wait,
    )
    try:
        retrying(try_lock)
    except RetryError:
        raise StartupError(f"migration lock still held by another process after {timeout:.0f}s") from None


def migrate(
    settings: Settings,
    *,
    revision: str = "head",
    connect_timeout: float = 60.0,
    lock_timeout: float = 300.0,
) -> None:
    """Upgrade the database to ``revision`` under the migration advisory lock.

    Waits up to ``connect_timeout`` seconds for PostgreSQL and ``lock_timeout``
    seconds for the lock; raises :class:`StartupError` when either runs out and
    lets Alembic/SQLAlchemy errors of the migration itself propagate (the
    migration is one transaction: it applies completely or not at all).
    """
    engine = make_migration_engine(settings)
    try:
        with _connect(engine, connect_timeout) as connection:
            _lock(connection, lock_timeout)
            try:
                logger.info("migrating database", extra={"revision": revision})
                command.upgrade(alembic_config(settings, connection), revision)
                logger.info("database migrated", extra={"revision": revision})
            finally:
                if connection.in_transaction():
                    connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
    finally:
        engine.dispose()


def uvicorn_argv(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> list[str]:
    """The command ``serve`` execs: uvicorn running ``order_service.main:create_app``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "order_service.main:create_app",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(settings.WORKERS),
        "--proxy-headers",
        "--forwarded-allow-ips",
        settings.FORWARDED_ALLOW_IPS,
        "--no-access-log",  # the app logs one JSON line per request, with its id
        "--log-config",
        str(UVICORN_LOG_CONFIG),
        "--log-level",
        settings.LOG_LEVEL.lower(),
    ]


def prepare_metrics_dir(settings: Settings) -> str | None:
    """With several workers, point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh, empty directory.

    Every worker then writes its metrics there and ``/metrics`` sums all workers.
    An operator-set ``PROMETHEUS_MULTIPROC_DIR`` is emptied and kept. Returns the
    directory, or ``None`` for a single worker (in-process metrics).
    """
    if settings.WORKERS <= 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="orderops-metrics-")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m order_service", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate, then exec uvicorn")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"listen address (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"listen port (default {DEFAULT_PORT})")
    serve.add_argument("--skip-migrations", action="store_true", help="serve without migrating first")
    sub.add_parser("migrate", help="alembic upgrade head under an advisory lock, then exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default ``sys.argv[1:]``); return the exit status.

    ``serve`` does not return on success: the process becomes uvicorn.
    """
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print("order_service: invalid settings:", file=sys.stderr)
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"  {field}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.LOG_LEVEL)
    try:
        if args.command == "migrate" or not args.skip_migrations:
            migrate(settings)
    except StartupError as exc:
        logger.error(str(exc))
        return 1
    if args.command == "migrate":
        return 0
    argv_uvicorn = uvicorn_argv(settings, host=args.host, port=args.port)
    prepare_metrics_dir(settings)
    os.environ["ORDER_SERVICE_GC_FREEZE"] = "1"  # see order_service.main._lifespan
    logger.info("starting uvicorn", extra={"workers": settings.WORKERS, "port": args.port})
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, argv_uvicorn)
    return 0  # pragma: no cover - execv does not return
