"""Service settings, read from the environment (and an optional ``.env`` file).

Variable names are the plain, unprefixed field names below (``POSTGRES_HOST``,
``SECRET_KEY``, ...), the convention of FastAPI's full-stack template and of the
official PostgreSQL image, so one compose environment can feed both. Names are
case-sensitive.

| variable | default | meaning |
|---|---|---|
| ``ENVIRONMENT`` | ``local`` | ``local``/``staging``/``production``; not ``local``: weak secrets refused |
| ``SECRET_KEY`` | ``changethis`` | signing secret (used by later features: auth, idempotency keys) |
| ``POSTGRES_HOST`` / ``POSTGRES_PORT`` | ``localhost`` / ``5432`` | database server |
| ``POSTGRES_USER`` / ``POSTGRES_PASSWORD`` | ``orderops`` / ``changethis`` | database credentials |
| ``POSTGRES_DB`` | ``orderops`` | database name |
| ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_PASSWORD`` | ``localhost`` / ``6379`` / unset | Redis server |
| ``WORKERS`` | ``1`` | uvicorn worker processes (``serve``) |
| ``FORWARDED_ALLOW_IPS`` | ``127.0.0.1`` | proxies trusted for ``X-Forwarded-*`` (``*``: only nginx reaches us) |
| ``LOG_LEVEL`` | ``INFO`` | ``DEBUG`` / ``INFO`` / ``WARNING`` / ``ERROR`` / ``CRITICAL`` |
| ``DB_POOL_SIZE`` / ``DB_MAX_OVERFLOW`` | ``5`` / ``10`` | SQLAlchemy pool per worker process |
| ``DEPENDENCY_TIMEOUT_SECONDS`` | ``3`` | connect timeout for PostgreSQL and Redis (readiness answers within it) |

Secrets are :class:`pydantic.SecretStr`: they print as ``**********`` and are
never part of a validation error (``hide_input_in_errors``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

#: Secrets that are refused outside ``ENVIRONMENT=local`` (compared lower-cased, as substrings).
WEAK_SECRET_WORDS: tuple[str, ...] = (
    "changethis",
    "changeme",
    "password",
    "secret",
    "default",
    "example",
    "postgres",
    "redis",
)
#: Minimum length of any secret outside ``ENVIRONMENT=local``.
MIN_SECRET_LENGTH = 24
#: Minimum number of distinct characters of a secret outside ``local`` (refuses "aaaa...").
MIN_SECRET_DISTINCT_CHARS = 8

Environment = Literal["local", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Port = Annotated[int, Field(ge=1, le=65535)]


def secret_weakness(value: str) -> str | None:
    """Say why ``value`` is not acceptable as a secret outside ``local``.

    Returns ``None`` for an acceptable secret, else a short reason that never
    contains the value itself.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} characters"
    lowered = value.lower()
    for word in WEAK_SECRET_WORDS:
        if word in lowered:
            return f"it contains the default/weak word {word!r}"
    if len(set(value)) < MIN_SECRET_DISTINCT_CHARS:
        return f"it has fewer than {MIN_SECRET_DISTINCT_CHARS} distinct characters"
    return None


class Settings(BaseSettings):
    """Validated service configuration.

    Build it with ``Settings()`` (reads the environment and ``.env``) or pass
    values as keyword arguments (tests). Raises :class:`pydantic.ValidationError`
    naming each bad field; outside ``ENVIRONMENT=local`` a missing, short
    (< 24 characters) or default-looking ``SECRET_KEY``, ``POSTGRES_PASSWORD`` or
    ``REDIS_PASSWORD`` is an error. Error messages never contain secret values.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=True,
        validate_default=True,
        hide_input_in_errors=True,
    )

    # ENVIRONMENT must stay the first field: the secret validators read it.
    ENVIRONMENT: Environment = "local"

    SECRET_KEY: SecretStr = SecretStr("changethis")

    POSTGRES_HOST: str = "localhost"
    POSTGRES_PORT: Port = 5432
    POSTGRES_USER: str = "orderops"
    POSTGRES_PASSWORD: SecretStr = SecretStr("changethis")
    POSTGRES_DB: str = "orderops"

    REDIS_HOST: str = "localhost"
    REDIS_PORT: Port = 6379
    REDIS_PASSWORD: SecretStr | None = None

    WORKERS: Annotated[int, Field(ge=1, le=64)] = 1
    FORWARDED_ALLOW_IPS: str = "127.0.0.1"
    LOG_LEVEL: LogLevel = "INFO"

    DB_POOL_SIZE: Annotated[int, Field(ge=1, le=100)] = 5
    DB_MAX_OVERFLOW: Annotated[int, Field(ge=0, le=100)] = 10
    DEPENDENCY_TIMEOUT_SECONDS: Annotated[int, Field(ge=1, le=60)] = 3

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", mode="after")
    @classmethod
    def _refuse_weak_secrets(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        environment = info.data.get("ENVIRONMENT")
        if environment in (None, "local"):
            return value
        if value is None:
            raise ValueError(f"{info.field_name} must be set when ENVIRONMENT={environment!r}")
        reason = secret_weakness(value.get_secret_value())
        if reason is not None:
            raise ValueError(
                f"{info.field_name} is too weak for ENVIRONMENT={environment!r}: {reason} "
                f"(use a random value of at least {MIN_SECRET_LENGTH} characters)"
            )
        return value

    @property
    def SQLALCHEMY_DATABASE_URI(self) -> URL:  # noqa: N802 - settings-style name
        """SQLAlchemy URL (``postgresql+psycopg://``); its ``repr``/``str`` mask the password."""
        return URL.create(
            drivername="postgresql+psycopg",
            username=self.POSTGRES_USER,
            password=self.POSTGRES_PASSWORD.get_secret_value(),
            host=self.POSTGRES_HOST,
            port=self.POSTGRES_PORT,
            database=self.POSTGRES_DB,
        )


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
