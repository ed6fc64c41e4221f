"""orderops order service: a FastAPI application for creating and reading orders.

Layout (in the style of FastAPI's full-stack template backend):

- ``core/``: settings, database engine/sessions, logging.
- ``models.py`` / ``schemas.py`` / ``crud.py``: tables, API shapes, data access.
- ``api/``: dependencies and routers (mounted under ``/api``).
- ``main.py``: the application factory and the ASGI ``app``.
- ``entrypoint.py``: ``python -m order_service serve|migrate``.
"""

__version__ = "0.1.0"
