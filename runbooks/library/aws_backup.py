"""Runbook ``aws-backup``: an on-demand RDS snapshot, retention of the manual ones, an optional
cross-region copy (an AWS inventory).

Automated backups (the stack's ``BackupRetentionPeriod``) cover point-in-time restore within their
window; this runbook adds manual snapshots, which live until deleted: the ones it made
(identifier ``<name>-backup-<run time>-<run hex>``, never an operator's own) beyond the newest
``keep`` are deleted, in the environment's region and in the copy region. Encrypted snapshots are
copied across regions with a KMS key of the target region (``copy_kms_key``, default the
AWS-managed ``alias/aws/rds``), as ``CopyDBSnapshot`` requires.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._aws import db_instance, manual_snapshots

__all__ = ["RUNBOOK", "AwsBackupParams", "snapshot_id", "backup_prefix"]

_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"


class AwsBackupParams(BaseModel):
    """What to back up and keep (defaults from the inventory's ``aws.db``)."""

    model_config = ConfigDict(extra="forbid")

    keep: int | None = Field(None, ge=1, le=100, description="manual snapshots kept [default: aws.db.manual_snapshots_keep]")
    copy_region: str | None = Field(None, pattern=_REGION, description="copy to this region [default: aws.db.snapshot_copy_region]")
    copy_kms_key: str = Field("alias/aws/rds", min_length=1, description="KMS key (in the copy region) for encrypted copies")
    snapshot: bool = Field(True, description="take a new snapshot (false: retention only)")


def backup_prefix(ctx: StepContext) -> str:
    """Identifier prefix of the snapshots this runbook makes (and only those are ever deleted)."""
    return f"{ctx.host.settings.name}-backup-"


def snapshot_id(ctx: StepContext) -> str:
    """This run's snapshot identifier: ``<name>-backup-<yyyymmddthhmmssz>-<hex>`` (RDS: letters,
    digits and single hyphens, lower-cased by RDS anyway)."""
    stamp, _, rest = ctx.run_id.partition("-")
    return f"{backup_prefix(ctx)}{stamp.lower()}-{rest.rsplit('-', 1)[-1]}"


def _keep(ctx: StepContext) -> int:
    return ctx.params.keep or ctx.host.settings.db.manual_snapshots_keep


def _copy_region(ctx: StepContext) -> str | None:
    region = ctx.params.copy_region or ctx.host.settings.db.snapshot_copy_region
    return None if region == ctx.host.settings.region else region


@step("Take a manual snapshot", target="aws", executor="aws", timeout=3600, changes=True, on_failure="abort")
def take_snapshot(ctx: StepContext) -> StepResult:
    """`CreateDBSnapshot` of the stack's database, tagged with the run ID, then wait until it is
    `available` (tags of the instance are copied too: the stack sets `CopyTagsToSnapshot`)."""
    db = db_instance(ctx)
    ident, snap = db["DBInstanceIdentifier"], snapshot_id(ctx)
    if not ctx.params.snapshot:
        return ctx.skipped("snapshot=false: retention only")
    if ctx.check:
        return ctx.skipped(f"would snapshot {ident} as {snap}", {"would_create": snap})
    ctx.aws("rds", "create_db_snapshot", DBInstanceIdentifier=ident, DBSnapshotIdentifier=snap,
            Tags=[{"Key": "orderops:run-id", "Value": ctx.run_id}])
    ctx.aws_wait("rds", "db_snapshot_available", DBSnapshotIdentifier=snap)
    got = ctx.aws("rds", "describe_db_snapshots", DBSnapshotIdentifier=snap)["DBSnapshots"][0]
    ctx.memory["snapshot_arn"] = got["DBSnapshotArn"]
    return ctx.changed(f"snapshot {snap} of {ident} is {got['Status']}",
                       {"snapshot": snap, "arn": got["DBSnapshotArn"], "encrypted": got.get("Encrypted", False),
                        "size_gib": got.get("AllocatedStorage")})


@step("Copy to another region", target="aws", executor="aws", timeout=7200, changes=True)
def copy_snapshot(ctx: StepContext) -> StepResult:
    """`CopyDBSnapshot` of this run's snapshot into `copy_region` (same identifier), waiting until
    the copy is `available`; skipped without a copy region."""
    region = _copy_region(ctx)
    if region is None:
        return ctx.skipped("no copy region (aws.db.snapshot_copy_region / -p copy_region)")
    snap = snapshot_id(ctx)
    if ctx.check or "snapshot_arn" not in ctx.memory:
        return ctx.skipped(f"would copy {snap} to {region}" if ctx.check else "no snapshot taken in this run")
    src = ctx.host.settings.region
    ctx.aws("rds", "copy_db_snapshot", region=region, SourceDBSnapshotIdentifier=ctx.memory["snapshot_arn"],
            TargetDBSnapshotIdentifier=snap, KmsKeyId=ctx.params.copy_kms_key, SourceRegion=src,
            CopyTags=True)
    ctx.aws_wait("rds", "db_snapshot_available", region=region, DBSnapshotIdentifier=snap)
    return ctx.changed(f"copied {snap} from {src} to {region}", {"region": region, "snapshot": snap})


@step("Retention of manual snapshots", target="aws", executor="aws", timeout=600, changes=True)
def retention(ctx: StepContext) -> StepResult:
    """Keep the newest `keep` snapshots this runbook made (prefix `<name>-backup-`), per region
    (the environment's and the copy region); delete the older ones. Other manual snapshots are
    listed, never deleted."""
    ident = db_instance(ctx)["DBInstanceIdentifier"]
    keep, prefix = _keep(ctx), backup_prefix(ctx)
    rows, deleted, would = [], [], []
    for region in filter(None, [ctx.host.settings.region, _copy_region(ctx)]):
        snaps = manual_snapshots(ctx, ident, region=region) if region == ctx.host.settings.region else sorted(
            (s for s in ctx.aws("rds", "describe_db_snapshots", region=region, SnapshotType="manual")["DBSnapshots"]
             if s["DBSnapshotIdentifier"].startswith(prefix)), key=lambda s: s.get("SnapshotCreateTime"))
        ours = [s for s in snaps if s["DBSnapshotIdentifier"].startswith(prefix)]
        old = ours[:-keep] if len(ours) > keep else []
        for s in snaps:
            verdict = "delete" if s in old else ("keep" if s in ours else "not ours: kept")
            rows.append([region, s["DBSnapshotIdentifier"], str(s.get("SnapshotCreateTime", "-"))[:19], s["Status"], verdict])
        for s in old:
            if ctx.check:
                would.append(f"{region}/{s['DBSnapshotIdentifier']}")
                continue
            ctx.aws("rds", "delete_db_snapshot", region=region, DBSnapshotIdentifier=s["DBSnapshotIdentifier"])
            deleted.append(f"{region}/{s['DBSnapshotIdentifier']}")
    table = Table(f"Manual snapshots of {ident} (keep {keep})", ["region", "snapshot", "created (UTC)", "status", "verdict"], rows)
    if would:
        return ctx.skipped(f"would delete {len(would)}: {', '.join(would)}", {"would_delete": would}, [table])
    if deleted:
        return ctx.changed(f"deleted {len(deleted)}: {', '.join(deleted)}", {"deleted": deleted}, [table])
    return ctx.ok(f"nothing beyond the newest {keep}", {"deleted": []}, [table])


RUNBOOK = Runbook(
    name="aws-backup",
    title="AWS backup (RDS snapshots)",
    doc=__doc__ or "",
    params=AwsBackupParams,
    environment="aws",
    steps=(take_snapshot, copy_snapshot, retention),
)
