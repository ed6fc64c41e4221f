"""Settings: environment names, defaults, and refusal of weak secrets outside ``local``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from order_service.core.config import Settings, secret_weakness

STRONG = {
    "SECRET_KEY": "k3Yq9vL2xW8pR4tZ7mN1bC6dF0gH5jS",
    "POSTGRES_PASSWORD": "Pg7hT2wQ9zX4cV1bN8mL3kJ6fD0sA5",
    "REDIS_PASSWORD": "Rd5gH8jK2lP9oI4uY7tR1eW6qA3sZ0",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No Settings variable from the outer environment, and no .env file, leak into a test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(part) for part in error["loc"]) for error in exc.errors()}


def test_local_defaults_accept_default_secrets() -> None:
    settings = Settings()
    assert settings.ENVIRONMENT == "local"
    assert settings.SECRET_KEY.get_secret_value() == "changethis"
    assert settings.POSTGRES_PORT == 5432
    assert settings.WORKERS == 1
    assert settings.REDIS_PASSWORD is None


def test_reads_plain_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    monkeypatch.setenv("REDIS_HOST", "cache")
    monkeypatch.setenv("WORKERS", "4")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    settings = Settings()
    assert (settings.POSTGRES_HOST, settings.POSTGRES_PORT) == ("db.internal", 6543)
    assert settings.REDIS_HOST == "cache"
    assert settings.WORKERS == 4
    assert settings.LOG_LEVEL == "DEBUG"
    assert settings.FORWARDED_ALLOW_IPS == "*"


def test_reads_dotenv_file(tmp_path: Any) -> None:
    (tmp_path / ".env").write_text("POSTGRES_DB=from_dotenv\n")
    assert Settings().POSTGRES_DB == "from_dotenv"


@pytest.mark.parametrize(
    ("field", "value"),
    [("ENVIRONMENT", "prod"), ("POSTGRES_PORT", "0"), ("WORKERS", "0"), ("LOG_LEVEL", "LOUD")],
)
def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch, field: str, value: str) -> None:
    monkeypatch.setenv(field, value)
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    assert error_fields(excinfo.value) == {field}


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_default_secrets_refused_outside_local(environment: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Settings(ENVIRONMENT=environment)
    assert error_fields(excinfo.value) == {"SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"}
    text = str(excinfo.value)
    assert "SECRET_KEY is too weak" in text
    assert "REDIS_PASSWORD must be set" in text
    assert "changethis" not in text  # the value itself is never shown


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("short-but-random-Zq9", "shorter than 24"),
        ("changethis-changethis-changethis", "'changethis'"),
        ("MyProductionPassword2024!!", "'password'"),
        ("super-secret-value-for-production", "'secret'"),
        ("abababababababababababababab", "distinct characters"),
    ],
)
def test_weak_secret_refused_naming_field(value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Settings(ENVIRONMENT="production", **{**STRONG, "POSTGRES_PASSWORD": value})
    assert error_fields(excinfo.value) == {"POSTGRES_PASSWORD"}
    message = excinfo.value.errors()[0]["msg"]
    assert "POSTGRES_PASSWORD" in message
    assert reason in message
    assert value not in str(excinfo.value)


def test_weak_secret_from_environment_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("SECRET_KEY", "password")
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    assert error_fields(excinfo.value) == {"SECRET_KEY"}


def test_strong_secrets_accepted_and_never_printed() -> None:
    settings = Settings(ENVIRONMENT="production", **STRONG)
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    for value in STRONG.values():
        assert value not in shown
    url = settings.SQLALCHEMY_DATABASE_URI
    assert STRONG["POSTGRES_PASSWORD"] not in str(url)
    assert STRONG["POSTGRES_PASSWORD"] not in repr(url)
    assert url.render_as_string(hide_password=False) == (
        f"postgresql+psycopg://orderops:{STRONG['POSTGRES_PASSWORD']}@localhost:5432/orderops?sslmode=prefer"
    )


def test_secret_weakness_accepts_random_token() -> None:
    assert secret_weakness("q8Zr2LmX0vT5nB7cW4yK1pH9sD6fJ3gA") is None
    assert secret_weakness("x" * 23) is not None


def test_api_settings_defaults() -> None:
    settings = Settings()
    assert settings.ACCESS_TOKEN_EXPIRE_MINUTES == 30
    assert settings.ADMIN_PASSWORD is None  # no admin seeded without a password
    assert settings.CORS_ORIGINS == []
    assert (settings.RATE_LIMIT_USER, settings.RATE_LIMIT_IP, settings.RATE_LIMIT_WINDOW_SECONDS) == (600, 1200, 60)
    assert settings.IDEMPOTENCY_TTL_SECONDS == 24 * 3600
    assert settings.S3_BUCKET is None and settings.STORAGE_DIR == "/data/attachments"
    assert settings.S3_SSE == "AES256"
    assert "application/pdf" in settings.ATTACHMENT_CONTENT_TYPES


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example.com, http://localhost:3000")
    monkeypatch.setenv("ATTACHMENT_CONTENT_TYPES", '["application/pdf"]')
    settings = Settings()
    assert settings.CORS_ORIGINS == ["https://a.example.com", "http://localhost:3000"]
    assert settings.ATTACHMENT_CONTENT_TYPES == ["application/pdf"]


@pytest.mark.parametrize("origin", ["a.example.com", "https://a.example.com/path", "ftp://x.example.com"])
def test_bad_cors_origins_are_refused(monkeypatch: pytest.MonkeyPatch, origin: str) -> None:
    monkeypatch.setenv("CORS_ORIGINS", origin)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert error_fields(info.value) == {"CORS_ORIGINS"}


def test_weak_admin_password_refused_outside_local() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, ENVIRONMENT="production", ADMIN_PASSWORD="admin123", **STRONG)
    assert error_fields(info.value) == {"ADMIN_PASSWORD"}
    assert "admin123" not in str(info.value)
    ok = Settings(_env_file=None, ENVIRONMENT="production", ADMIN_PASSWORD="Ad9fK2lQ7wE4rT1yU8iO3pZ6", **STRONG)
    assert ok.ADMIN_PASSWORD is not None
