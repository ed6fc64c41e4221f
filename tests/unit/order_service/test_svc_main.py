"""Application factory: request ids, JSON request logs, error handling that never leaks a 500 page."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from order_service import main as main_module
from order_service.core.config import Settings
from order_service.core.security import create_access_token
from order_service.main import create_app
from tests.unit.order_service.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login


def test_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/api/health", headers={"X-Request-ID": "abc-123.XYZ"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123.XYZ"


def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    first = client.get("/api/health").headers["X-Request-ID"]
    second = client.get("/api/health").headers["X-Request-ID"]
    assert uuid.UUID(first).version == 4
    assert first != second


@pytest.mark.parametrize("bad_id", ["x" * 129, "has space", "new\\nline", "<script>", ""])
def test_malformed_request_id_is_replaced(client: TestClient, bad_id: str) -> None:
    response = client.get("/api/health", headers={"X-Request-ID": bad_id})
    assert response.headers["X-Request-ID"] != bad_id
    assert uuid.UUID(response.headers["X-Request-ID"]).version == 4


def test_request_id_on_error_responses(client: TestClient) -> None:
    for response in (
        client.get("/api/orders/00000000-0000-4000-8000-000000000000", headers={"X-Request-ID": "r-404"}),
        client.post("/api/orders", json={}, headers={"X-Request-ID": "r-422"}),
        client.get("/api/nowhere", headers={"X-Request-ID": "r-404b"}),
    ):
        assert response.headers["X-Request-ID"].startswith("r-")
        assert response.status_code in (404, 422)


def test_json_log_lines_carry_request_id(
    settings: Settings, clean_db: None, capsys: pytest.CaptureFixture[str], order_body: dict[str, Any]
) -> None:
    app = create_app(settings)  # built here so its log handler writes to the captured stdout
    with TestClient(app) as client:
        client.headers.update(login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        assert client.post("/api/orders", json=order_body, headers={"X-Request-ID": "req-log-1"}).status_code == 201
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    ours = [line for line in lines if line.get("request_id") == "req-log-1"]
    messages = {line["message"] for line in ours}
    # the access line (middleware) and the route's own line (run in the threadpool) both carry the id
    assert {"request", "order created"} <= messages
    access = next(line for line in ours if line["message"] == "request")
    assert access["method"] == "POST"
    assert access["path"] == "/api/orders"
    assert access["status"] == 201
    assert access["duration_ms"] >= 0
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


def test_unhandled_error_is_json_500_with_request_id(
    app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/api/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert response.headers["X-Request-ID"] == "req-500"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'["a", "list"]', "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
        (b"customer=x", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ],
    ids=["broken", "list", "null", "empty", "form", "binary", "deeply-nested"],
)
def test_malformed_bodies_are_client_errors(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post("/api/orders", content=content, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"


def test_validation_errors_name_fields_without_echoing_input(client: TestClient) -> None:
    response = client.post(
        "/api/orders",
        json={"customer": "A", "currency": "eur", "lines": [{"sku": "S", "quantity": -1, "unit_price_minor": 1}]},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {tuple(error["loc"]) for error in detail} == {
        ("body", "currency"),
        ("body", "lines", 0, "quantity"),
    }
    for error in detail:
        assert set(error) == {"loc", "msg", "type"}


def test_database_down_is_503_not_500(
    settings_factory: Any, closed_port: int, order_body: dict[str, Any]
) -> None:
    settings = settings_factory(POSTGRES_PORT=closed_port)
    token, _ = create_access_token(uuid.uuid4(), "admin", settings.SECRET_KEY.get_secret_value(), 5)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        response = client.post("/api/orders", json=order_body)
        assert response.status_code == 503
        assert response.json() == {"detail": "database unavailable"}
        assert response.headers["Retry-After"] == "5"
        assert client.get("/api/orders").status_code == 503


def test_module_app_is_built_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(main_module, "_app", None)
    from order_service.main import app

    assert isinstance(app, FastAPI)
    assert main_module.app is app
    assert re.match(r"^/api/", app.openapi_url or "")
    with pytest.raises(AttributeError):
        main_module.no_such_attribute  # noqa: B018


def test_openapi_documents_the_api(client: TestClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["version"] == "0.1.0"
    assert {"/api/orders", "/api/orders/{order_id}", "/api/health", "/api/ready"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/orders"]) == {"get", "post"}
