"""``/api/orders``: create, read, list with cursor pagination, and refusal of bad input."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from order_service.models import MAX_LINES_PER_ORDER, MAX_QUANTITY, MAX_UNIT_PRICE_MINOR


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_201_with_server_computed_total(client: TestClient, order_body: dict[str, Any]) -> None:
    response = client.post("/api/orders", json=order_body)
    assert response.status_code == 201
    order = response.json()
    assert order["total_minor"] == 3 * 1250 + 1 * 99
    assert order["status"] == "pending"
    assert order["customer"] == "ACME GmbH"
    assert order["currency"] == "EUR"
    assert [line["line_total_minor"] for line in order["lines"]] == [3750, 99]
    assert [line["sku"] for line in order["lines"]] == ["WIDGET-1", "GADGET-2"]
    assert uuid.UUID(order["id"])
    assert datetime.fromisoformat(order["created_at"]).tzinfo is not None
    assert response.headers["Location"] == f"/api/orders/{order['id']}"


def test_get_returns_the_stored_order(client: TestClient, order_body: dict[str, Any]) -> None:
    created = create(client, order_body)
    response = client.get(f"/api/orders/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_get_unknown_order_is_404(client: TestClient) -> None:
    response = client.get(f"/api/orders/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"detail": "order not found"}


def test_get_malformed_id_is_422(client: TestClient) -> None:
    response = client.get("/api/orders/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "order_id"]


def test_client_supplied_total_is_refused(client: TestClient, order_body: dict[str, Any]) -> None:
    response = client.post("/api/orders", json={**order_body, "total_minor": 1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "total_minor"]
    assert response.json()["detail"][0]["type"] == "extra_forbidden"


def test_largest_order_fits(client: TestClient) -> None:
    body = {
        "customer": "Big Spender",
        "currency": "JPY",
        "lines": [
            {"sku": f"SKU-{i}", "quantity": MAX_QUANTITY, "unit_price_minor": MAX_UNIT_PRICE_MINOR}
            for i in range(MAX_LINES_PER_ORDER)
        ],
    }
    order = create(client, body)
    assert order["total_minor"] == MAX_LINES_PER_ORDER * MAX_QUANTITY * MAX_UNIT_PRICE_MINOR  # 10^16 > 2^32
    assert len(order["lines"]) == MAX_LINES_PER_ORDER


def test_customer_is_trimmed(client: TestClient, order_body: dict[str, Any]) -> None:
    assert create(client, {**order_body, "customer": "  Jane Doe  "})["customer"] == "Jane Doe"


def _with(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()

BAD_BODIES = [
    # (case id, path in body, new value, expected error loc)
    ("negative-quantity", ("lines", 0, "quantity"), -1, ["body", "lines", 0, "quantity"]),
    ("zero-quantity", ("lines", 0, "quantity"), 0, ["body", "lines", 0, "quantity"]),
    ("huge-quantity", ("lines", 0, "quantity"), MAX_QUANTITY + 1, ["body", "lines", 0, "quantity"]),
    ("enormous-quantity", ("lines", 0, "quantity"), 10**30, ["body", "lines", 0, "quantity"]),
    ("float-quantity", ("lines", 0, "quantity"), 2.5, ["body", "lines", 0, "quantity"]),
    ("string-quantity", ("lines", 0, "quantity"), "3", ["body", "lines", 0, "quantity"]),
    ("bool-quantity", ("lines", 0, "quantity"), True, ["body", "lines", 0, "quantity"]),
    ("negative-price", ("lines", 1, "unit_price_minor"), -5, ["body", "lines", 1, "unit_price_minor"]),
    (
        "huge-price",
        ("lines", 1, "unit_price_minor"),
        MAX_UNIT_PRICE_MINOR + 1,
        ["body", "lines", 1, "unit_price_minor"],
    ),
    ("decimal-price", ("lines", 1, "unit_price_minor"), 12.34, ["body", "lines", 1, "unit_price_minor"]),
    ("lowercase-currency", ("currency",), "eur", ["body", "currency"]),
    ("long-currency", ("currency",), "EURO", ["body", "currency"]),
    ("digit-currency", ("currency",), "E1R", ["body", "currency"]),
    ("number-currency", ("currency",), 978, ["body", "currency"]),
    ("missing-currency", ("currency",), _DELETE, ["body", "currency"]),
    ("empty-lines", ("lines",), [], ["body", "lines"]),
    ("lines-not-list", ("lines",), {"sku": "A"}, ["body", "lines"]),
    (
        "too-many-lines",
        ("lines",),
        [{"sku": "A", "quantity": 1, "unit_price_minor": 1}] * (MAX_LINES_PER_ORDER + 1),
        ["body", "lines"],
    ),
    ("unknown-field", ("discount",), 10, ["body", "discount"]),
    ("unknown-line-field", ("lines", 0, "line_total_minor"), 1, ["body", "lines", 0, "line_total_minor"]),
    ("empty-customer", ("customer",), "   ", ["body", "customer"]),
    ("long-customer", ("customer",), "x" * 201, ["body", "customer"]),
    ("nul-in-customer", ("customer",), "ACME\x00", ["body", "customer"]),
    ("control-in-customer", ("customer",), "ACME\x1b[31m", ["body", "customer"]),
    ("customer-not-string", ("customer",), ["ACME"], ["body", "customer"]),
    ("empty-sku", ("lines", 0, "sku"), "", ["body", "lines", 0, "sku"]),
    ("sku-with-space", ("lines", 0, "sku"), "WID GET", ["body", "lines", 0, "sku"]),
    ("long-sku", ("lines", 0, "sku"), "S" * 65, ["body", "lines", 0, "sku"]),
]


@pytest.mark.parametrize(
    ("path", "value", "loc"), [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
def test_bad_bodies_are_422_naming_the_field(
    client: TestClient, order_body: dict[str, Any], path: tuple[Any, ...], value: Any, loc: list[Any]
) -> None:
    response = client.post("/api/orders", json=_with(order_body, path, value))
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert client.get("/api/orders").json()["items"] == []  # nothing was stored


def test_unpaired_surrogate_is_422(client: TestClient) -> None:
    raw = b'{"customer": "\\ud800", "currency": "EUR", "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}]}'
    response = client.post("/api/orders", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "customer"]


def test_list_paginates_newest_first_without_gaps(client: TestClient, order_body: dict[str, Any]) -> None:
    created = [create(client, {**order_body, "customer": f"customer {i}"})["id"] for i in range(5)]
    seen: list[str] = []
    pages = 0
    url = "/api/orders?limit=2"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        url = f"/api/orders?limit=2&cursor={body['next']}" if body["next"] else ""
    assert pages == 3
    assert seen == list(reversed(created))


def test_list_default_page_and_empty(client: TestClient) -> None:
    body = client.get("/api/orders").json()
    assert body == {"items": [], "next": None}


def test_list_is_stable_for_equal_timestamps(
    client: TestClient, app: Any, admin_headers: dict[str, str], order_body: dict[str, Any]
) -> None:
    # Orders created in one transaction share created_at (now() is the transaction time):
    # the id breaks the tie, so pages neither repeat nor skip. Index scans are disabled so
    # the order comes from ORDER BY alone, not from the (created_at, id) index.
    from sqlalchemy import event

    from order_service.models import Order, OrderLine

    @event.listens_for(app.state.engine, "connect")
    def _no_index_scans(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET enable_indexscan = off")
        dbapi_connection.execute("SET enable_bitmapscan = off")
        dbapi_connection.commit()

    with app.state.session_factory() as session:
        orders = [
            Order(
                customer=f"c{i}",
                currency="EUR",
                total_minor=1,
                lines=[OrderLine(sku="A", quantity=1, unit_price_minor=1)],
            )
            for i in range(7)
        ]
        session.add_all(orders)
        session.commit()
        assert len({order.created_at for order in orders}) == 1
        expected = sorted((str(order.id) for order in orders), key=lambda i: uuid.UUID(i).bytes, reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/orders", params=params, headers=admin_headers).json()  # no owner: staff only
        seen += [item["id"] for item in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == expected


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=abc", "limit=-1", "cursor=not-a-cursor", "cursor=" + "A" * 300, "cursor=%00"],
)
def test_bad_list_parameters_are_422(client: TestClient, query: str) -> None:
    response = client.get(f"/api/orders?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "query"
