"""Outcome signals of a run: node-exporter textfile metrics and a webhook on failure.

Textfile collector format (one file per runbook, ``orderops_runbook_<name>.prom``, replaced
atomically so node-exporter never reads half a file)::

    orderops_runbook_last_run_timestamp_seconds{runbook="daily"} 1764446100
    orderops_runbook_last_run_success{runbook="daily"} 1
    orderops_runbook_last_run_duration_seconds{runbook="daily"} 12.3
    orderops_runbook_last_run_failed_results{runbook="daily"} 0

The webhook receives a JSON POST (``Content-Type: application/json``) for a failed run::

    {"runbook", "run_id", "status", "summary", "failures": [{"step", "host", "message"}], "run_dir"}
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["write_textfile", "textfile_text", "notify_webhook", "failure_payload"]

_METRICS = (
    ("last_run_timestamp_seconds", "Unix time the last run of the runbook finished."),
    ("last_run_success", "1 when the last run had no failed step, else 0."),
    ("last_run_duration_seconds", "Duration of the last run in seconds."),
    ("last_run_failed_results", "Failed step results (host x step) of the last run."),
)


def textfile_text(result: dict[str, Any], now: float | None = None) -> str:
    """The ``.prom`` text for a (masked) result dict."""
    name = result["runbook"].replace("\\", "").replace('"', "")
    values = {
        "last_run_timestamp_seconds": int(now if now is not None else time.time()),
        "last_run_success": 0 if result["status"] in ("failed", "aborted") else 1,
        "last_run_duration_seconds": round(float(result["duration_s"]), 3),
        "last_run_failed_results": int(result["summary"].get("failed", 0)),
    }
    lines = []
    for metric, help_text in _METRICS:
        full = f"orderops_runbook_{metric}"
        lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge", f'{full}{{runbook="{name}"}} {values[metric]}']
    return "\n".join(lines) + "\n"


def write_textfile(directory: str | Path, result: dict[str, Any]) -> Path:
    """Write ``orderops_runbook_<runbook>.prom`` into ``directory`` atomically; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"orderops_runbook_{result['runbook'].replace('-', '_')}.prom"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".orderops-", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(textfile_text(result))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
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
