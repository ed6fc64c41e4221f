"""users, order lifecycle (paid/delivered, version, owner), transition audit, attachments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:00:00

Existing orders keep working: ``confirmed`` becomes ``paid`` (the same place in the
lifecycle), their ``version`` starts at 1 and their ``owner_id`` is NULL (visible to
operators and admins only).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

order_status = postgresql.ENUM(name="order_status", create_type=False)
user_role = postgresql.ENUM("customer", "operator", "admin", name="user_role", create_type=False)


def upgrade() -> None:
    """Extend the status type, add users, owner/version columns, the audit and attachment tables."""
    op.execute("ALTER TYPE order_status RENAME VALUE 'confirmed' TO 'paid'")
    # PostgreSQL >= 12 allows ADD VALUE in a transaction (the value is not used in it).
    op.execute("ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'delivered' AFTER 'shipped'")
    user_role.create(op.get_bind(), checkfirst=False)
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("hashed_password", sa.String(length=200), nullable=False),
        sa.Column("role", user_role, nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.add_column("orders", sa.Column("owner_id", sa.Uuid(), nullable=True))
    op.add_column("orders", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.create_foreign_key(
        op.f("fk_orders_owner_id_users"), "orders", "users", ["owner_id"], ["id"], ondelete="SET NULL"
    )
    op.create_check_constraint(op.f("ck_orders_version_positive"), "orders", "version >= 1")
    op.create_index("ix_orders_owner_id_created_at_id", "orders", ["owner_id", "created_at", "id"])
    op.create_table(
        "order_transitions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", order_status, nullable=False),
        sa.Column("to_status", order_status, nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_transitions_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_order_transitions_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_transitions")),
    )
    op.create_index(op.f("ix_order_transitions_order_id"), "order_transitions", ["order_id"])
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_attachments_size_non_negative")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_attachments_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name=op.f("fk_attachments_uploaded_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(op.f("ix_attachments_order_id"), "attachments", ["order_id"])


def downgrade() -> None:
    """Back to 0001: drop the new tables and columns; ``paid`` -> ``confirmed``, ``delivered`` -> ``shipped``."""
    op.drop_index(op.f("ix_attachments_order_id"), table_name="attachments")
    op.drop_table("attachments")
    op.drop_index(op.f("ix_order_transitions_order_id"), table_name="order_transitions")
    op.drop_table("order_transitions")
    op.drop_index("ix_orders_owner_id_created_at_id", table_name="orders")
    op.drop_constraint(op.f("ck_orders_version_positive"), "orders", type_="check")
    op.drop_constraint(op.f("fk_orders_owner_id_users"), "orders", type_="foreignkey")
    op.drop_column("orders", "version")
    op.drop_column("orders", "owner_id")
    op.drop_table("users")
    user_role.drop(op.get_bind(), checkfirst=False)
    # PostgreSQL cannot drop an enum value: rebuild the type with the 0001 values.
    op.execute("ALTER TABLE orders ALTER COLUMN status DROP DEFAULT")
    op.execute("ALTER TYPE order_status RENAME TO order_status_0002")
    op.execute("CREATE TYPE order_status AS ENUM ('pending', 'confirmed', 'shipped', 'cancelled')")
    op.execute(
        "ALTER TABLE orders ALTER COLUMN status TYPE order_status USING ("
        "CASE status::text WHEN 'paid' THEN 'confirmed' WHEN 'delivered' THEN 'shipped' "
        "ELSE status::text END)::order_status"
    )
    op.execute("ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'pending'")
    op.execute("DROP TYPE order_status_0002")
