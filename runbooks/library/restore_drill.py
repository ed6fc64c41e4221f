"""Runbook ``restore-drill``: prove the latest backup restores, without touching production.

    runbook run restore-drill -i INVENTORY -p identity=~/.config/orderops/backup.key

The backup is verified (SHA-256), decrypted with the identity streamed from this machine and
restored into a scratch database ``orders_drill_<stamp>`` on the same server (the live
database, the API and the attachments are not touched); its exact row counts are compared with
the manifest and the live invariants of ``data-integrity`` must hold in it. The scratch
database is dropped at the end, also after a failure. The weekly runbook schedules it.
"""

from __future__ import annotations

import json
import time

from pydantic import BaseModel, ConfigDict, Field

from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._backup import (
    backup_cmd, check_invariants, count_compare, manifest_of, psql_db, read_identity, stream_to_host,
)

__all__ = ["RUNBOOK", "DrillParams", "SCRATCH_PREFIX"]

SCRATCH_PREFIX = "orders_drill_"


class DrillParams(BaseModel):
    """Which backup to drill and the key."""

    model_config = ConfigDict(extra="forbid")

    backup: str = Field("latest", description="'latest' or a backup id")
    identity: str | None = Field(None, description="path of the age private key on the machine running the runbook")
    jobs: int = Field(2, ge=1, le=16)


@step("Find and verify the backup", timeout=3600, on_failure="stop-host")
def find(ctx: StepContext) -> StepResult:
    """`orderops-backup verify`: the backup exists and every file matches its manifest's SHA-256."""
    try:
        ctx.memory["identity"] = read_identity(ctx.params.identity)
    except ValueError as e:
        return ctx.failed(str(e))
    manifest, why = manifest_of(ctx, ctx.params.backup, verify=True)
    if manifest is None:
        return ctx.failed(f"no usable backup {ctx.params.backup}: {why}")
    ctx.memory["manifest"] = manifest
    ctx.memory["scratch"] = f"{SCRATCH_PREFIX}{time.strftime('%Y%m%dt%H%M%Sz', time.gmtime())}"
    return ctx.ok(f"backup {manifest['id']} verified", {"backup": manifest["id"]})


@step("Restore into a scratch database", executor="local", timeout=6 * 3600, changes=True, on_failure="continue")
def restore(ctx: StepContext) -> StepResult:
    """`orderops-backup restore-db <id> --into orders_drill_<stamp>` with the identity on stdin."""
    if ctx.check:
        return ctx.skipped(f"check mode: would restore {ctx.memory['manifest']['id']} into {ctx.memory['scratch']}")
    t0 = time.monotonic()
    out = stream_to_host(ctx, backup_cmd("restore-db", ctx.memory["manifest"]["id"], "--into", ctx.memory["scratch"],
                                         "--jobs", str(ctx.params.jobs)), ctx.memory["identity"])
    if not out.ok:
        return ctx.failed(f"restore failed: {(out.stderr.strip().splitlines() or ['?'])[-1][-400:]}")
    ctx.memory["restored"] = True
    return ctx.changed(f"restored into {ctx.memory['scratch']}", {"restore_seconds": round(time.monotonic() - t0, 1)})


@step("Compare with the manifest", timeout=1800, on_failure="continue")
def compare(ctx: StepContext) -> StepResult:
    """Exact row counts against the manifest, and the data-integrity invariants on the copy."""
    if not ctx.memory.get("restored"):
        return ctx.skipped("nothing restored")
    out = ctx.sh(backup_cmd("counts", ctx.memory["scratch"]))
    if not out.ok:
        return ctx.failed(f"cannot count rows: {out.stderr.strip()[-200:]}")
    counts = json.loads(out.stdout)
    expected = ctx.memory["manifest"]["row_counts"]
    bad = count_compare(expected, counts, exact=True)
    violations, errors = check_invariants(ctx, lambda sql: ctx.sh(psql_db(ctx, ctx.memory["scratch"], sql)))
    rows = [[t, expected[t], counts.get(t)] for t in sorted(expected)]
    tables = [Table("row counts", ["table", "manifest", "restored"], rows)]
    if violations:
        tables.append(Table("violations", ["invariant", "table", "row", "detail"], violations))
    if bad or violations or errors:
        return ctx.failed("; ".join(bad + errors + [f"{v[0]}: {v[1]} {v[2]}" for v in violations[:5]]), {"counts": counts}, tables)
    return ctx.ok(f"restored copy matches the manifest ({sum(counts.values())} rows in {len(counts)} tables)", {"counts": counts}, tables)


@step("Drop the scratch database", timeout=300, changes=True)
def cleanup(ctx: StepContext) -> StepResult:
    """`orderops-backup drop-db` (only a scratch or pre-restore database can be dropped)."""
    if not ctx.memory.get("scratch") or ctx.check:
        return ctx.skipped("nothing to drop")
    out = ctx.sh(backup_cmd("drop-db", ctx.memory["scratch"], "--scratch-prefix", SCRATCH_PREFIX))
    if not out.ok:
        return ctx.failed(f"cannot drop {ctx.memory['scratch']}: {out.stderr.strip()[-200:]}")
    return ctx.changed(f"dropped {ctx.memory['scratch']}")


RUNBOOK = Runbook(name="restore-drill", title="Restore drill", doc=__doc__, params=DrillParams,
                  steps=(find, restore, compare, cleanup))
