"""Database tables (SQLAlchemy 2 declarative).

Money is stored in integer minor units of the order's currency (cents for EUR,
yen for JPY): ``unit_price_minor`` per line and the server-computed
``total_minor`` on the order. The same bounds as the API schemas are enforced by
CHECK constraints, so a bug can never store what the API would refuse.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Bounds shared by the request schemas and the table constraints.
CUSTOMER_MAX_LENGTH = 200
SKU_MAX_LENGTH = 64
MAX_LINES_PER_ORDER = 100
MAX_QUANTITY = 10_000
#: 10^10 minor units (100,000,000.00 in a two-decimal currency) per unit.
MAX_UNIT_PRICE_MINOR = 10_000_000_000

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderStatus(enum.StrEnum):
    """Lifecycle of an order; new orders are ``pending``.

    ``pending -> paid -> shipped -> delivered``; ``cancelled`` from ``pending`` or ``paid``.
    """

    pending = "pending"
    paid = "paid"
    shipped = "shipped"
    delivered = "delivered"
    cancelled = "cancelled"


#: Allowed status changes: ``ALLOWED_TRANSITIONS[current]`` is the set of possible next statuses.
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.pending: frozenset({OrderStatus.paid, OrderStatus.cancelled}),
    OrderStatus.paid: frozenset({OrderStatus.shipped, OrderStatus.cancelled}),
    OrderStatus.shipped: frozenset({OrderStatus.delivered}),
    OrderStatus.delivered: frozenset(),
    OrderStatus.cancelled: frozenset(),
}


class Role(enum.StrEnum):
    """What a user may do: ``customer`` (own orders), ``operator`` (+ status changes), ``admin`` (all)."""

    customer = "customer"
    operator = "operator"
    admin = "admin"


#: Roles that may change an order's status (``POST /api/orders/{id}/transitions``).
TRANSITION_ROLES: frozenset[Role] = frozenset({Role.operator, Role.admin})


def allowed_transitions(current: OrderStatus, role: Role) -> list[OrderStatus]:
    """The statuses ``role`` may move an order in status ``current`` to, in lifecycle order.

    :data:`ALLOWED_TRANSITIONS` for the roles in :data:`TRANSITION_ROLES`, nothing for the others:
    the one rule the API enforces and reports (``allowed_transitions`` of every order it returns).
    """
    if role not in TRANSITION_ROLES:
        return []
    possible = ALLOWED_TRANSITIONS[current]
    return [status for status in OrderStatus if status in possible]


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    return Enum(enum_class, name=name, values_callable=lambda members: [member.value for member in members])


EMAIL_MAX_LENGTH = 254


class User(Base):
    """An account: e-mail (stored lower-cased, unique), bcrypt hash, role, active flag."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.customer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __mapper_args__ = {"eager_defaults": True}


class Order(Base):
    """An order: who, in which currency, its lines and the total the server computed."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint("total_minor >= 0", name="total_minor_non_negative"),
        CheckConstraint("length(customer) >= 1", name="customer_not_empty"),
        CheckConstraint("version >= 1", name="version_positive"),
        # Keyset pagination walks (created_at, id) in descending order.
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_owner_id_created_at_id", "owner_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    customer: Mapped[str] = mapped_column(String(CUSTOMER_MAX_LENGTH))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[OrderStatus] = mapped_column(
        _enum(OrderStatus, "order_status"),
        default=OrderStatus.pending,
        server_default=OrderStatus.pending.value,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: The user who created the order (``NULL`` for orders from before authentication existed).
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: Optimistic-concurrency version, the ``ETag``; incremented by every status change.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    # Fetch server defaults (created_at) with INSERT ... RETURNING; UPDATE ... WHERE version = old.
    __mapper_args__ = {"eager_defaults": True, "version_id_col": version}

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="OrderLine.id",
        lazy="selectin",
    )


class OrderLine(Base):
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_price_minor`` each."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price_minor_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    sku: Mapped[str] = mapped_column(String(SKU_MAX_LENGTH))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="lines")

    @property
    def line_total_minor(self) -> int:
        """``quantity * unit_price_minor``, in minor units."""
        return self.quantity * self.unit_price_minor


class OrderTransition(Base):
    """Audit record of one status change: which order, from, to, who and when."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"))
    to_status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: The actor's e-mail at the time, kept when the account is gone.
    actor_email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __mapper_args__ = {"eager_defaults": True}


class Attachment(Base):
    """A file attached to an order (invoice, delivery note); its bytes live in the storage backend."""

    __tablename__ = "attachments"
    __table_args__ = (CheckConstraint("size_bytes >= 0", name="size_non_negative"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Object key in the bucket, or path below ``STORAGE_DIR``.
    storage_key: Mapped[str] = mapped_column(String(300))
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __mapper_args__ = {"eager_defaults": True}
