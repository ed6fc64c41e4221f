"""Runbook ``emergency-redeploy``: deploy a given order-service version, health-gated, with rollback.

The running version is one value shared with the deploy: this runbook records it in the host's
release record (:mod:`deploys.contract.release`), and ``deploys/site.py`` reads it, so a later
converge keeps the redeployed version and the drift check does not flag it.

The new version is deployed with the main deploy (``deploys/site.py``, images by the
inventory's transport; ``archive`` needs the image on the controller's Docker). When health
does not return within ``health_timeout`` seconds, the previous version is restored and deployed
again — but only when the database schema revision (``alembic_version``) did not change, or
``compatible_rollback=true`` declares the old version compatible with the new schema; otherwise
the runbook stops and reports for the operator. Never ``docker compose down -v``.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploys.contract.images import check_immutable, parse_image_ref
from deploys.contract.paths import RELEASE_FILE
from deploys.contract.release import ReleaseRecord, write_command
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._backup import image_heads_command
from runbooks.library._common import compose, container_states, parse_states, psql
from runbooks.library.backup_now import take_backup

__all__ = ["RUNBOOK", "RedeployParams", "target_ref"]


def _is_full_ref(version: str) -> bool:
    return "/" in version or ":" in version or "@" in version


class RedeployParams(BaseModel):
    """The version to deploy and the health gate."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="image tag (same repository as the inventory's) or a full image ref")
    health_timeout: int = Field(120, ge=10, le=3600, description="seconds for the stack to become healthy")
    compatible_rollback: bool = Field(False, description="roll back even when the schema revision changed")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        if _is_full_ref(v):
            check_immutable(v)
        elif v == "latest":
            raise ValueError("'latest' is mutable; give a version tag")
        return v


def target_ref(inventory_ref: str, version: str) -> str:
    """The image ref for ``version``: a full ref as is, a bare tag on the inventory's repository."""
    if _is_full_ref(version):
        return version
    return check_immutable(str(parse_image_ref(inventory_ref).with_tag(version)))


def _revision(ctx: StepContext) -> str:
    out = ctx.sh(psql(ctx, "select coalesce(string_agg(version_num, ','), '') from alembic_version"), executor="remote")
    return out.stdout.strip() if out.ok else f"(unknown: {out.stderr.strip()[-120:]})"


def _write_release(ctx: StepContext, ref: str, previous: str) -> None:
    record = ReleaseRecord(
        order_service=ref, inventory_ref=ctx.host.settings.images.order_service, previous=previous, run_id=ctx.run_id,
        recorded_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    out = ctx.sh(write_command(record), executor="remote")
    if not out.ok:
        raise RuntimeError(f"cannot write {RELEASE_FILE}: {out.stderr.strip()[-200:]}")


@step("Record the running version and schema revision", timeout=60, retries=1, on_failure="stop-host")
def record(ctx: StepContext) -> StepResult:
    """The order-service image the `api` container runs now and the database schema revision
    (`alembic_version`), kept for the rollback decision."""
    states = parse_states(ctx.sh(container_states(ctx)).stdout)
    api = states.get("api")
    current = api.image if api else ctx.host.settings.images.order_service
    revision = _revision(ctx)
    new = target_ref(ctx.host.settings.images.order_service, ctx.params.version)
    ctx.memory.update(current=current, revision_before=revision, new=new)
    data = {"running": current, "new": new, "schema_revision": revision}
    if current == new:
        ctx.memory["noop"] = True
        return ctx.ok(f"{new} is already running", data)
    return ctx.ok(f"running {current}, schema revision {revision or '(none)'}", data)


@step("Check the new image is available", executor="local", timeout=60, on_failure="stop-host")
def available(ctx: StepContext) -> StepResult:
    """With the `archive` transport the image must be on the controller's Docker (it is saved,
    uploaded and loaded by the deploy); with `registry` the deploy pulls it."""
    if ctx.memory.get("noop"):
        return ctx.skipped("already running")
    new = ctx.memory["new"]
    if ctx.host.settings.image_transport != "archive":
        return ctx.ok(f"registry transport: the deploy pulls {new}")
    out = ctx.sh(f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(new)}")
    if not out.ok:
        return ctx.failed(f"{new} is not on the controller's Docker (build or pull it first)")
    return ctx.ok(f"{new} present on the controller ({out.stdout.strip()[:19]})")


@step("Back up first when the new image carries a new migration", timeout=6 * 3600, changes=True, on_failure="stop-host")
def backup_first(ctx: StepContext) -> StepResult:
    """The new image's alembic head(s) (read from the image: on the controller's Docker with the
    `archive` transport, else pulled on the host) against the database's revision; when they
    differ, `orderops-backup now` runs before the deploy, and a failed backup stops the redeploy."""
    if ctx.memory.get("noop"):
        return ctx.skipped("already running")
    new = ctx.memory["new"]
    where = "local" if ctx.host.settings.image_transport == "archive" else "remote"
    pull = "" if where == "local" else f"docker pull -q {shlex.quote(new)} >/dev/null && "
    out = ctx.sh(pull + image_heads_command(new), executor=where)
    revision = ctx.memory["revision_before"]
    if not out.ok or not out.stdout.strip():
        # unknown heads: assume a new migration (the safe side); the deploy's health gate judges the image
        why = f"migration heads of {new} unreadable ({out.stderr.strip()[-200:] or 'no output'})"
        data = {"image_heads": None, "schema_revision": revision}
        if ctx.check:
            return ctx.skipped(f"check mode: {why}: would back up first", data)
    else:
        heads = out.stdout.strip().splitlines()[-1]
        data = {"image_heads": heads, "schema_revision": revision}
        if heads == revision:
            return ctx.ok(f"no new migration ({heads})", data)
        if ctx.check:
            return ctx.skipped(f"check mode: {new} migrates {revision or '(none)'} -> {heads}: would back up first", data)
    result = take_backup(ctx)
    result.data.update(data)
    return result


@step("Deploy the new version", executor="pyinfra", timeout=1800, destructive=True, on_failure="continue")
def deploy(ctx: StepContext) -> StepResult:
    """Record the new version in the host's release file, then run the main deploy
    (`deploys/site.py`) with `health_timeout` as the health gate."""
    if ctx.memory.get("noop"):
        return ctx.skipped("already running")
    new, current = ctx.memory["new"], ctx.memory["current"]
    if ctx.check:
        return ctx.skipped(f"check mode: would deploy {new} (running {current})", {"would_deploy": new})
    _write_release(ctx, new, current)
    result = ctx.deploy(data={"health_timeout": str(ctx.params.health_timeout)})
    ctx.memory["deployed"] = result.ok
    if not result.ok:
        ctx.memory["needs_rollback"] = True
        return ctx.failed(f"{new} did not become healthy within {ctx.params.health_timeout} s: " + " | ".join(result.errors)[-600:])
    return ctx.changed(f"deployed {new}", {"deployed": new})


@step("Roll back if unhealthy", executor="pyinfra", timeout=1800, changes=True, on_failure="stop-host")
def rollback(ctx: StepContext) -> StepResult:
    """Only after a failed deploy: when the schema revision is unchanged (or `compatible_rollback`),
    restore the previous version in the release file and deploy it; otherwise stop and report for
    the operator (an old version on a newer schema may corrupt data)."""
    if not ctx.memory.get("needs_rollback"):
        return ctx.skipped("not needed")
    before, after = ctx.memory["revision_before"], _revision(ctx)
    previous = ctx.memory["current"]
    data = {"schema_revision_before": before, "schema_revision_after": after, "previous": previous}
    if before != after and not ctx.params.compatible_rollback:
        return ctx.failed(
            f"schema revision changed {before!r} -> {after!r}: not rolling back automatically; the operator decides "
            f"(old version {previous}; pass -p compatible_rollback=true if it is compatible)", data)
    _write_release(ctx, previous, ctx.memory["new"])
    result = ctx.deploy(data={"health_timeout": str(ctx.params.health_timeout)})
    if not result.ok:
        return ctx.failed(f"rollback to {previous} failed too: " + " | ".join(result.errors)[-600:], data)
    return ctx.changed(f"rolled back to {previous} (schema revision {after or '(none)'} unchanged)", data)


@step("Verify", timeout=120, retries=2, retry_delay=5)
def verify(ctx: StepContext) -> StepResult:
    """What runs now: the `api` image, container health, readiness through nginx, schema revision."""
    states = parse_states(ctx.sh(container_states(ctx)).stdout)
    d = ctx.host.settings.domain
    code = ctx.sh(f"curl -sk --max-time 10 -o /dev/null -w '%{{http_code}}' --resolve {d}:443:127.0.0.1 https://{d}/api/ready", sudo=False).stdout.strip()
    revision = _revision(ctx)
    rows = [[s, v.status, v.health, v.image] for s, v in sorted(states.items())]
    api = states.get("api")
    data = {"running": api.image if api else None, "ready_http": code, "schema_revision": revision}
    table = Table("containers", ["service", "status", "health", "image"], rows)
    if code != "200" or api is None or not api.up:
        return ctx.failed(f"not ready (HTTP {code}, api {api.health if api else 'missing'})", data, [table])
    return ctx.ok(f"running {api.image}, ready", data, [table])


RUNBOOK = Runbook(
    name="emergency-redeploy",
    title="Emergency redeploy",
    doc=__doc__,
    params=RedeployParams,
    steps=(record, available, backup_first, deploy, rollback, verify),
)
