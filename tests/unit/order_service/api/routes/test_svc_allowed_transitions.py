"""``allowed_transitions`` on every order the API returns: the caller's role and the order's status
decide it, through the same rule the transition endpoint enforces."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from order_service.models import OrderStatus, Role, allowed_transitions

Headers = dict[str, str]
#: A way to reach each status from ``pending``.
PATHS = {
    "pending": [],
    "paid": ["paid"],
    "shipped": ["paid", "shipped"],
    "delivered": ["paid", "shipped", "delivered"],
    "cancelled": ["cancelled"],
}


def _move(client: TestClient, order_id: str, to: str, headers: Headers) -> Any:
    etag = client.get(f"/api/orders/{order_id}", headers=headers).headers["ETag"]
    return client.post(f"/api/orders/{order_id}/transitions", json={"to": to}, headers={**headers, "If-Match": etag})


def test_every_order_answer_carries_the_callers_transitions(
    client: TestClient, order_body: dict[str, Any], operator_headers: Headers, admin_headers: Headers
) -> None:
    created = client.post("/api/orders", json=order_body)
    assert created.status_code == 201
    order = created.json()
    assert order["allowed_transitions"] == []  # the customer who created it may change nothing
    assert client.get(f"/api/orders/{order['id']}").json()["allowed_transitions"] == []
    assert [o["allowed_transitions"] for o in client.get("/api/orders").json()["items"]] == [[]]
    for staff in (operator_headers, admin_headers):
        assert client.get(f"/api/orders/{order['id']}", headers=staff).json()["allowed_transitions"] == [
            "paid", "cancelled"
        ]
        listed = client.get("/api/orders", headers=staff).json()["items"]
        assert [o["allowed_transitions"] for o in listed] == [["paid", "cancelled"]]
    moved = _move(client, order["id"], "paid", operator_headers)
    assert moved.status_code == 200
    assert moved.json()["allowed_transitions"] == ["shipped", "cancelled"]
    assert client.get(f"/api/orders/{order['id']}").json()["allowed_transitions"] == []
    staff_created = client.post("/api/orders", json=order_body, headers=admin_headers).json()
    assert staff_created["allowed_transitions"] == ["paid", "cancelled"]


@pytest.mark.parametrize("status", list(PATHS))
def test_reported_transitions_are_exactly_the_accepted_ones(
    client: TestClient, order_body: dict[str, Any], operator_headers: Headers, status: str
) -> None:
    """For an order in ``status``: every target the operator is offered is accepted, every other is 409."""
    results = {}
    offered: list[str] = []
    for target in OrderStatus:
        order_id = client.post("/api/orders", json=order_body).json()["id"]
        for step in PATHS[status]:
            assert _move(client, order_id, step, operator_headers).status_code == 200
        offered = client.get(f"/api/orders/{order_id}", headers=operator_headers).json()["allowed_transitions"]
        results[target.value] = _move(client, order_id, target.value, operator_headers).status_code
    assert {target for target, code in results.items() if code == 200} == set(offered)
    assert {code for target, code in results.items() if target not in offered} <= {409}
    assert offered == [s.value for s in allowed_transitions(OrderStatus(status), Role.operator)]


def test_rule_roles_and_order() -> None:
    assert allowed_transitions(OrderStatus.pending, Role.customer) == []
    assert allowed_transitions(OrderStatus.pending, Role.admin) == [OrderStatus.paid, OrderStatus.cancelled]
    assert allowed_transitions(OrderStatus.shipped, Role.operator) == [OrderStatus.delivered]
    assert allowed_transitions(OrderStatus.delivered, Role.admin) == []


def test_clients_cannot_send_it(client: TestClient, order_body: dict[str, Any]) -> None:
    answer = client.post("/api/orders", json={**order_body, "allowed_transitions": ["paid"]})
    assert answer.status_code == 422


def test_schema_documents_it_as_always_present(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    public = schema.get("OrderPublic") or schema["OrderPublic-Output"]
    assert "allowed_transitions" in public["required"]
    assert public["properties"]["allowed_transitions"]["type"] == "array"
