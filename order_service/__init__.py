"""orderops order service: a FastAPI application for creating and reading orders.

Layout (in the style of FastAPI's full-stack template backend):

- ``core/``: settings, database engine/sessions, logging, passwords and tokens (``security.py``).
- ``models.py`` / ``schemas.py`` / ``crud.py``: tables, API shapes, data access.
- ``idempotency.py`` / ``ratelimit.py``: Redis-backed ``Idempotency-Key`` records and rate limits.
- ``storage.py``: attachments in S3 (boto3) or on a local volume.
- ``metrics.py``: Prometheus metrics for ``/metrics``.
- ``api/``: dependencies and routers (mounted under ``/api``).
- ``main.py``: the application factory and the ASGI ``app``.
- ``entrypoint.py``: ``python -m order_service serve|migrate``.
"""

__version__ = "0.1.0"
