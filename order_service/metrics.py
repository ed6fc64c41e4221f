"""Prometheus metrics, served at ``/metrics`` (not under ``/api``; nginx does not expose it).

- ``orderops_http_requests_total{method, route, status}`` and
  ``orderops_http_request_duration_seconds{method, route, status}`` (histogram):
  ``route`` is the route template (``/api/orders/{order_id}``), ``unmatched`` for 404s
  outside any route, so labels stay bounded.
- ``orderops_orders_created_total{status}``, ``orderops_order_transitions_total{from_status, to_status}``.
- ``orderops_db_pool_connections{state}``: ``open`` and ``in_use`` connections of the
  SQLAlchemy pools (from pool events), and ``orderops_db_pool_size`` (configured size + overflow).

With several uvicorn workers, ``python -m order_service serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` so that every worker answers with the sum over all workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from sqlalchemy import Engine, event

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "orderops_http_requests", "HTTP requests answered", ("method", "route", "status")
)
HTTP_LATENCY = Histogram(
    "orderops_http_request_duration_seconds",
    "Time from request start to the end of the response, in seconds",
    ("method", "route", "status"),
    buckets=LATENCY_BUCKETS,
)
ORDERS_CREATED = Counter("orderops_orders_created", "Orders created, by initial status", ("status",))
ORDER_TRANSITIONS = Counter(
    "orderops_order_transitions", "Order status changes", ("from_status", "to_status")
)
DB_POOL_CONNECTIONS = Gauge(
    "orderops_db_pool_connections",
    "Database connections of this service's pools by state (open, in_use)",
    ("state",),
    multiprocess_mode="livesum",
)
DB_POOL_LIMIT = Gauge(
    "orderops_db_pool_limit",
    "Most connections the pools may open (pool size + max overflow, summed over workers)",
    multiprocess_mode="livesum",
)


def instrument_engine(engine: Engine, pool_size: int, max_overflow: int) -> None:
    """Track ``engine``'s pool in :data:`DB_POOL_CONNECTIONS` through pool events."""
    DB_POOL_LIMIT.inc(pool_size + max_overflow)
    open_connections = DB_POOL_CONNECTIONS.labels("open")
    in_use = DB_POOL_CONNECTIONS.labels("in_use")

    @event.listens_for(engine, "connect")
    def _connect(*_: object) -> None:
        open_connections.inc()

    @event.listens_for(engine, "close")
    def _close(*_: object) -> None:
        open_connections.dec()

    @event.listens_for(engine, "close_detached")
    def _close_detached(*_: object) -> None:
        open_connections.dec()

    @event.listens_for(engine, "checkout")
    def _checkout(*_: object) -> None:
        in_use.inc()

    @event.listens_for(engine, "checkin")
    def _checkin(*_: object) -> None:
        in_use.dec()


def render() -> tuple[bytes, str]:
    """``(body, content type)`` of the exposition: all workers' values in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """Drop this worker's live gauges from the multiprocess directory (a no-op otherwise)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
