"""Run directory writers: ``events.jsonl`` (streamed), ``result.json`` and ``report.md``.

All writers take data that the :class:`~runbooks.engine.masking.Masker` has already masked,
or mask it themselves (:class:`EventLog`).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runbooks.engine.masking import Masker
from runbooks.engine.rotation import RESULT_FILE

__all__ = ["EventLog", "write_result", "render_markdown", "md_table", "utc_now"]

_ICON = {"ok": "ok", "changed": "CHANGED", "failed": "FAILED", "skipped": "skipped"}


def utc_now() -> str:
    """Current UTC time as ``2026-11-29T20:15:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventLog:
    """Appends masked JSON events to ``events.jsonl`` (thread-safe, flushed per event)."""

    def __init__(self, path: Path, run_id: str, masker: Masker):
        self.path = path
        self.run_id = run_id
        self.masker = masker
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one event ``{"ts", "event", "run_id", **fields}``; returns it (masked)."""
        record = self.masker.obj({"ts": utc_now(), "event": event, "run_id": self.run_id, **fields})
        with self._lock:
            self._file.write(json.dumps(record, sort_keys=False, default=str) + "\n")
            self._file.flush()
        return record

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


def write_result(run_dir: Path, result: dict[str, Any]) -> Path:
    """Write ``result.json`` (already masked) atomically; returns its path."""
    path = run_dir / RESULT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def hosts_by_steps(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The overview matrix: columns ``step`` + hosts, one row per step, cells are statuses."""
    hosts = result["hosts"]
    rows = []
    for s in result["steps"]:
        rows.append([s["name"]] + [_ICON.get(s["results"].get(h, {}).get("status", ""), "-") if h in s["results"] else "-" for h in hosts])
    return ["step"] + hosts, rows


def render_markdown(result: dict[str, Any]) -> str:
    """``report.md`` of a (masked) result dict: header, hosts-by-steps table, then each step's
    documentation, per-host results and tables, and a relative link to each attached file
    (``files``: the report sits in the run directory beside them)."""
    r = result
    lines = [
        f"# {r['title']} (`{r['runbook']}`)",
        "",
        f"- run: `{r['run_id']}`  status: **{r['status']}**" + ("  (check mode)" if r["check"] else ""),
        f"- inventory: `{r['inventory']}`  hosts: {', '.join(r['hosts']) or '(none)'}",
        f"- started: {r['started_at']}  finished: {r['finished_at']}  duration: {r['duration_s']:.1f} s",
        f"- parameters: `{json.dumps(r['params'], sort_keys=True)}`",
        f"- summary: " + ", ".join(f"{k} {v}" for k, v in r["summary"].items()),
        "",
        "## Overview",
        "",
        md_table(*hosts_by_steps(r)),
        "",
    ]
    for i, s in enumerate(r["steps"], 1):
        again = f" (attempt {s['attempt']})" if s.get("attempt", 1) > 1 else ""
        lines += [f"## {i}. {s['name']}{again}", ""]
        if s["doc"]:
            lines += [s["doc"], ""]
        rows = [[h, hr["status"], hr["message"], hr["attempts"], f"{hr['duration_s']:.1f}"] for h, hr in s["results"].items()]
        if rows:
            lines += [md_table(["host", "status", "message", "attempts", "seconds"], rows), ""]
        for h, hr in s["results"].items():
            for t in hr.get("tables", []):
                lines += [f"**{h}: {t['title']}**", "", md_table(t["columns"], t["rows"]) if t["rows"] else "_(empty)_", ""]
            for name in hr.get("files", []):
                lines += [f"**{h}: attachment** [{name}]({quote(name)})", ""]
    return "\n".join(lines).rstrip() + "\n"
