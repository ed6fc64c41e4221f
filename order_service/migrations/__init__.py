"""Alembic migrations of the order service (``script_location = order_service:migrations``)."""
