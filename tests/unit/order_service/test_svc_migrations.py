"""Alembic: the migration matches the models, downgrades cleanly, and the packaged config works anywhere."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from order_service.core.config import Settings
from order_service.core.db import make_migration_engine
from order_service.entrypoint import ALEMBIC_INI, alembic_config, migrate
from order_service.models import Base

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_migration_matches_models(settings: Any) -> None:
    engine = make_migration_engine(settings)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(pg_server: Any, settings_factory: Any) -> None:
    settings = settings_factory(POSTGRES_DB=pg_server.create_database("orderops_downgrade"))
    migrate(settings, connect_timeout=5, lock_timeout=5)
    with pg_server.admin("orderops_downgrade") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)
    command.downgrade(alembic_config(settings), "base")
    engine = make_migration_engine(settings)
    try:
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
        with pg_server.admin("orderops_downgrade") as conn:
            assert conn.execute("SELECT count(*) FROM pg_type WHERE typname = 'order_status'").fetchone() == (0,)
        migrate(settings, connect_timeout=5, lock_timeout=5)
        with engine.connect() as connection:
            assert {"orders", "order_lines"} <= set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_offline_sql_has_no_password(settings: Any) -> None:
    config = alembic_config(settings)
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert "CREATE TABLE orders" in sql
    assert "CREATE TYPE order_status" in sql
    assert settings.POSTGRES_PASSWORD.get_secret_value() not in sql


def test_alembic_cli_works_from_any_directory(settings: Any, tmp_path: Path) -> None:
    """``script_location = order_service:migrations`` + ``prepend_sys_path``: no cwd assumptions."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in Settings.model_fields},
        "PYTHONPATH": "",
        "POSTGRES_HOST": settings.POSTGRES_HOST,
        "POSTGRES_PORT": str(settings.POSTGRES_PORT),
        "POSTGRES_USER": settings.POSTGRES_USER,
        "POSTGRES_PASSWORD": settings.POSTGRES_PASSWORD.get_secret_value(),
        "POSTGRES_DB": settings.POSTGRES_DB,
        "ENVIRONMENT": "local",
    }
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "current"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "0002 (head)" in result.stdout
    assert ALEMBIC_INI.parent.parent == REPO_ROOT
