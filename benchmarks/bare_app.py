"""The baseline of the order-service benchmark: a bare FastAPI app doing one INSERT / one SELECT.

Same stack as the service (FastAPI, sync routes in the threadpool, SQLAlchemy engine built by
``order_service.core.db.make_engine`` from the same settings: psycopg 3, same pool), no auth,
no validation beyond FastAPI's, no idempotency, no metrics. Run it with uvicorn's factory mode:

    uvicorn --factory benchmarks.bare_app:create_app --workers N ...
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Body, FastAPI, HTTPException
from sqlalchemy import text

from order_service.core.config import Settings
from order_service.core.db import make_engine

DDL = "CREATE TABLE IF NOT EXISTS bare_orders (id uuid PRIMARY KEY, customer text NOT NULL, total_minor bigint NOT NULL)"


def create_app() -> FastAPI:
    """``POST /bare/orders`` (one INSERT, 201) and ``GET /bare/orders/{id}`` (one SELECT)."""
    engine = make_engine(Settings())
    app = FastAPI()

    @app.post("/bare/orders", status_code=201)
    def _create(body: dict[str, Any] = Body(...)) -> dict[str, object]:
        order_id = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO bare_orders (id, customer, total_minor) VALUES (:id, :customer, :total)"),
                {"id": order_id, "customer": str(body.get("customer", "")), "total": 1},
            )
        return {"id": str(order_id)}

    @app.get("/bare/orders/{order_id}")
    def _read(order_id: uuid.UUID) -> dict[str, object]:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT id, customer, total_minor FROM bare_orders WHERE id = :id"), {"id": order_id}
            ).one_or_none()
        if row is None:
            raise HTTPException(404)
        return {"id": str(row.id), "customer": row.customer, "total_minor": row.total_minor}

    return app
