"""Order lifecycle: transitions (409 on illegal ones, audit trail), ETag / If-Match (412, 428),
list filters; and Idempotency-Key on POST /api/orders (replay, 422 on another body, 409 in flight)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from order_service import crud

Headers = dict[str, str]


def _move(client: TestClient, order: dict[str, Any], to: str, headers: Headers, etag: str | None = None) -> Any:
    extra = {"If-Match": etag} if etag is not None else {}
    return client.post(f"/api/orders/{order['id']}/transitions", json={"to": to}, headers={**headers, **extra})


@pytest.fixture
def order(client: TestClient, order_body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/orders", json=order_body)
    assert response.status_code == 201
    assert response.headers["ETag"] == '"1"'
    return response.json()


def test_full_lifecycle_with_etags_and_audit(client: TestClient, order: dict[str, Any], operator_headers: Headers) -> None:
    etag = client.get(f"/api/orders/{order['id']}").headers["ETag"]
    for to in ("paid", "shipped", "delivered"):
        response = _move(client, order, to, operator_headers, etag)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == to
        etag = response.headers["ETag"]
    assert etag == '"4"'
    trail = client.get(f"/api/orders/{order['id']}/transitions").json()  # the owner may read it
    assert [(t["from_status"], t["to_status"]) for t in trail] == [
        ("pending", "paid"), ("paid", "shipped"), ("shipped", "delivered")
    ]
    assert all(t["actor_email"].startswith("operator") and t["actor_id"] for t in trail)
    assert all(datetime.fromisoformat(t["created_at"]).tzinfo for t in trail)


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], "shipped"),
        ([], "delivered"),
        ([], "pending"),
        (["paid", "shipped"], "cancelled"),
        (["cancelled"], "paid"),
        (["paid", "shipped", "delivered"], "cancelled"),
    ],
)
def test_illegal_transitions_are_409_with_current_status(
    client: TestClient, order: dict[str, Any], operator_headers: Headers, path: list[str], illegal: str
) -> None:
    etag = '"1"'
    for to in path:
        etag = _move(client, order, to, operator_headers, etag).headers["ETag"]
    response = _move(client, order, illegal, operator_headers, etag)
    assert response.status_code == 409
    current = path[-1] if path else "pending"
    assert response.json() == {"detail": f"cannot change status from {current} to {illegal}", "current_status": current}
    assert len(client.get(f"/api/orders/{order['id']}/transitions").json()) == len(path)  # nothing recorded


def test_cancel_from_paid(client: TestClient, order: dict[str, Any], admin_headers: Headers) -> None:
    etag = _move(client, order, "paid", admin_headers, '"1"').headers["ETag"]
    assert _move(client, order, "cancelled", admin_headers, etag).json()["status"] == "cancelled"


def test_if_match_missing_is_428_and_stale_is_412(client: TestClient, order: dict[str, Any], operator_headers: Headers) -> None:
    assert _move(client, order, "paid", operator_headers).status_code == 428
    assert _move(client, order, "paid", operator_headers, '"7"').status_code == 412
    assert _move(client, order, "paid", operator_headers, "not-an-etag").status_code == 412
    assert _move(client, order, "paid", operator_headers, 'W/"1"').status_code == 200
    stale = _move(client, order, "shipped", operator_headers, '"1"')  # someone else moved it first
    assert stale.status_code == 412
    assert client.get(f"/api/orders/{order['id']}").json()["status"] == "paid"


def test_customers_cannot_change_status(client: TestClient, order: dict[str, Any]) -> None:
    response = _move(client, order, "cancelled", {}, '"1"')  # client carries the owner's token
    assert response.status_code == 403


def test_transition_body_is_validated(client: TestClient, order: dict[str, Any], operator_headers: Headers) -> None:
    url = f"/api/orders/{order['id']}/transitions"
    for body in ({"to": "lost"}, {}, {"to": "paid", "by": "me"}):
        response = client.post(url, json=body, headers={**operator_headers, "If-Match": '"1"'})
        assert response.status_code == 422, body


def test_list_filters(client: TestClient, order_body: dict[str, Any], operator_headers: Headers, app: Any) -> None:
    first = client.post("/api/orders", json={**order_body, "customer": "Alpha"}).json()
    client.post("/api/orders", json={**order_body, "customer": "Beta"})
    _move(client, first, "paid", operator_headers, '"1"')

    def ids(**params: Any) -> list[str]:
        response = client.get("/api/orders", params=params)
        assert response.status_code == 200, response.text
        return [item["customer"] for item in response.json()["items"]]

    assert ids(status="paid") == ["Alpha"]
    assert ids(status="pending") == ["Beta"]
    assert ids(customer="Beta") == ["Beta"]
    now = datetime.now(UTC)
    assert ids(created_from=(now - timedelta(minutes=5)).isoformat()) == ["Beta", "Alpha"]
    assert ids(created_to=(now - timedelta(minutes=5)).isoformat()) == []
    assert client.get("/api/orders", params={"created_from": "2024-01-01T00:00:00"}).status_code == 422  # no zone
    assert client.get("/api/orders", params={"status": "lost"}).status_code == 422


def test_idempotent_retry_returns_the_first_answer(client: TestClient, order_body: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "retry-1"}
    first = client.post("/api/orders", json=order_body, headers=key)
    second = client.post("/api/orders", json=order_body, headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/api/orders").json()["items"]) == 1


def test_same_key_other_body_is_422(client: TestClient, order_body: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "retry-2"}
    assert client.post("/api/orders", json=order_body, headers=key).status_code == 201
    response = client.post("/api/orders", json={**order_body, "customer": "Someone Else"}, headers=key)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_keys_are_scoped_per_user(
    anon_client: TestClient, user_factory: Callable[..., Headers], order_body: dict[str, Any]
) -> None:
    alice, bob = user_factory("customer"), user_factory("customer")
    a = anon_client.post("/api/orders", json=order_body, headers={**alice, "Idempotency-Key": "same"})
    b = anon_client.post("/api/orders", json=order_body, headers={**bob, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "Idempotent-Replayed" not in b.headers


def test_key_is_stored_with_a_ttl(client: TestClient, order_body: dict[str, Any], app: Any, settings: Any) -> None:
    assert client.post("/api/orders", json=order_body, headers={"Idempotency-Key": "ttl-1"}).status_code == 201
    keys = list(app.state.redis.scan_iter("idem:*"))
    assert len(keys) == 1
    assert settings.IDEMPOTENCY_TTL_SECONDS - 5 < app.state.redis.ttl(keys[0]) <= settings.IDEMPOTENCY_TTL_SECONDS


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there"])
def test_malformed_keys_are_422(client: TestClient, order_body: dict[str, Any], key: str) -> None:
    assert client.post("/api/orders", json=order_body, headers={"Idempotency-Key": key}).status_code == 422


def test_retry_while_first_is_in_flight_is_409(
    client: TestClient, order_body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real_create = crud.create_order

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(crud, "create_order", slow_create)
    key = {"Idempotency-Key": "in-flight-1"}
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=client.post("/api/orders", json=order_body, headers=key)))
    first.start()
    try:
        assert entered.wait(10)
        second = client.post("/api/orders", json=order_body, headers=key)
        assert second.status_code == 409
        assert second.headers["Retry-After"] == "1"
    finally:
        release.set()
        first.join(10)
    assert results["first"].status_code == 201
    monkeypatch.setattr(crud, "create_order", real_create)
    third = client.post("/api/orders", json=order_body, headers=key)
    assert third.status_code == 201 and third.json()["id"] == results["first"].json()["id"]


def test_failed_first_request_frees_the_key(
    client: TestClient, order_body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = crud.create_order

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(crud, "create_order", broken)
    assert client.post("/api/orders", json=order_body, headers={"Idempotency-Key": "k"}).status_code == 500
    monkeypatch.setattr(crud, "create_order", real_create)
    assert client.post("/api/orders", json=order_body, headers={"Idempotency-Key": "k"}).status_code == 201
