"""FastAPI dependencies: settings, a database session per request, the Redis client.

The objects live on ``app.state`` (set by :func:`order_service.main.create_app`),
so each application instance (and each test) carries its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from order_service.core.config import Settings


def get_settings(request: Request) -> Settings:
    """The application's :class:`Settings`."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The application's SQLAlchemy engine."""
    return request.app.state.engine


def get_db(request: Request) -> Iterator[Session]:
    """A session for the duration of the request; rolled back if not committed, then closed."""
    with request.app.state.session_factory() as session:
        yield session


def get_redis(request: Request) -> Redis:
    """The application's Redis client (connections are made lazily, per command)."""
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_db)]
RedisDep = Annotated[Redis, Depends(get_redis)]
