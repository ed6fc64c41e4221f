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
    """Lifecycle of an order; new orders are ``pending``."""

    pending = "pending"
    confirmed = "confirmed"
    shipped = "shipped"
    cancelled = "cancelled"


class Order(Base):
    """An order: who, in which currency, its lines and the total the server computed."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        CheckConstraint("total_minor >= 0", name="total_minor_non_negative"),
        CheckConstraint("length(customer) >= 1", name="customer_not_empty"),
        # Keyset pagination walks (created_at, id) in descending order.
        Index("ix_orders_created_at_id", "created_at", "id"),
    )
    # Fetch server defaults (created_at) with INSERT ... RETURNING.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    customer: Mapped[str] = mapped_column(String(CUSTOMER_MAX_LENGTH))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[OrderStatus] = mapped_column(
        Enum(
            OrderStatus,
            name="order_status",
            values_callable=lambda members: [member.value for member in members],
        ),
        default=OrderStatus.pending,
        server_default=OrderStatus.pending.value,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

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
