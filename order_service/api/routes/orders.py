"""``/api/orders``: create, read and list orders."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from order_service import crud
from order_service.api.deps import SessionDep
from order_service.schemas import Message, OrderCreate, OrderPage, OrderPublic, ValidationErrorBody

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/orders",
    tags=["orders"],
    responses={
        422: {"model": ValidationErrorBody, "description": "Invalid request"},
        503: {"model": Message, "description": "Database unavailable"},
    },
)

#: Page size bounds of ``GET /api/orders``.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrderPublic)
def create_order(
    order_in: OrderCreate, session: SessionDep, request: Request, response: Response
) -> OrderPublic:
    """Create a ``pending`` order; the total is computed from the lines. 201 with the order."""
    order = crud.create_order(session, order_in)
    response.headers["Location"] = str(request.app.url_path_for("read_order", order_id=str(order.id)))
    logger.info(
        "order created",
        extra={"order_id": str(order.id), "total_minor": order.total_minor, "currency": order.currency},
    )
    return OrderPublic.model_validate(order)


@router.get("/{order_id}", response_model=OrderPublic, responses={404: {"model": Message}})
def read_order(order_id: uuid.UUID, session: SessionDep) -> OrderPublic:
    """The order with ``order_id``; 404 when there is none, 422 when the id is not a UUID."""
    order = crud.get_order(session, order_id)
    if order is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="order not found")
    return OrderPublic.model_validate(order)


@router.get("", response_model=OrderPage)
def list_orders(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=crud.MAX_CURSOR_LENGTH)] = None,
) -> OrderPage:
    """Orders newest first, ``limit`` (1..100) per page; follow ``next`` with ``?cursor=``."""
    after = None
    if cursor is not None:
        try:
            after = crud.PageCursor.decode(cursor)
        except crud.InvalidCursorError:
            raise RequestValidationError(
                [{"loc": ("query", "cursor"), "msg": "invalid cursor", "type": "value_error"}]
            ) from None
    orders, next_cursor = crud.list_orders(session, limit=limit, after=after)
    return OrderPage(
        items=[OrderPublic.model_validate(order) for order in orders],
        next=next_cursor.encode() if next_cursor else None,
    )
