"""crud: totals, lookup, keyset pagination and its cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from order_service import crud
from order_service.models import OrderStatus
from order_service.schemas import OrderCreate


def test_create_order_computes_total_and_defaults(app: Any, order_body: dict[str, Any]) -> None:
    with app.state.session_factory() as session:
        order = crud.create_order(session, OrderCreate.model_validate(order_body))
        assert order.total_minor == 3849
        assert order.status is OrderStatus.pending
        assert order.created_at.tzinfo is not None
        order_id = order.id
    with app.state.session_factory() as session:
        stored = crud.get_order(session, order_id)
        assert stored is not None
        assert stored.total_minor == 3849
        assert [(line.sku, line.quantity, line.unit_price_minor) for line in stored.lines] == [
            ("WIDGET-1", 3, 1250),
            ("GADGET-2", 1, 99),
        ]
        assert crud.get_order(session, uuid.uuid4()) is None


def test_list_orders_pages(app: Any, order_body: dict[str, Any]) -> None:
    with app.state.session_factory() as session:
        ids = [crud.create_order(session, OrderCreate.model_validate(order_body)).id for _ in range(3)]
        first, cursor = crud.list_orders(session, limit=2)
        assert [order.id for order in first] == ids[::-1][:2]
        assert cursor is not None
        second, cursor = crud.list_orders(session, limit=2, after=cursor)
        assert [order.id for order in second] == [ids[0]]
        assert cursor is None
        exact, cursor = crud.list_orders(session, limit=3)
        assert len(exact) == 3 and cursor is None


def test_cursor_round_trip() -> None:
    cursor = crud.PageCursor(created_at=datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC), id=uuid.uuid4())
    token = cursor.encode()
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
    assert crud.PageCursor.decode(token) == cursor
    shifted = crud.PageCursor(created_at=cursor.created_at.astimezone(tz=UTC) + timedelta(0), id=cursor.id)
    assert crud.PageCursor.decode(shifted.encode()) == cursor


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "bm90LWEtY3Vyc29y",  # "not-a-cursor"
        "MjAyNS0wMS0wMVQwMDowMDowMHxub3QtYS11dWlk",  # "2025-01-01T00:00:00|not-a-uuid"
        # naive timestamp: "2025-01-01T00:00:00|00000000-0000-4000-8000-000000000000"
        "MjAyNS0wMS0wMVQwMDowMDowMHwwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA",
        "A" * 201,
        "\u00e9t\u00e9",
    ],
)
def test_cursor_rejects_garbage(token: str) -> None:
    with pytest.raises(crud.InvalidCursorError):
        crud.PageCursor.decode(token)


def test_create_order_is_one_autocommit_statement_and_atomic(app: Any, order_body: dict[str, Any]) -> None:
    """The API's write path: one statement on an autocommit connection (no BEGIN/COMMIT round
    trips), and still all or nothing: a line the database refuses leaves no order behind."""
    from sqlalchemy import event, exc, func, select  # noqa: PLC0415

    from order_service.models import Order  # noqa: PLC0415
    from order_service.schemas import OrderLineCreate  # noqa: PLC0415

    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement.split()[0], conn.connection.dbapi_connection.autocommit))

    engine = app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with app.state.autocommit_session_factory() as session:
            crud.create_order(session, OrderCreate.model_validate(order_body))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen == [("WITH", True)]
    bad = OrderCreate.model_construct(
        customer="ACME", currency="EUR",
        lines=[OrderLineCreate.model_construct(sku="OK-1", quantity=1, unit_price_minor=1),
               OrderLineCreate.model_construct(sku="BAD-2", quantity=0, unit_price_minor=1)],
    )
    with app.state.autocommit_session_factory() as session, pytest.raises(exc.DBAPIError):
        crud.create_order(session, bad)
    with app.state.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1
