"""Runbook ``aws-restore``: a new RDS instance from a snapshot or a point in time, swapped in on
request (an AWS inventory). Destructive: the restore and the swap run only with ``--yes``.

The restored instance takes the current one's class, subnet group, security groups, parameter group
(TLS forced) and Multi-AZ setting and runs beside it. With ``-p swap=true`` the two swap names
(``ModifyDBInstance`` ``NewDBInstanceIdentifier``, applied immediately): the current instance
becomes ``<id>-old-<run time>`` and the restored one takes ``<id>``, so its endpoint, which the task
definitions and the stack name, is the restored data; the API service then gets a new deployment
so no task keeps connections to the old instance. The old instance is kept (deletion protection on)
for the operator to delete. The master password is the snapshot's (the Secrets Manager value at
snapshot time).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runbooks.core.errors import ApiError
from runbooks.engine.model import Runbook, StepContext, StepResult, step
from runbooks.library._aws import api_service, db_instance, stack_outputs, utcnow

__all__ = ["RUNBOOK", "AwsRestoreParams"]

#: RDS instance identifiers: a letter, then letters/digits with single hyphens, 63 characters at most.
_ID = r"^[a-zA-Z](-?[a-zA-Z0-9])*$"


class AwsRestoreParams(BaseModel):
    """The source (exactly one of ``snapshot``, ``point_in_time``, ``latest``), the new instance's
    identifier, and whether to swap it in."""

    model_config = ConfigDict(extra="forbid")

    snapshot: str | None = Field(None, description="DB snapshot identifier (or ARN) to restore")
    point_in_time: datetime | None = Field(None, description="restore to this UTC time (ISO 8601)")
    latest: bool = Field(False, description="restore to the latest restorable time")
    new_instance: str | None = Field(None, pattern=_ID, max_length=63, description="identifier of the new instance [default: <id>-restore-<run time>]")
    swap: bool = Field(False, description="swap the restored instance in under the current identifier")

    @model_validator(mode="after")
    def _one_source(self) -> "AwsRestoreParams":
        given = [n for n, v in (("snapshot", self.snapshot), ("point_in_time", self.point_in_time),
                                ("latest", self.latest)) if v]
        if len(given) != 1:
            raise ValueError("give exactly one of snapshot, point_in_time, latest" + (f" (got {', '.join(given)})" if given else ""))
        if self.point_in_time is not None and self.point_in_time.tzinfo is None:
            self.point_in_time = self.point_in_time.replace(tzinfo=timezone.utc)
        return self


def _stamp(ctx: StepContext) -> str:
    return ctx.run_id.partition("-")[0].lower()


def _new_id(ctx: StepContext, current: str) -> str:
    return ctx.params.new_instance or f"{current}-restore-{_stamp(ctx)}"


@step("Check the source", target="aws", executor="aws", timeout=60, on_failure="abort")
def source(ctx: StepContext) -> StepResult:
    """The snapshot exists and is `available` (and of PostgreSQL), or the point in time lies within
    the instance's restorable window (latest restorable time back to the backup retention); the new
    identifier is free."""
    db = db_instance(ctx)
    current = db["DBInstanceIdentifier"]
    new = _new_id(ctx, current)
    p = ctx.params
    try:
        db_instance(ctx, new)
        return ctx.failed(f"an instance {new} exists already (choose -p new_instance=...)")
    except ApiError as e:
        if e.code != "DBInstanceNotFound":
            raise
    data = {"current": current, "new_instance": new}
    if p.snapshot:
        key = "DBSnapshotArn" if p.snapshot.startswith("arn:") else "DBSnapshotIdentifier"
        try:
            snaps = ctx.aws("rds", "describe_db_snapshots", DBSnapshotIdentifier=p.snapshot)["DBSnapshots"]
        except ApiError as e:
            if e.code == "DBSnapshotNotFound":
                return ctx.failed(f"no snapshot {p.snapshot}", data)
            raise
        snap = next((s for s in snaps if s.get(key) == p.snapshot), snaps[0])
        if snap["Status"] != "available" or snap.get("Engine") != "postgres":
            return ctx.failed(f"snapshot {p.snapshot} is {snap['Status']} ({snap.get('Engine')}), not an available postgres snapshot", data)
        ctx.memory["source"] = {"snapshot": snap["DBSnapshotIdentifier"]}
        return ctx.ok(f"snapshot {snap['DBSnapshotIdentifier']} ({snap.get('SnapshotCreateTime', '')}) -> {new}", data)
    latest = db.get("LatestRestorableTime")
    if latest is None:
        return ctx.failed(f"{current} has no restorable time (automated backups off?)", data)
    earliest = utcnow() - timedelta(days=db.get("BackupRetentionPeriod", 0))
    when = latest if p.latest else p.point_in_time
    if p.point_in_time and not earliest <= p.point_in_time <= latest:
        return ctx.failed(f"point_in_time {p.point_in_time:%Y-%m-%dT%H:%M:%SZ} is outside the restorable window "
                          f"{earliest:%Y-%m-%dT%H:%M:%SZ} .. {latest:%Y-%m-%dT%H:%M:%SZ}", data)
    ctx.memory["source"] = {"latest": True} if p.latest else {"time": p.point_in_time}
    return ctx.ok(f"{current} at {when:%Y-%m-%dT%H:%M:%SZ} -> {new}", {**data, "time": when.isoformat()})


@step("Restore a new instance", target="aws", executor="aws", timeout=7200, destructive=True, on_failure="abort")
def restore(ctx: StepContext) -> StepResult:
    """`RestoreDBInstanceFromDBSnapshot` or `RestoreDBInstanceToPointInTime` with the current
    instance's class, network, parameter group and Multi-AZ setting; wait until `available`."""
    db = db_instance(ctx)
    current = db["DBInstanceIdentifier"]
    new = _new_id(ctx, current)
    src = ctx.memory["source"]
    if ctx.check:
        return ctx.skipped(f"would restore {src} as {new}", {"new_instance": new})
    common = {
        "DBInstanceClass": db["DBInstanceClass"], "DBSubnetGroupName": db["DBSubnetGroup"]["DBSubnetGroupName"],
        "VpcSecurityGroupIds": [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])],
        "DBParameterGroupName": db["DBParameterGroups"][0]["DBParameterGroupName"],
        "MultiAZ": db.get("MultiAZ", False), "PubliclyAccessible": False, "CopyTagsToSnapshot": True,
        "DeletionProtection": True, "Tags": [{"Key": "orderops:restored-by", "Value": ctx.run_id}],
    }
    if "snapshot" in src:
        ctx.aws("rds", "restore_db_instance_from_db_snapshot", DBInstanceIdentifier=new,
                DBSnapshotIdentifier=src["snapshot"], **common)
    else:
        when = {"UseLatestRestorableTime": True} if src.get("latest") else {"RestoreTime": src["time"]}
        ctx.aws("rds", "restore_db_instance_to_point_in_time", SourceDBInstanceIdentifier=current,
                TargetDBInstanceIdentifier=new, **when, **common)
    ctx.aws_wait("rds", "db_instance_available", DBInstanceIdentifier=new)
    got = db_instance(ctx, new)
    ctx.memory["restored"] = new
    return ctx.changed(f"{new} is {got['DBInstanceStatus']} at {got.get('Endpoint', {}).get('Address', '?')}",
                       {"new_instance": new, "endpoint": got.get("Endpoint", {}).get("Address")})


@step("Swap the restored instance in", target="aws", executor="aws", timeout=3600, destructive=True)
def swap(ctx: StepContext) -> StepResult:
    """With `swap=true`: rename the current instance to `<id>-old-<run time>`, the restored one to
    `<id>` (applied immediately, each waited for), then force a new deployment of the API service."""
    current = stack_outputs(ctx)["DatabaseId"]
    new = ctx.memory.get("restored") or _new_id(ctx, current)
    old = f"{current}-old-{_stamp(ctx)}"
    if not ctx.params.swap:
        return ctx.skipped(f"swap=false: {new} runs beside {current}; swap with -p swap=true, or delete it")
    if ctx.check:
        return ctx.skipped(f"would rename {current} -> {old} and {new} -> {current}, then redeploy the API")
    if "restored" not in ctx.memory:
        return ctx.failed("nothing restored in this run")
    ctx.aws("rds", "modify_db_instance", DBInstanceIdentifier=current, NewDBInstanceIdentifier=old, ApplyImmediately=True)
    ctx.aws_wait("rds", "db_instance_available", DBInstanceIdentifier=old)
    ctx.aws("rds", "modify_db_instance", DBInstanceIdentifier=new, NewDBInstanceIdentifier=current, ApplyImmediately=True)
    ctx.aws_wait("rds", "db_instance_available", DBInstanceIdentifier=current)
    svc = api_service(ctx)
    out = stack_outputs(ctx)
    ctx.aws("ecs", "update_service", cluster=out["ClusterName"], service=svc["serviceName"], forceNewDeployment=True)
    return ctx.changed(f"{current} is now the restored data; the previous instance is {old} (kept); "
                       f"new deployment of {svc['serviceName']} started", {"old_instance": old, "instance": current})


RUNBOOK = Runbook(
    name="aws-restore",
    title="AWS restore (RDS)",
    doc=__doc__ or "",
    params=AwsRestoreParams,
    environment="aws",
    steps=(source, restore, swap),
)
