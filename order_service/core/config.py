"""Service settings, read from the environment (and an optional ``.env`` file).

Variable names are the plain, unprefixed field names below (``POSTGRES_HOST``,
``SECRET_KEY``, ...), the convention of FastAPI's full-stack template and of the
official PostgreSQL image, so one compose environment can feed both. Names are
case-sensitive.

| variable | default | meaning |
|---|---|---|
| ``ENVIRONMENT`` | ``local`` | ``local``/``staging``/``production``; not ``local``: weak secrets refused |
| ``SECRET_KEY`` | ``changethis`` | signs the JWT access tokens (HS256) |
| ``POSTGRES_HOST`` / ``POSTGRES_PORT`` | ``localhost`` / ``5432`` | database server |
| ``POSTGRES_USER`` / ``POSTGRES_PASSWORD`` | ``orderops`` / ``changethis`` | database credentials |
| ``POSTGRES_DB`` | ``orderops`` | database name |
| ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_PASSWORD`` | ``localhost`` / ``6379`` / unset | Redis server |
| ``WORKERS`` | ``1`` | uvicorn worker processes (``serve``) |
| ``FORWARDED_ALLOW_IPS`` | ``127.0.0.1`` | proxies trusted for ``X-Forwarded-*`` (``*``: only nginx reaches us) |
| ``LOG_LEVEL`` | ``INFO`` | ``DEBUG`` / ``INFO`` / ``WARNING`` / ``ERROR`` / ``CRITICAL`` |
| ``DB_POOL_SIZE`` / ``DB_MAX_OVERFLOW`` | ``20`` / ``10`` | SQLAlchemy pool per worker process (kept >= the usual concurrency: connections opened beyond the pool size are closed on return, and reconnecting costs more than the query) |
| ``DEPENDENCY_TIMEOUT_SECONDS`` | ``3`` | connect timeout for PostgreSQL and Redis (readiness answers within it) |
| ``ACCESS_TOKEN_EXPIRE_MINUTES`` | ``30`` | lifetime of a JWT access token (HS256, signed with ``SECRET_KEY``) |
| ``ADMIN_EMAIL`` / ``ADMIN_PASSWORD`` | ``admin@orderops.local`` / unset | first admin, created at start when missing (none without a password) |
| ``AUTH_CACHE_SECONDS`` | ``5`` | per-process cache of a token's user (role, active); 0: a query per request |
| ``PASSWORD_HASH_ROUNDS`` | ``12`` | bcrypt cost factor (4..16; tests use 4) |
| ``CORS_ORIGINS`` | empty | comma-separated allowlist of browser origins (``https://shop.example.com``) |
| ``RATE_LIMIT_USER`` / ``RATE_LIMIT_IP`` | ``600`` / ``1200`` | requests per window per user / per client address (``0``: off) |
| ``RATE_LIMIT_WINDOW_SECONDS`` | ``60`` | fixed rate-limit window |
| ``IDEMPOTENCY_TTL_SECONDS`` | ``86400`` | how long an ``Idempotency-Key`` answer is kept (24 h) |
| ``STORAGE_DIR`` | ``/data/attachments`` | local volume for attachments when no bucket is set |
| ``S3_BUCKET`` / ``S3_ENDPOINT_URL`` / ``S3_REGION`` | unset / unset / ``us-east-1`` | S3 storage (a bucket turns it on) |
| ``S3_ACCESS_KEY_ID`` / ``S3_SECRET_ACCESS_KEY`` | unset | S3 credentials (else boto3's default chain: role, env) |
| ``S3_SSE`` | ``AES256`` | server-side encryption requested on upload (``AES256`` or ``aws:kms``) |
| ``ATTACHMENT_MAX_BYTES`` | ``10485760`` | largest attachment (10 MiB) |
| ``ATTACHMENT_CONTENT_TYPES`` | ``application/pdf,image/png,image/jpeg,text/plain`` | allowed content types |

Secrets are :class:`pydantic.SecretStr`: they print as ``**********`` and are
never part of a validation error (``hide_input_in_errors``).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL

# The secret policy is shared with the inventory schema (order_service/core/secret_policy.py).
from order_service.core.secret_policy import (  # noqa: E402 - re-exported names
    MIN_SECRET_DISTINCT_CHARS,
    MIN_SECRET_LENGTH,
    WEAK_SECRET_WORDS,
    secret_weakness,
)

#: Deliberately loose e-mail shape (one ``@``, a dot in the domain, no spaces).
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")

Environment = Literal["local", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Port = Annotated[int, Field(ge=1, le=65535)]


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

    DB_POOL_SIZE: Annotated[int, Field(ge=1, le=100)] = 20
    DB_MAX_OVERFLOW: Annotated[int, Field(ge=0, le=100)] = 10
    DEPENDENCY_TIMEOUT_SECONDS: Annotated[int, Field(ge=1, le=60)] = 3

    ACCESS_TOKEN_EXPIRE_MINUTES: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    ADMIN_EMAIL: Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)] = "admin@orderops.local"
    ADMIN_PASSWORD: SecretStr | None = None
    PASSWORD_HASH_ROUNDS: Annotated[int, Field(ge=4, le=16)] = 12
    AUTH_CACHE_SECONDS: Annotated[int, Field(ge=0, le=300)] = 5

    CORS_ORIGINS: Annotated[list[str], NoDecode] = []

    RATE_LIMIT_USER: Annotated[int, Field(ge=0)] = 600
    RATE_LIMIT_IP: Annotated[int, Field(ge=0)] = 1200
    RATE_LIMIT_WINDOW_SECONDS: Annotated[int, Field(ge=1, le=3600)] = 60
    IDEMPOTENCY_TTL_SECONDS: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 24 * 3600

    STORAGE_DIR: str = "/data/attachments"
    S3_BUCKET: str | None = None
    S3_ENDPOINT_URL: str | None = None
    S3_REGION: str = "us-east-1"
    S3_ACCESS_KEY_ID: str | None = None
    S3_SECRET_ACCESS_KEY: SecretStr | None = None
    S3_SSE: Literal["AES256", "aws:kms"] = "AES256"
    ATTACHMENT_MAX_BYTES: Annotated[int, Field(ge=1, le=1024 * 1024 * 1024)] = 10 * 1024 * 1024
    ATTACHMENT_CONTENT_TYPES: Annotated[list[str], NoDecode] = [
        "application/pdf",
        "image/png",
        "image/jpeg",
        "text/plain",
    ]

    @field_validator("CORS_ORIGINS", "ATTACHMENT_CONTENT_TYPES", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)  # JSON list, the pydantic-settings convention
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("CORS_ORIGINS", mode="after")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not ORIGIN_PATTERN.fullmatch(origin):
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
        return value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "ADMIN_PASSWORD", mode="after")
    @classmethod
    def _refuse_weak_secrets(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        environment = info.data.get("ENVIRONMENT")
        if environment in (None, "local"):
            return value
        if value is None and info.field_name == "ADMIN_PASSWORD":
            return None  # no password: no admin is seeded
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
