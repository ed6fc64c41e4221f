"""JSON log formatter: one parseable object per record, request id included."""

from __future__ import annotations

import json
import logging

from order_service.core.logging import JsonFormatter, request_id_var


def make_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("order_service.test", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_formats_single_line_json_with_extras() -> None:
    line = JsonFormatter().format(make_record("hello\nworld", order_id="o-1", amount=12))
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "hello\nworld"
    assert payload["level"] == "WARNING"
    assert payload["logger"] == "order_service.test"
    assert payload["order_id"] == "o-1"
    assert payload["amount"] == 12
    assert payload["ts"].endswith("+00:00")
    assert "request_id" not in payload


def test_carries_request_id_from_context() -> None:
    token = request_id_var.set("req-abc")
    try:
        payload = json.loads(JsonFormatter().format(make_record("inside a request")))
    finally:
        request_id_var.reset(token)
    assert payload["request_id"] == "req-abc"


def test_exceptions_and_unserialisable_extras() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = make_record("failed", obj=object())
        record.exc_info = sys.exc_info()
    payload = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in payload["exc_info"]
    assert payload["obj"].startswith("<object object")
