"""Alembic environment: the database comes from the service's Settings.

Callers may pass, through ``Config.attributes``:

- ``settings``: a :class:`~order_service.core.config.Settings` to use instead of
  the environment's;
- ``connection``: an open SQLAlchemy connection to migrate on (used by
  :func:`order_service.entrypoint.migrate`, which holds an advisory lock on it).
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import Connection

from order_service.core.config import Settings, get_settings
from order_service.core.db import make_migration_engine
from order_service.core.logging import configure_logging
from order_service.models import Base

config = context.config
target_metadata = Base.metadata


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    return settings if settings is not None else get_settings()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """``--sql`` mode: emit SQL for PostgreSQL without connecting (no password in the URL)."""
    url = _settings().SQLALCHEMY_DATABASE_URI.render_as_string(hide_password=True)
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on the given connection, or on a fresh one built from the settings."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_migration_engine(_settings())
    try:
        with engine.connect() as fresh:
            _run(fresh)
    finally:
        engine.dispose()


if not logging.getLogger().handlers:  # plain `alembic` CLI: log like the service
    configure_logging(_settings().LOG_LEVEL)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
