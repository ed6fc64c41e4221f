"""The release record: which order-service image a host runs when a runbook redeployed it.

The emergency-redeploy runbook writes :data:`~deploys.contract.paths.RELEASE_FILE` (one JSON
object, 0644, written to ``.new`` and renamed)::

    {"order_service": "<image ref>", "inventory_ref": "<the inventory's ref when recorded>",
     "previous": "<ref before>", "run_id": "...", "recorded_at": "2026-11-29T20:15:00Z"}

The running version has two sources, the inventory's ``images.order_service`` and this record;
:func:`running_version` is the one rule which wins: the record while the inventory still names
the ref it named when the record was written (a converge keeps a redeployed version), the
inventory once it changed (a new deliberate release), and the inventory when the record is
missing or broken.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from deploys.contract.images import check_immutable
from deploys.contract.paths import RELEASE_FILE, STATE_DIR

__all__ = ["ReleaseRecord", "parse_release", "read_command", "write_command", "RunningVersion", "running_version"]


class ReleaseRecord(BaseModel):
    """The content of ``release.json`` (unknown keys are kept out, so old and new writers mix)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    order_service: str
    inventory_ref: str | None = None
    previous: str | None = None
    run_id: str | None = None
    recorded_at: str | None = None

    @field_validator("order_service")
    @classmethod
    def _immutable(cls, v: str) -> str:
        return check_immutable(v)


def parse_release(text: str) -> ReleaseRecord | None:
    """The record in ``text`` (the file's content); ``None`` when empty, not JSON, or not a valid record."""
    text = text.strip()
    if not text:
        return None
    try:
        return ReleaseRecord.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError):
        return None


def read_command() -> str:
    """Shell command printing the record, or nothing when there is none (exit 0 either way)."""
    return f"cat {RELEASE_FILE} 2>/dev/null || true"


def write_command(record: ReleaseRecord) -> str:
    """Shell command (as root) that writes ``record`` atomically (``.new`` + ``mv``), mode 0644."""
    text = json.dumps(record.model_dump(exclude_none=True), sort_keys=True)
    new = f"{RELEASE_FILE}.new"
    return (f"install -d -m 755 {STATE_DIR} && printf '%s\\n' {shlex.quote(text)} > {new} && "
            f"chmod 644 {new} && mv {new} {RELEASE_FILE}")


@dataclass(frozen=True)
class RunningVersion:
    """Which order-service ref a host should run, and why.

    + ref: the image ref
    + source: ``release.json`` (the record won) or ``inventory``
    + reason: one line for the operator, e.g. ``recorded by run abc (was x:1)``
    """

    ref: str
    source: Literal["inventory", "release.json"]
    reason: str


def running_version(inventory_ref: str, record: ReleaseRecord | None) -> RunningVersion:
    """The rule in the module docstring: the inventory's ref, or the record's while it is in force."""
    if record is None:
        return RunningVersion(inventory_ref, "inventory", "no release recorded on the host")
    if record.inventory_ref != inventory_ref:
        return RunningVersion(
            inventory_ref, "inventory",
            f"the inventory moved from {record.inventory_ref} to {inventory_ref} since {record.order_service} was recorded",
        )
    run = f" by run {record.run_id}" if record.run_id else ""
    return RunningVersion(record.order_service, "release.json", f"recorded{run} (inventory names {inventory_ref})")
