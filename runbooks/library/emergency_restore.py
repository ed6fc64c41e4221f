"""Runbook ``emergency-restore``: ``restore latest`` / ``restore <id>`` of the order database.

    runbook run emergency-restore -i INVENTORY -p backup=latest -p identity=~/.config/orderops/backup.key --yes

1. find the backup on the host (or fetch it from S3) and verify every file's SHA-256;
2. stop the writers (the `api` service; nginx keeps answering 502);
3. decrypt (the age identity is streamed from this machine over SSH, never stored on the host)
   and restore into a freshly created database with ``pg_restore --exit-on-error``;
4. compare its exact row counts with the manifest; only then swap it in (the live database is
   renamed to ``orders_pre_restore_<stamp>`` and kept), attachments likewise;
5. run the migrations, start the API, check the counts again, then drop the old database
   (``-p keep_old=true`` keeps it); report the RTO (runbook start to API healthy).

Destructive steps need ``--yes``; ``--check`` verifies the backup and says what it would do.
When a step fails after the API was stopped, the last step starts the API again on whatever
database is live (the old one, unless the swap happened). Never ``docker compose down -v``,
never a volume removed.
"""

from __future__ import annotations

import json
import time

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploys.contract.services import DB_NAME
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._backup import backup_cmd, count_compare, manifest_of, read_identity, stream_to_host
from runbooks.library._common import compose, container_states, parse_states

__all__ = ["RUNBOOK", "RestoreParams"]


class RestoreParams(BaseModel):
    """Which backup, the key to decrypt it, and the restore's knobs."""

    model_config = ConfigDict(extra="forbid")

    backup: str = Field("latest", description="'latest' or a backup id (YYYYmmddTHHMMSSZ)")
    identity: str | None = Field(None, description="path of the age private key on the machine running the runbook")
    jobs: int = Field(2, ge=1, le=16, description="pg_restore -j (>1 stages a seekable plaintext file in the container)")
    keep_old: bool = Field(False, description="keep the pre-restore database after the final check")
    health_timeout: int = Field(180, ge=10, le=3600, description="seconds for the API to become healthy")

    @field_validator("backup")
    @classmethod
    def _ref(cls, v: str) -> str:
        import re

        if v != "latest" and not re.fullmatch(r"\d{8}T\d{6}Z", v):
            raise ValueError("'latest' or a backup id like 20261203T023000Z")
        return v


def _fail(ctx: StepContext, message: str, data: dict | None = None, tables=None) -> StepResult:
    ctx.memory["failed"] = True
    return ctx.failed(message, data, tables)


def _blocked(ctx: StepContext) -> StepResult | None:
    if ctx.memory.get("failed"):
        return ctx.skipped("an earlier step failed")
    return None


@step("Find and verify the backup", timeout=3600, on_failure="continue")
def find(ctx: StepContext) -> StepResult:
    """`orderops-backup verify <backup>` on the host: the newest valid backup (or the given id),
    fetched from S3 when it is not on the host, every file's SHA-256 against its manifest."""
    ctx.memory["t0"] = time.time()
    if not ctx.check:
        try:
            ctx.memory["identity"] = read_identity(ctx.params.identity)
        except ValueError as e:
            return _fail(ctx, str(e))
    manifest, why = manifest_of(ctx, ctx.params.backup, verify=True)
    if manifest is None:
        return _fail(ctx, f"no usable backup {ctx.params.backup}: {why}")
    ctx.memory["manifest"] = manifest
    ctx.memory["stamp"] = time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())
    rows = [[t, n] for t, n in sorted(manifest["row_counts"].items())]
    return ctx.ok(f"backup {manifest['id']} verified (alembic {manifest['alembic_revision'] or '-'}, "
                  f"PostgreSQL {manifest['postgres']['server_version']})",
                  {"backup": manifest["id"], "row_counts": manifest["row_counts"]}, [Table("manifest row counts", ["table", "rows"], rows)])


@step("Stop the writers (API)", timeout=120, destructive=True)
def stop_writers(ctx: StepContext) -> StepResult:
    """`docker compose stop api`: no order is written while the database is replaced."""
    if (blocked := _blocked(ctx)) is not None:
        return blocked
    if ctx.check:
        return ctx.skipped("check mode: would stop the api service")
    out = ctx.sh(compose(ctx, "stop", "api"))
    if not out.ok:
        return _fail(ctx, f"cannot stop the api: {out.stderr.strip()[-300:]}")
    ctx.memory["api_stopped"] = True
    return ctx.changed("api stopped")


@step("Restore into a fresh database", executor="local", timeout=6 * 3600, destructive=True)
def restore_db(ctx: StepContext) -> StepResult:
    """Decrypt with the identity streamed from this machine, `pg_restore --exit-on-error` into
    `orders_restore_<stamp>` (created now; an existing database of that name stops the restore)."""
    if (blocked := _blocked(ctx)) is not None:
        return blocked
    target = f"orders_restore_{ctx.memory['stamp']}"
    manifest = ctx.memory["manifest"]
    if ctx.check:
        return ctx.skipped(f"check mode: would restore {manifest['id']} into {target} (pg_restore -j {ctx.params.jobs})")
    out = stream_to_host(ctx, backup_cmd("restore-db", manifest["id"], "--into", target, "--jobs", str(ctx.params.jobs)),
                         ctx.memory["identity"])
    if not out.ok:
        return _fail(ctx, f"restore failed: {(out.stderr.strip().splitlines() or ['?'])[-1][-400:]}")
    ctx.memory["restored"] = target
    return ctx.changed(f"restored {manifest['id']} into {target}", {"database": target})


def _counts(ctx: StepContext, database: str) -> dict[str, int] | None:
    out = ctx.sh(backup_cmd("counts", database))
    return json.loads(out.stdout) if out.ok else None


@step("Check the restored row counts", timeout=600)
def check_restored(ctx: StepContext) -> StepResult:
    """Exact `count(*)` of the key tables in the restored database against the manifest."""
    if (blocked := _blocked(ctx)) is not None:
        return blocked
    if not ctx.memory.get("restored"):
        return ctx.skipped("nothing restored")
    counts = _counts(ctx, ctx.memory["restored"])
    if counts is None:
        return _fail(ctx, "cannot count rows in the restored database")
    bad = count_compare(ctx.memory["manifest"]["row_counts"], counts, exact=True)
    if bad:
        return _fail(ctx, "restored counts differ from the manifest: " + "; ".join(bad), {"counts": counts})
    return ctx.ok("row counts equal the manifest's", {"counts": counts})


@step("Swap the restored database and attachments in", executor="local", timeout=3600, destructive=True)
def swap(ctx: StepContext) -> StepResult:
    """The live database becomes `orders_pre_restore_<stamp>` (kept), the restored one `orders`;
    the attachments are extracted beside the volume's directory and swapped the same way."""
    if (blocked := _blocked(ctx)) is not None:
        return blocked
    if ctx.check:
        return ctx.skipped("check mode: would rename orders -> orders_pre_restore_<stamp>, the restored database -> orders")
    if not ctx.memory.get("restored"):
        return ctx.skipped("nothing restored")
    stamp, manifest = ctx.memory["stamp"], ctx.memory["manifest"]
    data: dict = {}
    if "attachments" in manifest["files"]:
        out = stream_to_host(ctx, backup_cmd("restore-attachments", manifest["id"]), ctx.memory["identity"])
        if not out.ok:
            return _fail(ctx, f"attachments restore failed: {(out.stderr.strip().splitlines() or ['?'])[-1][-300:]}")
    out = ctx.sh(backup_cmd("swap-db", ctx.memory["restored"], "--stamp", stamp), executor="remote")
    if not out.ok:
        return _fail(ctx, f"swap failed: {out.stderr.strip()[-300:]}")
    ctx.memory["old_db"] = data["old_database"] = json.loads(out.stdout)["old"]
    ctx.memory["swapped"] = True
    if "attachments" in manifest["files"]:
        out = ctx.sh(backup_cmd("swap-attachments", "--stamp", stamp), executor="remote")
        if not out.ok:
            return _fail(ctx, f"attachments swap failed: {out.stderr.strip()[-300:]}")
        data["old_attachments"] = json.loads(out.stdout)["old"]
    return ctx.changed(f"restored database live; old one kept as {data['old_database'] or '(none)'}", data)


@step("Run the migrations", timeout=900, destructive=True)
def migrate(ctx: StepContext) -> StepResult:
    """`python -m order_service migrate` in a one-off api container (an older backup's schema is
    brought to the running version)."""
    if (blocked := _blocked(ctx)) is not None:
        return blocked
    if ctx.check:
        return ctx.skipped("check mode: would run the migrations")
    if not ctx.memory.get("swapped"):
        return ctx.skipped("nothing swapped in")
    out = ctx.sh(compose(ctx, "run", "--rm", "--no-deps", "-T", "api", "python", "-m", "order_service", "migrate"))
    if not out.ok:
        return _fail(ctx, f"migrations failed: {out.stderr.strip()[-300:]}")
    return ctx.changed("migrations applied")


def _wait_healthy(ctx: StepContext) -> str:
    deadline = time.monotonic() + ctx.params.health_timeout
    health = "?"
    while time.monotonic() < deadline:
        api = parse_states(ctx.sh(container_states(ctx)).stdout).get("api")
        health = api.health if api is not None else "missing"
        if api is not None and api.up:  # the contract's "running and healthy" rule
            return "healthy"
        time.sleep(2)
    return health


@step("Start the API and compare with the manifest", timeout=3600)
def start(ctx: StepContext) -> StepResult:
    """Start the api (also after a failed step, on whatever database is live), wait for health,
    compare the live row counts with the manifest (not below: orders may arrive already), drop
    the old database unless `keep_old`, and report the RTO."""
    if not ctx.memory.get("api_stopped"):
        return ctx.skipped("the api was not stopped")
    out = ctx.sh(compose(ctx, "start", "api"))
    health = _wait_healthy(ctx) if out.ok else "not started"
    rto = round(time.time() - ctx.memory["t0"], 1)
    if ctx.memory.get("failed"):
        return ctx.failed(f"restore failed; api started again on the previous database ({health})", {"rto_seconds": rto})
    if health != "healthy":
        return ctx.failed(f"api is {health} after the restore (old database kept: {ctx.memory.get('old_db')})", {"rto_seconds": rto})
    counts = _counts(ctx, DB_NAME) or {}
    bad = count_compare(ctx.memory["manifest"]["row_counts"], counts, exact=False)
    if bad:
        return ctx.failed("live counts below the manifest: " + "; ".join(bad), {"counts": counts, "rto_seconds": rto})
    data = {"backup": ctx.memory["manifest"]["id"], "rto_seconds": rto, "counts": counts}
    old = ctx.memory.get("old_db")
    if old and not ctx.params.keep_old:
        drop = ctx.sh(backup_cmd("drop-db", old))
        data["old_database"] = "dropped" if drop.ok else f"kept ({drop.stderr.strip()[-120:]})"
    else:
        data["old_database"] = old or "(none)"
    return ctx.changed(f"restored {data['backup']}, api healthy, RTO {rto} s", data)


RUNBOOK = Runbook(
    name="emergency-restore",
    title="Emergency restore",
    doc=__doc__,
    params=RestoreParams,
    steps=(find, stop_writers, restore_db, check_restored, swap, migrate, start),
)
