"""Reads shared by the AWS runbooks (``aws-*``): stack outputs, the database, CloudWatch metrics.

Every call goes through ``ctx.aws`` (the boto3 executor, :mod:`runbooks.executors.aws`). Names of
the environment's resources come from the validated settings (``inventories/aws_settings.py``) and
the main stack's outputs (``templates/aws/stack.py``: ``ClusterName``, ``ApiServiceName``,
``DatabaseId``), never from a name written here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from runbooks.core.errors import ApiError
from runbooks.engine.model import StepContext

__all__ = ["stack_outputs", "db_instance", "metric", "manual_snapshots", "utcnow", "api_service"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def stack_outputs(ctx: StepContext) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of the main stack (read once per run, kept in ``ctx.memory``).

    Raises :class:`ApiError` when the stack does not exist (``ValidationError``).
    """
    if "outputs" not in ctx.memory:
        stacks = ctx.aws("cloudformation", "describe_stacks", StackName=ctx.host.settings.stack_name)["Stacks"]
        ctx.memory["outputs"] = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return ctx.memory["outputs"]


def api_service(ctx: StepContext) -> dict[str, Any]:
    """The API service (ECS ``DescribeServices`` shape) of the stack's cluster."""
    out = stack_outputs(ctx)
    services = ctx.aws("ecs", "describe_services", cluster=out["ClusterName"], services=[out["ApiServiceName"]])
    if not services["services"]:
        raise ApiError("ecs", "describe_services", "ServiceNotFound", f"{out['ApiServiceName']} is not in {out['ClusterName']}")
    return services["services"][0]


def db_instance(ctx: StepContext, identifier: str | None = None) -> dict[str, Any]:
    """The RDS instance (``DescribeDBInstances`` shape): the stack's ``DatabaseId`` or ``identifier``."""
    ident = identifier or stack_outputs(ctx)["DatabaseId"]
    return ctx.aws("rds", "describe_db_instances", DBInstanceIdentifier=ident)["DBInstances"][0]


def metric(ctx: StepContext, namespace: str, name: str, dimensions: dict[str, str], stat: str,
           minutes: int = 60) -> float | None:
    """The ``stat`` (``Average``/``Maximum``/``Minimum``) of a CloudWatch metric over the last
    ``minutes`` (5-minute periods; the newest period's value), or ``None`` without datapoints."""
    end = utcnow()
    points = ctx.aws("cloudwatch", "get_metric_statistics", Namespace=namespace, MetricName=name,
                     Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
                     StartTime=end - timedelta(minutes=minutes), EndTime=end, Period=300,
                     Statistics=[stat])["Datapoints"]
    if not points:
        return None
    return float(max(points, key=lambda p: p["Timestamp"])[stat])


def manual_snapshots(ctx: StepContext, instance: str, region: str | None = None) -> list[dict[str, Any]]:
    """Manual snapshots of ``instance`` in ``region``, oldest first (``SnapshotCreateTime``)."""
    snaps = ctx.aws("rds", "describe_db_snapshots", region=region, DBInstanceIdentifier=instance,
                    SnapshotType="manual")["DBSnapshots"]
    return sorted(snaps, key=lambda s: s.get("SnapshotCreateTime") or utcnow())
