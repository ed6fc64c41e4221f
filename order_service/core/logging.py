"""Structured (one JSON object per line) logging with the current request id.

Every record formatted by :class:`JsonFormatter` carries ``ts``, ``level``,
``logger``, ``message`` and, while a request is being handled, ``request_id``
(read from :data:`request_id_var`, set by the request-id middleware). Extra
attributes passed with ``logger.info(..., extra={...})`` become top-level keys.

``configure_logging`` is used by the application; ``logging.ini`` next to the
package root configures uvicorn's own loggers the same way for ``serve``.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

#: Id of the request being handled by the current task/thread context, if any.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed via ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """Format a record as a single-line JSON object (UTF-8 safe, never raises on odd extras)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for ``record`` (no trailing newline)."""
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """``logging.config.dictConfig`` schema: JSON lines on stdout for root and uvicorn loggers."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # uvicorn's loggers propagate to root so they share its handler and format.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Install :func:`logging_config` (idempotent; safe to call in every worker)."""
    logging.config.dictConfig(logging_config(level))
