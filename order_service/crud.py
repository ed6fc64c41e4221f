"""Data access for orders. Functions take a :class:`sqlalchemy.orm.Session` and
commit their own writes; they raise SQLAlchemy errors unchanged (the API maps
connection failures to 503)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from order_service.models import Order, OrderLine
from order_service.schemas import OrderCreate

#: Longest cursor string accepted (an encoded cursor is ~80 characters).
MAX_CURSOR_LENGTH = 200


class InvalidCursorError(ValueError):
    """A pagination cursor that was not produced by :meth:`PageCursor.encode`."""


@dataclass(frozen=True)
class PageCursor:
    """Position in the (created_at DESC, id DESC) order: the last order of a page."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """Opaque URL-safe token (base64 of ``<iso timestamp>|<uuid>``, unpadded)."""
        raw = f"{self.created_at.isoformat()}|{self.id}".encode("ascii")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Parse a token from :meth:`encode`; raises :class:`InvalidCursorError` otherwise."""
        if not token or len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursorError("invalid cursor")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            created_text, id_text = raw.split("|")
            created_at = datetime.fromisoformat(created_text)
            order_id = uuid.UUID(id_text)
        except (ValueError, binascii.Error, UnicodeError) as exc:
            raise InvalidCursorError("invalid cursor") from exc
        if created_at.tzinfo is None:
            raise InvalidCursorError("invalid cursor")
        return cls(created_at=created_at, id=order_id)


def create_order(session: Session, order_in: OrderCreate) -> Order:
    """Store a new ``pending`` order and its lines; return it with id and created_at set.

    ``total_minor`` is computed here as the sum of ``quantity * unit_price_minor``
    over the lines (integer minor units); nothing the client sends is trusted for it.
    """
    lines = [
        OrderLine(sku=line.sku, quantity=line.quantity, unit_price_minor=line.unit_price_minor)
        for line in order_in.lines
    ]
    order = Order(
        customer=order_in.customer,
        currency=order_in.currency,
        total_minor=sum(line.line_total_minor for line in lines),
        lines=lines,
    )
    session.add(order)
    session.commit()
    return order


def get_order(session: Session, order_id: uuid.UUID) -> Order | None:
    """The order with ``order_id`` (lines loaded), or ``None``."""
    return session.get(Order, order_id)


def list_orders(
    session: Session, *, limit: int, after: PageCursor | None = None
) -> tuple[list[Order], PageCursor | None]:
    """One page of orders, newest first (``created_at DESC, id DESC``, a total order).

    Returns up to ``limit`` orders that come strictly after ``after`` and the
    cursor of the next page (``None`` when this page is the last). Keyset
    pagination: pages stay consistent while new orders arrive.
    """
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)
    if after is not None:
        stmt = stmt.where(tuple_(Order.created_at, Order.id) < tuple_(after.created_at, after.id))
    orders = list(session.scalars(stmt).all())
    if len(orders) <= limit:
        return orders, None
    page = orders[:limit]
    return page, PageCursor(created_at=page[-1].created_at, id=page[-1].id)
