"""Runbook ``aws-emergency``: force a new deployment, scale out, or roll back the release of the
API service (an AWS inventory). One ``action`` per run:

==========================  ===================================================================
``force-new-deployment``    ``UpdateService forceNewDeployment``: every task replaced by a fresh
                            one of the same revision (stuck tasks, rotated secrets)
``scale-out``               ``UpdateService desiredCount=count`` (up to ``aws.api.max_count``:
                            auto scaling keeps the service within min..max)
``rollback``                ``orderops-aws rollback --yes`` (destructive: needs ``--yes``): the
                            previous recorded release back in service, readiness checked; the
                            command re-enters this run's environment lock (``$ORDEROPS_RUN_ID``)
==========================  ===================================================================

Then it waits until the service is stable (ECS's ``services_stable`` waiter) and reports the
service before and after.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deploys.contract.lock import RUN_ID_ENV
from runbooks.core.errors import ApiError
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._aws import api_service, stack_outputs

__all__ = ["RUNBOOK", "AwsEmergencyParams", "rollback_command"]


class AwsEmergencyParams(BaseModel):
    """The action, and the task count for ``scale-out``."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["force-new-deployment", "scale-out", "rollback"] = Field(description="what to do")
    count: int | None = Field(None, ge=1, le=100, description="scale-out: desired task count")

    @model_validator(mode="after")
    def _count(self) -> "AwsEmergencyParams":
        if self.action == "scale-out" and self.count is None:
            raise ValueError("count: required with action=scale-out")
        if self.action != "scale-out" and self.count is not None:
            raise ValueError("count: only with action=scale-out")
        return self


def rollback_command(inventory: str, run_id: str) -> str:
    """The shell command the rollback step runs: ``orderops-aws`` (this Python's) with the run ID."""
    return (f"{RUN_ID_ENV}={shlex.quote(run_id)} "
            + shlex.join([sys.executable, "-m", "deploys.aws.cli", "-i", inventory, "rollback", "--yes"]))


def _service_table(title: str, svc: dict) -> Table:
    return Table(title, ["service", "task definition", "desired", "running", "pending", "deployments"],
                 [[svc["serviceName"], svc["taskDefinition"].rsplit("/", 1)[-1], svc["desiredCount"],
                   svc["runningCount"], svc.get("pendingCount", 0), len(svc.get("deployments", []))]])


def _record(ctx: StepContext) -> dict | None:
    try:
        value = ctx.aws("ssm", "get_parameter", Name=ctx.host.settings.release_parameter)["Parameter"]["Value"]
    except ApiError as e:
        if e.code == "ParameterNotFound":
            return None
        raise
    return json.loads(value)


@step("Service before", target="aws", executor="aws", timeout=60, on_failure="abort")
def before(ctx: StepContext) -> StepResult:
    """The API service's revision and task counts, and the recorded release (SSM `/<name>/release`)."""
    svc = api_service(ctx)
    record = _record(ctx)
    ctx.memory["before"] = {"task_definition": svc["taskDefinition"], "desired": svc["desiredCount"]}
    version = record["version"] if record else "none recorded"
    return ctx.ok(f"{svc['serviceName']}: {svc['runningCount']}/{svc['desiredCount']} running, release {version}",
                  {**ctx.memory["before"], "release": record}, [_service_table("Before", svc)])


@step("Force a new deployment", target="aws", executor="aws", timeout=120, changes=True, on_failure="abort")
def force_new_deployment(ctx: StepContext) -> StepResult:
    """`UpdateService forceNewDeployment=true` (action `force-new-deployment`)."""
    if ctx.params.action != "force-new-deployment":
        return ctx.skipped("not requested")
    out = stack_outputs(ctx)
    if ctx.check:
        return ctx.skipped(f"would replace every task of {out['ApiServiceName']}")
    svc = ctx.aws("ecs", "update_service", cluster=out["ClusterName"], service=out["ApiServiceName"],
                  forceNewDeployment=True)["service"]
    ctx.memory["changed"] = True
    return ctx.changed(f"new deployment of {svc['serviceName']} started ({len(svc.get('deployments', []))} deployment(s))")


@step("Scale out", target="aws", executor="aws", timeout=120, changes=True, on_failure="abort")
def scale_out(ctx: StepContext) -> StepResult:
    """`UpdateService desiredCount=count` (action `scale-out`); `count` must exceed the current
    desired count and stay within `aws.api.max_count` (raise it in the inventory and apply first)."""
    if ctx.params.action != "scale-out":
        return ctx.skipped("not requested")
    count, current, limit = ctx.params.count, ctx.memory["before"]["desired"], ctx.host.settings.api.max_count
    if count > limit:
        return ctx.failed(f"count {count} exceeds aws.api.max_count {limit}: raise it in the inventory and apply")
    if count <= current:
        return ctx.failed(f"count {count} is not above the current desired count {current}")
    out = stack_outputs(ctx)
    if ctx.check:
        return ctx.skipped(f"would scale {out['ApiServiceName']} from {current} to {count} tasks")
    ctx.aws("ecs", "update_service", cluster=out["ClusterName"], service=out["ApiServiceName"], desiredCount=count)
    ctx.memory["changed"] = True
    return ctx.changed(f"desired count {current} -> {count}", {"from": current, "to": count})


@step("Roll back the release", target="aws", executor="local", timeout=2400, destructive=True, on_failure="abort")
def rollback(ctx: StepContext) -> StepResult:
    """`orderops-aws rollback --yes` (action `rollback`): the previous recorded task definition
    back in service, stable and ready, and the record updated (deploys/aws/release.py)."""
    if ctx.params.action != "rollback":
        return ctx.skipped("not requested")
    record = _record(ctx)
    if not record or not record.get("previous"):
        return ctx.failed("no previous release recorded: nothing to roll back to")
    if ctx.check:
        return ctx.skipped(f"would roll back {record['version']} ({record['task_definition']}) -> {record['previous']}")
    out = ctx.sh(rollback_command(ctx.host.inventory, ctx.run_id), sudo=False)
    ctx.memory["changed"] = True
    if not out.ok:
        return ctx.failed(f"orderops-aws rollback failed (rc {out.rc}): {(out.stderr or out.stdout).strip()[-400:]}")
    return ctx.changed(f"rolled back from {record['version']} to {record['previous'].rsplit('/', 1)[-1]}",
                       {"from": record["task_definition"], "to": record["previous"]})


@step("Wait until stable", target="aws", executor="aws", timeout=1800)
def stable(ctx: StepContext) -> StepResult:
    """ECS's `services_stable` waiter on the API service (one deployment, running = desired)."""
    if ctx.check or not ctx.memory.get("changed"):
        return ctx.skipped("nothing changed")
    out = stack_outputs(ctx)
    ctx.aws_wait("ecs", "services_stable", cluster=out["ClusterName"], services=[out["ApiServiceName"]])
    return ctx.ok("service is stable")


@step("Service after", target="aws", executor="aws", timeout=60)
def after(ctx: StepContext) -> StepResult:
    """The API service's revision and task counts after the action."""
    svc = api_service(ctx)
    return ctx.ok(f"{svc['serviceName']}: {svc['runningCount']}/{svc['desiredCount']} running, "
                  f"{svc['taskDefinition'].rsplit('/', 1)[-1]}",
                  {"task_definition": svc["taskDefinition"], "desired": svc["desiredCount"]}, [_service_table("After", svc)])


RUNBOOK = Runbook(
    name="aws-emergency",
    title="AWS emergency actions (ECS)",
    doc=__doc__ or "",
    params=AwsEmergencyParams,
    environment="aws",
    steps=(before, force_new_deployment, scale_out, rollback, stable, after),
)
