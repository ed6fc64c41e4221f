"""SQLAlchemy 2 engine and session factory (psycopg 3 driver).

The engine is created per application (``create_app``) rather than at import
time, so tests and the migration command can point it at any database.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from order_service.core.config import Settings


def make_engine(settings: Settings) -> Engine:
    """Create the engine for ``settings.SQLALCHEMY_DATABASE_URI``.

    ``pool_pre_ping`` replaces connections that died (database restart) before
    use; ``connect_timeout`` (``DEPENDENCY_TIMEOUT_SECONDS``) bounds how long a
    request or readiness check waits for an unreachable server. No connection is
    made until first use.
    """
    return create_engine(
        settings.SQLALCHEMY_DATABASE_URI,
        pool_pre_ping=True,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        connect_args={
            "connect_timeout": settings.DEPENDENCY_TIMEOUT_SECONDS,
            "application_name": "order_service",
        },
    )


def make_migration_engine(settings: Settings) -> Engine:
    """An engine without a pool (``NullPool``) for migrations: each connection is closed on return.

    Used by ``python -m order_service migrate`` (which holds its advisory lock on one
    connection) and by the plain ``alembic`` CLI; ``connect_timeout`` as in :func:`make_engine`.
    """
    return create_engine(
        settings.SQLALCHEMY_DATABASE_URI,
        poolclass=NullPool,
        connect_args={
            "connect_timeout": settings.DEPENDENCY_TIMEOUT_SECONDS,
            "application_name": "order_service-migrate",
        },
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def make_autocommit_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``'s pool whose connections run in autocommit mode.

    For routes whose work is a single statement (atomic by itself): no ``BEGIN`` before it and
    no ``COMMIT`` after it, two round trips fewer (``session.commit()`` sends nothing). Every
    other route uses :func:`make_session_factory`. SQLAlchemy restores the connection's
    isolation level when it goes back to the pool (client-side with psycopg 3: no round trip).
    """
    return sessionmaker(
        bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, autoflush=False
    )
