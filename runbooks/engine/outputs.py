"""Outputs of a finished run besides its run directory: node-exporter textfile metrics and a
webhook on failure.

Textfile collector metrics (one file per runbook, ``orderops_runbook_<name>.prom``), written by
``prometheus_client.write_to_textfile`` (which replaces the file atomically, so node-exporter
never reads half a file), all gauges labelled ``runbook``:

    orderops_runbook_last_run_timestamp_seconds   Unix time the run finished
    orderops_runbook_last_run_success             1 when no step failed, else 0
    orderops_runbook_last_run_duration_seconds    seconds
    orderops_runbook_last_run_failed_results      failed step results (host x step)

The webhook receives a JSON POST (``Content-Type: application/json``) for a failed run::

    {"runbook", "run_id", "status", "summary", "failures": [{"step", "host", "message"}], "run_dir"}
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

__all__ = ["write_textfile", "textfile_text", "notify_webhook", "failure_payload"]

_METRICS = (
    ("last_run_timestamp_seconds", "Unix time the last run of the runbook finished."),
    ("last_run_success", "1 when the last run had no failed step, else 0."),
    ("last_run_duration_seconds", "Duration of the last run in seconds."),
    ("last_run_failed_results", "Failed step results (host x step) of the last run."),
)


def _registry(result: dict[str, Any], now: float | None = None) -> CollectorRegistry:
    values = {
        "last_run_timestamp_seconds": int(now if now is not None else time.time()),
        "last_run_success": 0 if result["status"] in ("failed", "aborted") else 1,
        "last_run_duration_seconds": round(float(result["duration_s"]), 3),
        "last_run_failed_results": int(result["summary"].get("failed", 0)),
    }
    registry = CollectorRegistry()
    for metric, help_text in _METRICS:
        Gauge(f"orderops_runbook_{metric}", help_text, ["runbook"], registry=registry).labels(result["runbook"]).set(values[metric])
    return registry


def textfile_text(result: dict[str, Any], now: float | None = None) -> str:
    """The ``.prom`` text (Prometheus exposition format) for a (masked) result dict."""
    return generate_latest(_registry(result, now)).decode()


def write_textfile(directory: str | Path, result: dict[str, Any]) -> Path:
    """Write ``orderops_runbook_<runbook>.prom`` into ``directory`` atomically; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"orderops_runbook_{result['runbook'].replace('-', '_')}.prom"
    write_to_textfile(str(path), _registry(result))
    path.chmod(0o644)
    return path


def failure_payload(result: dict[str, Any]) -> dict[str, Any]:
    """The webhook body of a (masked) result dict."""
    failures = [
        {"step": s["name"], "host": h, "message": r["message"]}
        for s in result["steps"] for h, r in s["results"].items() if r["status"] == "failed"
    ]
    return {"runbook": result["runbook"], "run_id": result["run_id"], "status": result["status"],
            "summary": result["summary"], "failures": failures[:50], "run_dir": result.get("run_dir", "")}


def notify_webhook(url: str, result: dict[str, Any], timeout: float = 10.0) -> str | None:
    """POST :func:`failure_payload` to ``url``; returns ``None`` on success or the error text."""
    body = json.dumps(failure_payload(result)).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "orderops-runbook"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL is inventory data
            if resp.status >= 300:
                return f"webhook answered HTTP {resp.status}"
    except OSError as e:
        return f"webhook failed: {e}"
    return None
