"""Textfile-collector metrics of the backup program (``<textfile_dir>/orderops_backup.prom``).

Read by node-exporter's textfile collector (the same directory the runbooks write to); the
monitoring alerts on a stale ``orderops_backup_last_success_timestamp_seconds``::

    orderops_backup_last_success_timestamp_seconds{kind="db"|"attachments"|"offsite"}  Unix time
    orderops_backup_last_duration_seconds{kind=...}    seconds the kind took in its last success
    orderops_backup_last_size_bytes{kind=...}          stored (encrypted) bytes of the last success
    orderops_backup_last_run_success                   1 when the last run succeeded, else 0
    orderops_backup_last_run_timestamp_seconds         end of the last run, success or not
    orderops_backup_valid_backups{location="local"|"s3"}  valid backups after retention

A failed run changes only the last three ``last_run``/count values, never the success metrics.
State between runs lives in ``<backup_dir>/.metrics.json``; files are replaced atomically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["record_success", "record_failure", "render", "PROM_FILE"]

PROM_FILE = "orderops_backup.prom"
_HELP = {
    "orderops_backup_last_success_timestamp_seconds": ("gauge", "Unix time of the last successful backup of this kind"),
    "orderops_backup_last_duration_seconds": ("gauge", "Seconds the last successful backup of this kind took"),
    "orderops_backup_last_size_bytes": ("gauge", "Stored bytes of the last successful backup of this kind"),
    "orderops_backup_last_run_success": ("gauge", "1 when the last backup run succeeded"),
    "orderops_backup_last_run_timestamp_seconds": ("gauge", "Unix time the last backup run ended"),
    "orderops_backup_valid_backups": ("gauge", "Valid backups kept after retention"),
}


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _load(state_file: Path) -> dict:
    try:
        data = json.loads(state_file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def render(state: dict) -> str:
    """The ``.prom`` text of a metrics state ``{"kinds": {kind: {"time", "duration", "bytes"}},
    "last_run": {"ok", "time"}, "valid": {location: n}}``."""
    lines: list[str] = []

    def metric(name: str, samples: list[tuple[str, float]]) -> None:
        if not samples:
            return
        kind, text = _HELP[name]
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {value:g}" if isinstance(value, int) else f"{name}{labels} {value:.3f}"
                     for labels, value in samples)

    kinds = state.get("kinds", {})
    metric("orderops_backup_last_success_timestamp_seconds", [(f'{{kind="{k}"}}', float(v["time"])) for k, v in sorted(kinds.items())])
    metric("orderops_backup_last_duration_seconds", [(f'{{kind="{k}"}}', float(v["duration"])) for k, v in sorted(kinds.items())])
    metric("orderops_backup_last_size_bytes", [(f'{{kind="{k}"}}', int(v["bytes"])) for k, v in sorted(kinds.items())])
    run = state.get("last_run")
    if run:
        metric("orderops_backup_last_run_success", [("", int(bool(run["ok"])))])
        metric("orderops_backup_last_run_timestamp_seconds", [("", float(run["time"]))])
    metric("orderops_backup_valid_backups", [(f'{{location="{k}"}}', int(v)) for k, v in sorted(state.get("valid", {}).items())])
    return "\n".join(lines) + "\n"


def _write(textfile_dir: str | None, backup_dir: Path, state: dict) -> None:
    try:
        _atomic_write(backup_dir / ".metrics.json", json.dumps(state, sort_keys=True), 0o600)
    except OSError:
        pass  # e.g. the backup disk is full: the textfile below must still say the run failed
    if textfile_dir:
        d = Path(textfile_dir)
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / PROM_FILE, render(state))


def record_success(textfile_dir: str | None, backup_dir: Path, kinds: dict[str, dict], valid: dict[str, int]) -> None:
    """After a successful run: ``kinds`` = ``{kind: {"time": unix, "duration": s, "bytes": n}}``."""
    state = _load(backup_dir / ".metrics.json")
    state.setdefault("kinds", {}).update(kinds)
    state["last_run"] = {"ok": True, "time": time.time()}
    state["valid"] = valid
    _write(textfile_dir, backup_dir, state)


def record_failure(textfile_dir: str | None, backup_dir: Path) -> None:
    """After a failed run: only the last-run values change."""
    state = _load(backup_dir / ".metrics.json")
    state["last_run"] = {"ok": False, "time": time.time()}
    _write(textfile_dir, backup_dir, state)
