"""Runbook ``backup``: ``backup now`` on every database host.

Starts ``orderops-backup.service``, the same unit the timer starts (same environment,
credentials and failure hook), waits for it and reports the new backup's manifest.
"""

from __future__ import annotations

from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._backup import backup_cmd

__all__ = ["RUNBOOK", "take_backup"]


def take_backup(ctx: StepContext) -> StepResult:
    """`orderops-backup now`; the result of a step (used by emergency-redeploy too)."""
    import json

    out = ctx.sh(backup_cmd("now"))
    if not out.ok:
        reason = (out.stderr.strip().splitlines() or ["see journalctl -u orderops-backup"])[-1]
        return ctx.failed(f"backup failed: {reason[-300:]}")
    manifest = json.loads(out.stdout)
    sizes = [[k, v["name"], v["bytes"]] for k, v in sorted(manifest["files"].items())]
    return ctx.changed(f"backup {manifest['id']} taken ({manifest['duration_seconds']} s)",
                       {"backup": manifest["id"], "row_counts": manifest["row_counts"]},
                       [Table("files", ["kind", "file", "bytes"], sizes)])


@step("Back up now", timeout=6 * 3600, changes=True)
def now(ctx: StepContext) -> StepResult:
    """`orderops-backup now` on the host (`systemctl start orderops-backup.service`)."""
    if ctx.check:
        return ctx.skipped("check mode: would start orderops-backup.service")
    return take_backup(ctx)


RUNBOOK = Runbook(name="backup", title="Backup now", doc=__doc__, steps=(now,), lock=False)
