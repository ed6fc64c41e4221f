"""Run results: pydantic models whose JSON is ``result.json``.

The schema of ``result.json`` is generated from :class:`RunResult`
(``RunResult.model_json_schema(mode="serialization")``) and published next to this module as
``result.schema.json``; ``python -m runbooks.engine.results`` rewrites it and a unit test fails
when it is stale. Schema versions (:data:`SCHEMA_VERSION`; fields are only ever added, a removal
or a change of meaning bumps the version):

* 1: the first format (no ``steps[].kind``);
* 2: ``steps[].kind`` (``lock`` | ``step`` | ``unlock``) and ``aborted``; later added
  ``steps[].attempt`` (default 1: a step recorded twice in one run, e.g. a notebook cell run again)
  and ``steps[].results.*.files`` (attachments in the run directory, default none).

:func:`load_result` reads every version (a version-1 file is upgraded on reading: the kind
follows from the engine's lock step names, ``aborted`` from the status), so ``runbook history``
and ``runbook show`` keep working on old run directories.

``events.jsonl`` holds one JSON object per line: ``{"ts", "event": "run-start" | "step-start" |
"host-result" | "retry" | "run-end", "run_id", ...}``; ``host-result`` events carry ``step``,
``host`` and the fields of :class:`HostResult`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_serializer

from runbooks.engine.model import Table
from runbooks.engine.rotation import RESULT_FILE

__all__ = ["SCHEMA_VERSION", "HostResult", "StepRecord", "RunResult", "run_status", "load_result", "SCHEMA_FILE",
           "LOCK_STEP", "UNLOCK_STEP", "result_schema"]

SCHEMA_VERSION = 2
#: Where the generated JSON schema of ``result.json`` is published.
SCHEMA_FILE = Path(__file__).with_name("result.schema.json")

LOCK_STEP = "Take the host lock"
UNLOCK_STEP = "Release the host lock"

Status = Literal["ok", "changed", "failed", "skipped"]
RunStatus = Literal["ok", "changed", "failed", "aborted"]


class HostResult(BaseModel):
    """One step on one host: its status and message, structured ``data`` and ``tables``,
    ``files`` (attachments in the run directory, names relative to it), ``attempts`` made,
    ``duration_s`` (seconds, 3 decimals) and ``started_at`` (UTC, ISO 8601)."""

    model_config = ConfigDict(extra="ignore")

    status: Status
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    tables: list[Table] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list, description="attachments the step wrote into the run directory "
                                                               "(names relative to it; PNGs are embedded in report.ipynb)")
    attempts: int = 0
    duration_s: float = 0.0
    started_at: str = ""

    @field_serializer("duration_s")
    def _round(self, v: float) -> float:
        return round(v, 3)


class StepRecord(BaseModel):
    """A step's description (Markdown ``doc``, target group, executor kind, policies) plus its
    per-host results. ``kind``: ``lock`` / ``unlock`` for the engine's own lock steps."""

    model_config = ConfigDict(extra="ignore")

    name: str
    doc: str = ""
    kind: Literal["lock", "step", "unlock"] = "step"
    target: str = "all"
    executor: str = "remote"
    changes: bool = False
    destructive: bool = False
    on_failure: str = "stop-host"
    serial: int = Field(0, description="hosts per batch of a serial step (0: all hosts at once)")
    attempt: int = Field(1, description="how many times this step has run in this run, this record included "
                                         "(a notebook cell run again records attempt 2)")
    results: dict[str, HostResult] = Field(default_factory=dict)


class RunResult(BaseModel):
    """A whole run: ``result.json``. ``run_dir`` (where it lives) is not part of the file."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    run_id: str = Field(description="<UTC yyyymmddThhmmssZ>-<runbook>-<6 hex>: unique, sortable by start time")
    runbook: str
    title: str = ""
    inventory: str = ""
    check: bool = Field(False, description="check mode")
    approved: bool = Field(False, description="destructive steps approved (--yes / confirm)")
    params: dict[str, Any] = Field(default_factory=dict, description="validated parameters (secrets masked)")
    limit: list[str] | None = None
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    aborted: bool = False
    hosts: list[str] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    run_dir: str = Field("", exclude=True)

    @field_serializer("duration_s")
    def _round(self, v: float) -> float:
        return round(v, 3)

    @computed_field
    @property
    def summary(self) -> dict[str, int]:
        """Count of host results by status (``ok``, ``changed``, ``failed``, ``skipped``)."""
        counts = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0}
        for s in self.steps:
            for r in s.results.values():
                counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @computed_field
    @property
    def status(self) -> RunStatus:
        """``aborted`` | ``failed`` | ``changed`` | ``ok``."""
        return run_status(self.summary, self.aborted)

    @property
    def failed(self) -> bool:
        """True when any step failed on any host (the CLI exits non-zero)."""
        return self.summary["failed"] > 0 or self.aborted


def run_status(summary: dict[str, int], aborted: bool = False) -> str:
    """Overall status from a summary: aborted > failed > changed > ok."""
    if aborted:
        return "aborted"
    if summary.get("failed"):
        return "failed"
    if summary.get("changed"):
        return "changed"
    return "ok"


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    kinds = {LOCK_STEP: "lock", UNLOCK_STEP: "unlock"}
    steps = [{**s, "kind": kinds.get(s.get("name"), "step")} for s in data.get("steps", [])]
    return {**data, "steps": steps, "aborted": data.get("status") == "aborted", "schema_version": SCHEMA_VERSION}


def load_result(path: str | Path) -> RunResult:
    """Read a ``result.json`` of any schema version (or its run directory) as a :class:`RunResult`.

    Raises ``OSError`` / ``ValueError`` (``json.JSONDecodeError``, pydantic's
    ``ValidationError``) for a missing or unreadable file, and ``ValueError`` for a version newer
    than this code knows.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    data = json.loads(path.read_text())
    version = data.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(f"{path}: result schema version {version} is newer than this orderops ({SCHEMA_VERSION})")
    if version < 2:
        data = _upgrade_v1(data)
    result = RunResult.model_validate(data)
    result.run_dir = str(path.parent)
    return result


def result_schema() -> str:
    """The JSON schema text of ``result.json`` as published in :data:`SCHEMA_FILE`."""
    schema = RunResult.model_json_schema(mode="serialization")
    schema["$id"] = f"https://orderops.invalid/runbooks/result-v{SCHEMA_VERSION}.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(result_schema())
    print(f"wrote {SCHEMA_FILE}")
