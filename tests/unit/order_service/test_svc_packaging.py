"""The image contract other tooling relies on: Dockerfile shape and pinned requirements."""

from __future__ import annotations

import json
import re
from pathlib import Path

import order_service

PACKAGE_DIR = Path(order_service.__file__).resolve().parent
DOCKERFILE = (PACKAGE_DIR / "Dockerfile").read_text()
REQUIREMENTS = (PACKAGE_DIR / "requirements.txt").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_version() -> None:
    assert order_service.__version__ == "0.1.0"


def test_base_image_is_a_build_arg_defaulting_to_python_slim() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms and all(args.split()[0] == "${BASE_IMAGE}" for args in froms)


def test_installs_only_from_the_wheelhouse_which_does_not_reach_the_final_image() -> None:
    steps = instructions()
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "python3 -m venv /opt/venv" in runs
    assert "--no-index" in runs and "--find-links /wheelhouse" in runs
    assert "-r /tmp/requirements.txt" in runs
    final_stage = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    final_copies = [args for keyword, args in final_stage if keyword == "COPY"]
    assert "--from=venv /opt/venv /opt/venv" in final_copies
    assert "order_service /app/order_service" in final_copies
    assert not any("wheelhouse" in args for args in final_copies)


def test_runtime_contract() -> None:
    steps = dict(instructions()[::-1])  # last occurrence wins, as in Docker
    assert steps["WORKDIR"] == "/app"
    assert "PATH=/opt/venv/bin:$PATH" in steps["ENV"]
    assert "PYTHONUNBUFFERED=1" in steps["ENV"]
    assert steps["USER"] not in ("root", "0")
    assert "useradd" in DOCKERFILE and "adduser" not in DOCKERFILE
    assert steps["EXPOSE"] == "8000"
    assert "http://127.0.0.1:8000/api/health" in steps["HEALTHCHECK"]
    assert "urllib" in steps["HEALTHCHECK"]
    assert json.loads(steps["CMD"]) == ["python", "-m", "order_service", "serve"]


def test_requirements_are_exact_pins_of_the_service_dependencies() -> None:
    pins = {}
    for line in REQUIREMENTS.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?)==([0-9][0-9A-Za-z.]*)", line)
            assert match, f"not an exact pin: {line!r}"
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    for name in ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "psycopg-binary",
                 "redis", "pydantic", "pydantic-settings", "uvloop", "httptools", "async-timeout"):
        assert name in pins, name
    assert pins["psycopg"] == pins["psycopg-binary"]
    for test_only in ("pytest", "httpx", "pyinfra", "pytest-postgresql", "pytest-redis"):
        assert test_only not in pins
