"""Run results and the stable ``result.json`` schema.

``result.json`` (schema version :data:`SCHEMA_VERSION`; fields are only ever added, a removal or
a change of meaning bumps the version)::

    {
      "schema_version": 1,
      "run_id": "20261129T201500Z-daily-3f9a1c",    sortable: UTC start time, runbook, random
      "runbook": "daily",  "title": "...",
      "inventory": "inventories/local.py",
      "check": false,       check mode
      "approved": false,    destructive steps approved (--yes / confirm)
      "params": {...},      validated parameters (secrets masked)
      "limit": ["host"] | null,
      "started_at": "2026-11-29T20:15:00Z",  "finished_at": "...",  "duration_s": 12.3,
      "status": "ok" | "changed" | "failed" | "aborted",
      "hosts": ["orderops-1", ...],
      "steps": [
        {"name": "...", "doc": "Markdown", "target": "app", "executor": "remote",
         "changes": false, "destructive": false, "on_failure": "continue",
         "results": {"<host>": {"status": "ok" | "changed" | "failed" | "skipped",
                                "message": "...", "data": {...},
                                "tables": [{"title", "columns", "rows"}],
                                "attempts": 1, "duration_s": 0.4,
                                "started_at": "..."}}}
      ],
      "summary": {"ok": 3, "changed": 0, "failed": 0, "skipped": 1}
    }

The first and last steps are the engine's ``Take the host lock`` / ``Release the host lock``
when the runbook takes the per-host lock.

``events.jsonl`` holds one JSON object per line: ``{"ts", "event": "run-start" | "step-start" |
"host-result" | "run-end", "run_id", ...}``; ``host-result`` events carry ``step``, ``host`` and
the per-host fields above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "HostResult", "StepRecord", "RunResult", "run_status"]

SCHEMA_VERSION = 1


@dataclass
class HostResult:
    """One step on one host (see the schema): status, message, data, tables, attempts, timing."""

    status: str
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    duration_s: float = 0.0
    started_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The schema's per-host object."""
        return {
            "status": self.status, "message": self.message, "data": self.data, "tables": self.tables,
            "attempts": self.attempts, "duration_s": round(self.duration_s, 3), "started_at": self.started_at,
        }


@dataclass
class StepRecord:
    """A step's description plus its per-host results."""

    name: str
    doc: str
    target: str
    executor: str
    changes: bool
    destructive: bool
    on_failure: str
    results: dict[str, HostResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The schema's step object."""
        return {
            "name": self.name, "doc": self.doc, "target": self.target, "executor": self.executor,
            "changes": self.changes, "destructive": self.destructive, "on_failure": self.on_failure,
            "results": {h: r.to_dict() for h, r in self.results.items()},
        }


@dataclass
class RunResult:
    """A whole run; :meth:`to_dict` is ``result.json`` (before masking)."""

    run_id: str
    runbook: str
    title: str
    inventory: str
    check: bool
    approved: bool
    params: dict[str, Any]
    limit: list[str] | None
    started_at: str
    hosts: list[str]
    run_dir: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    aborted: bool = False
    steps: list[StepRecord] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Count of host results by status."""
        counts = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0}
        for s in self.steps:
            for r in s.results.values():
                counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @property
    def status(self) -> str:
        """``aborted`` | ``failed`` | ``changed`` | ``ok``."""
        return run_status(self.summary(), self.aborted)

    @property
    def failed(self) -> bool:
        """True when any step failed on any host (the CLI exits non-zero)."""
        return self.summary()["failed"] > 0 or self.aborted

    def to_dict(self) -> dict[str, Any]:
        """``result.json`` (schema above)."""
        return {
            "schema_version": SCHEMA_VERSION, "run_id": self.run_id, "runbook": self.runbook, "title": self.title,
            "inventory": self.inventory, "check": self.check, "approved": self.approved, "params": self.params,
            "limit": self.limit, "started_at": self.started_at, "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3), "status": self.status, "hosts": self.hosts,
            "steps": [s.to_dict() for s in self.steps], "summary": self.summary(),
        }


def run_status(summary: dict[str, int], aborted: bool = False) -> str:
    """Overall status from a summary: aborted > failed > changed > ok."""
    if aborted:
        return "aborted"
    if summary.get("failed"):
        return "failed"
    if summary.get("changed"):
        return "changed"
    return "ok"
