"""Data access for orders. Functions take a :class:`sqlalchemy.orm.Session` and
commit their own writes; they raise SQLAlchemy errors unchanged (the API maps
connection failures to 503)."""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, func, select, text, tuple_
from sqlalchemy.orm import Session, joinedload

from order_service.core.security import hash_password
from order_service.models import (
    ALLOWED_TRANSITIONS,
    MAX_LINES_PER_ORDER,
    Attachment,
    Order,
    OrderLine,
    OrderStatus,
    OrderTransition,
    Role,
    User,
)
from order_service.schemas import OrderCreate, UserCreate, UserUpdate

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


@functools.lru_cache(maxsize=MAX_LINES_PER_ORDER)
def _create_statement(line_count: int) -> TextClause:
    """The INSERT of :func:`create_order` for ``line_count`` lines, built once per count.

    Plain SQL rather than a Core ``insert().cte()``: SQLAlchemy cannot cache the compiled
    form of INSERTs inside CTEs and compiled it on every request (a tenth of a worker's CPU
    in the benchmark profile); a ``text()`` statement is compiled once.
    """
    orders, order_lines = Order.__table__.name, OrderLine.__table__.name
    line_values = ", ".join(
        f"(:order_id, :sku_{i}, :quantity_{i}, :unit_price_minor_{i})" for i in range(line_count)
    )
    return text(
        f"WITH new_order AS ("
        f"INSERT INTO {orders} (id, customer, currency, total_minor, owner_id, status, version) "
        f"VALUES (:order_id, :customer, :currency, :total_minor, :owner_id, CAST(:status AS order_status), 1) "
        f"RETURNING created_at), "
        f"new_lines AS (INSERT INTO {order_lines} (order_id, sku, quantity, unit_price_minor) VALUES {line_values}) "
        f"SELECT created_at FROM new_order"
    )


def create_order(session: Session, order_in: OrderCreate, owner_id: uuid.UUID | None = None) -> Order:
    """Store a new ``pending`` order and its lines; return it with id, created_at and version set.

    ``total_minor`` is computed here as the sum of ``quantity * unit_price_minor``
    over the lines (integer minor units); nothing the client sends is trusted for it.
    One statement (this is the hot write path, see :func:`_create_statement`): the order's INSERT
    with ``RETURNING created_at`` and the lines' multi-row INSERT as data-modifying CTEs, so
    it is atomic by itself (PostgreSQL checks the lines' foreign key at the end of the
    statement) and needs no transaction around it: the API runs it on an autocommit
    connection (:func:`order_service.core.db.make_session_factory`), one round trip.
    The session is committed afterwards. The returned :class:`Order` (with its
    :class:`OrderLine` objects) is a detached snapshot of what was stored.
    """
    lines = [
        OrderLine(sku=line.sku, quantity=line.quantity, unit_price_minor=line.unit_price_minor)
        for line in order_in.lines
    ]
    order = Order(
        id=uuid.uuid4(),
        customer=order_in.customer,
        currency=order_in.currency,
        total_minor=sum(line.line_total_minor for line in lines),
        owner_id=owner_id,
        status=OrderStatus.pending,
        version=1,
    )
    params: dict[str, Any] = {
        "order_id": order.id, "customer": order.customer, "currency": order.currency,
        "total_minor": order.total_minor, "owner_id": owner_id, "status": order.status.value,
    }
    for index, line in enumerate(lines):
        params[f"sku_{index}"] = line.sku
        params[f"quantity_{index}"] = line.quantity
        params[f"unit_price_minor_{index}"] = line.unit_price_minor
    created_at = session.execute(_create_statement(len(lines)), params).scalar_one()
    session.commit()
    order.created_at = created_at
    order.lines = lines
    return order


def end_read(session: Session) -> None:
    """End the read transaction now, so the connection goes back to the pool before the answer
    is serialised and sent (loaded objects stay readable: ``expire_on_commit=False``)."""
    session.commit()


def get_order_view(session: Session, order_id: uuid.UUID) -> dict[str, Any] | None:
    """The order as plain data (``OrderPublic``'s fields), or ``None``; one Core query.

    The read hot path: order and lines in one outer join, no ORM objects.
    """
    orders, lines = Order.__table__, OrderLine.__table__
    stmt = (
        select(
            orders.c.id, orders.c.customer, orders.c.currency, orders.c.status, orders.c.total_minor,
            orders.c.created_at, orders.c.owner_id, orders.c.version,
            lines.c.sku, lines.c.quantity, lines.c.unit_price_minor,
        )
        .select_from(orders.outerjoin(lines, lines.c.order_id == orders.c.id))
        .where(orders.c.id == order_id)
        .order_by(lines.c.id)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return None
    first = rows[0]
    return {
        "id": first.id, "customer": first.customer, "currency": first.currency, "status": first.status,
        "total_minor": first.total_minor, "created_at": first.created_at, "owner_id": first.owner_id,
        "version": first.version,
        "lines": [
            {"sku": row.sku, "quantity": row.quantity, "unit_price_minor": row.unit_price_minor,
             "line_total_minor": row.quantity * row.unit_price_minor}
            for row in rows
            if row.sku is not None
        ],
    }


def get_order(session: Session, order_id: uuid.UUID) -> Order | None:
    """The order with ``order_id`` (lines loaded in the same query), or ``None``."""
    stmt = select(Order).where(Order.id == order_id).options(joinedload(Order.lines))
    return session.scalars(stmt).unique().one_or_none()


@dataclass(frozen=True)
class OrderFilter:
    """Filters of the order list; ``None`` means "any". ``created_from`` inclusive, ``created_to`` exclusive."""

    owner_id: uuid.UUID | None = None
    status: OrderStatus | None = None
    customer: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def list_orders(
    session: Session, *, limit: int, after: PageCursor | None = None, where: OrderFilter | None = None
) -> tuple[list[Order], PageCursor | None]:
    """One page of orders matching ``where``, newest first (``created_at DESC, id DESC``, a total order).

    Returns up to ``limit`` orders that come strictly after ``after`` and the
    cursor of the next page (``None`` when this page is the last). Keyset
    pagination: pages stay consistent while new orders arrive.
    """
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)
    where = where or OrderFilter()
    if where.owner_id is not None:
        stmt = stmt.where(Order.owner_id == where.owner_id)
    if where.status is not None:
        stmt = stmt.where(Order.status == where.status)
    if where.customer is not None:
        stmt = stmt.where(Order.customer == where.customer)
    if where.created_from is not None:
        stmt = stmt.where(Order.created_at >= where.created_from)
    if where.created_to is not None:
        stmt = stmt.where(Order.created_at < where.created_to)
    if after is not None:
        stmt = stmt.where(tuple_(Order.created_at, Order.id) < tuple_(after.created_at, after.id))
    orders = list(session.scalars(stmt).all())
    if len(orders) <= limit:
        return orders, None
    page = orders[:limit]
    return page, PageCursor(created_at=page[-1].created_at, id=page[-1].id)


class IllegalTransitionError(Exception):
    """``to`` is not reachable from the order's current status (answer 409)."""

    def __init__(self, current: OrderStatus, wanted: OrderStatus) -> None:
        super().__init__(f"cannot change status from {current.value} to {wanted.value}")
        self.current = current


class StaleVersionError(Exception):
    """The order changed since the version the client holds (answer 412)."""


def transition_order(
    session: Session, order_id: uuid.UUID, *, to: OrderStatus, expected_version: int, actor: Any
) -> tuple[Order, OrderStatus] | None:
    """Move the order to ``to`` and record it in ``order_transitions``; ``(order, previous status)``.

    ``None`` when there is no such order.

    ``actor`` is anything with ``id`` and ``email`` (a :class:`User` or the API's principal).
    The row is locked (``SELECT ... FOR UPDATE``) so concurrent changes serialise.
    Raises :class:`StaleVersionError` when its version is not ``expected_version``
    and :class:`IllegalTransitionError` when the lifecycle forbids the change.
    The version grows by one; the audit row is in the same transaction.
    """
    order = session.scalars(select(Order).where(Order.id == order_id).with_for_update()).one_or_none()
    if order is None:
        return None
    if order.version != expected_version:
        session.rollback()
        raise StaleVersionError
    current = order.status
    if to not in ALLOWED_TRANSITIONS[current]:
        session.rollback()
        raise IllegalTransitionError(current, to)
    order.status = to
    session.add(
        OrderTransition(
            order_id=order.id, from_status=current, to_status=to, actor_id=actor.id, actor_email=actor.email
        )
    )
    session.commit()
    return order, current


def list_transitions(session: Session, order_id: uuid.UUID) -> list[OrderTransition]:
    """The order's audit trail, oldest first."""
    stmt = select(OrderTransition).where(OrderTransition.order_id == order_id).order_by(OrderTransition.id)
    return list(session.scalars(stmt).all())


def get_user(session: Session, user_id: uuid.UUID) -> User | None:
    """The user with ``user_id``, or ``None``."""
    return session.get(User, user_id)


def get_user_by_email(session: Session, email: str) -> User | None:
    """The user with ``email`` (compared lower-cased), or ``None``."""
    return session.scalars(select(User).where(User.email == email.strip().lower())).one_or_none()


def create_user(session: Session, user_in: UserCreate, rounds: int = 12) -> User:
    """Store a user with a bcrypt hash of the password; raises ``IntegrityError`` for a taken e-mail."""
    user = User(email=user_in.email, hashed_password=hash_password(user_in.password, rounds), role=user_in.role)
    session.add(user)
    session.commit()
    return user


def update_user(session: Session, user: User, changes: UserUpdate, rounds: int = 12) -> User:
    """Apply the fields set in ``changes`` (role, is_active, password) and commit."""
    if changes.role is not None:
        user.role = changes.role
    if changes.is_active is not None:
        user.is_active = changes.is_active
    if changes.password is not None:
        user.hashed_password = hash_password(changes.password, rounds)
    session.commit()
    return user


def list_users(session: Session, *, limit: int, offset: int) -> list[User]:
    """Users ordered by e-mail, ``limit`` from ``offset``."""
    return list(session.scalars(select(User).order_by(User.email).limit(limit).offset(offset)).all())


def count_admins(session: Session) -> int:
    """Number of active admins (the last one cannot be demoted or deactivated)."""
    return session.scalar(select(func.count()).select_from(User).where(User.role == Role.admin, User.is_active)) or 0


def ensure_admin(session: Session, email: str, password: str, rounds: int = 12) -> bool:
    """Create the admin ``email`` unless a user with that e-mail exists; ``True`` when created.

    Safe when several workers start together: ``INSERT ... ON CONFLICT DO NOTHING`` on the
    unique e-mail, so exactly one of them creates it and nobody logs an error.
    """
    from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

    email = email.strip().lower()
    if get_user_by_email(session, email) is not None:
        return False
    stmt = (
        pg_insert(User.__table__)
        .values(id=uuid.uuid4(), email=email, hashed_password=hash_password(password, rounds), role=Role.admin)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(User.__table__.c.id)
    )
    created = session.execute(stmt).first() is not None
    session.commit()
    return created


def add_attachment(session: Session, attachment: Attachment) -> Attachment:
    """Store attachment metadata (the bytes are already in storage)."""
    session.add(attachment)
    session.commit()
    return attachment


def list_attachments(session: Session, order_id: uuid.UUID) -> list[Attachment]:
    """The order's attachments, oldest first."""
    stmt = select(Attachment).where(Attachment.order_id == order_id).order_by(Attachment.created_at, Attachment.id)
    return list(session.scalars(stmt).all())


def get_attachment(session: Session, order_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment | None:
    """The attachment ``attachment_id`` of order ``order_id``, or ``None``."""
    attachment = session.get(Attachment, attachment_id)
    return attachment if attachment is not None and attachment.order_id == order_id else None
