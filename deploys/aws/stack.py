"""Plan and apply a CloudFormation stack through a change set.

``plan`` creates a change set (``CREATE`` for a new stack, ``UPDATE`` otherwise) and describes it;
``apply`` executes it and waits with boto3's waiters. A change set that "didn't contain changes"
ends ``FAILED`` in AWS (moto 5 refuses to create it, "No updates are to be performed."): both are
read as an empty plan, the change set is deleted,
and nothing is applied. A failed create/update rolls back; :class:`StackFailed` carries the stack
events that explain it (status ``*_FAILED`` with their reasons).

Change lines follow the ``ResourceChange`` shape of ``DescribeChangeSet``
(https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChange.html).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from deploys.aws.errors import AwsCallError, StackFailed
from deploys.aws.session import AwsSession, call

__all__ = ["Change", "Plan", "plan", "apply", "outputs", "stack_status", "NO_CHANGES_REASONS", "discard",
           "change_set_available", "delete_empty_shell", "sweep_change_sets"]

#: StatusReason texts of an empty change set (AWS: "The submitted information didn't contain
#: changes...", older: "No updates are to be performed.").
NO_CHANGES_REASONS = ("didn't contain changes", "No updates are to be performed")



@dataclass(frozen=True)
class Change:
    """One resource change: action ``Add|Modify|Remove|Import|Dynamic``, replacement ``True|False|Conditional``."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""

    def line(self) -> str:
        mark = {"Add": "+", "Remove": "-", "Modify": "~"}.get(self.action, "?")
        rep = f" (replacement: {self.replacement})" if self.action == "Modify" and self.replacement else ""
        return f"  {mark} {self.action:<6} {self.logical_id} [{self.resource_type}]{rep}"


@dataclass
class Plan:
    """A described change set; ``changes`` empty means the stack already matches."""

    stack: str
    region: str
    change_set: str | None
    kind: str  # CREATE | UPDATE
    changes: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def render(self) -> str:
        if self.empty:
            return f"stack {self.stack} ({self.region}): no changes"
        head = f"stack {self.stack} ({self.region}): {self.kind} change set, {len(self.changes)} change(s)"
        return "\n".join([head, *(c.line() for c in self.changes)])


def stack_status(aws: AwsSession, stack: str, region: str | None = None) -> str | None:
    """Current ``StackStatus`` of ``stack``, or ``None`` when it does not exist."""
    cfn = aws.client("cloudformation", region)
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise AwsCallError("cloudformation", "DescribeStacks", "ClientError", str(exc)) from None
    return stacks[0]["StackStatus"] if stacks else None


def outputs(aws: AwsSession, stack: str, region: str | None = None) -> dict[str, str]:
    """The stack's outputs as ``{key: value}`` (empty when it has none)."""
    cfn = aws.client("cloudformation", region)
    desc = call("cloudformation", "DescribeStacks", cfn.describe_stacks, StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o.get("OutputValue", "") for o in desc.get("Outputs", [])}


def plan(aws: AwsSession, stack: str, body: str, parameters: dict[str, str] | None = None,
         region: str | None = None) -> Plan:
    """Create and describe a change set for ``body`` (template JSON) with ``parameters``.

    Raises :class:`AwsCallError` when the template is refused or the change set fails for another
    reason than "no changes".
    """
    region = region or aws.settings.region
    cfn = aws.client("cloudformation", region)
    status = stack_status(aws, stack, region)
    kind = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
    if status == "ROLLBACK_COMPLETE":  # a failed first create can only be deleted
        call("cloudformation", "DeleteStack", cfn.delete_stack, StackName=stack)
        call("cloudformation", "Wait", cfn.get_waiter("stack_delete_complete").wait, StackName=stack, **aws.wait(3600))
        kind = "CREATE"
    name = f"orderops-{int(time.time() * 1000)}"
    try:
        call("cloudformation", "CreateChangeSet", cfn.create_change_set,
             StackName=stack, ChangeSetName=name, ChangeSetType=kind, TemplateBody=body,
             Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
             Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
             Tags=[{"Key": "orderops:environment", "Value": aws.settings.name}])
    except AwsCallError as exc:  # moto refuses an empty change set at once instead of failing it
        if any(text in str(exc) for text in NO_CHANGES_REASONS):
            return Plan(stack, region, None, kind)
        raise
    desc = _wait_change_set(cfn, stack, name, aws.settings.poll_seconds)
    if desc["Status"] == "FAILED":
        reason = desc.get("StatusReason", "")
        if any(text in reason for text in NO_CHANGES_REASONS):
            call("cloudformation", "DeleteChangeSet", cfn.delete_change_set, StackName=stack, ChangeSetName=name)
            return Plan(stack, region, None, kind)
        raise AwsCallError("cloudformation", "CreateChangeSet", "ChangeSetFailed", reason)
    changes = [Change(rc["Action"], rc["LogicalResourceId"], rc["ResourceType"], str(rc.get("Replacement", "")))
               for rc in (c["ResourceChange"] for c in desc.get("Changes", []) if "ResourceChange" in c)]
    if not changes:  # moto may describe an update with identical resources without failing it
        call("cloudformation", "DeleteChangeSet", cfn.delete_change_set, StackName=stack, ChangeSetName=name)
        return Plan(stack, region, None, kind)
    return Plan(stack, region, name, kind, changes)


def discard(aws: AwsSession, the_plan: Plan) -> None:
    """Delete the plan's change set, and the empty ``REVIEW_IN_PROGRESS`` stack a CREATE plan made,
    so that a plan that is only shown leaves nothing behind."""
    if the_plan.change_set is None:
        return
    cfn = aws.client("cloudformation", the_plan.region)
    call("cloudformation", "DeleteChangeSet", cfn.delete_change_set,
         StackName=the_plan.stack, ChangeSetName=the_plan.change_set)
    delete_empty_shell(aws, the_plan.stack, the_plan.region)


def change_set_available(aws: AwsSession, the_plan: Plan) -> bool:
    """True when ``the_plan``'s change set still exists and can be executed (not executed yet)."""
    if the_plan.change_set is None:
        return False
    cfn = aws.client("cloudformation", the_plan.region)
    try:
        desc = cfn.describe_change_set(StackName=the_plan.stack, ChangeSetName=the_plan.change_set)
    except Exception:  # noqa: BLE001 - gone (or unreadable): nothing to discard
        return False
    return desc.get("ExecutionStatus") == "AVAILABLE"


def delete_empty_shell(aws: AwsSession, stack: str, region: str) -> bool:
    """Delete ``stack`` when it is only a change set's shell (``REVIEW_IN_PROGRESS``, no resources):
    what a declined or interrupted first apply leaves. Returns whether it did. Call it only under
    the environment lock (another run's shell holds the change set it is about to execute)."""
    if stack_status(aws, stack, region) != "REVIEW_IN_PROGRESS":
        return False
    cfn = aws.client("cloudformation", region)
    resources = call("cloudformation", "ListStackResources", cfn.list_stack_resources,
                     StackName=stack).get("StackResourceSummaries", [])
    if resources:
        return False
    call("cloudformation", "DeleteStack", cfn.delete_stack, StackName=stack)
    call("cloudformation", "Wait", cfn.get_waiter("stack_delete_complete").wait, StackName=stack,
         **aws.wait(600))
    return True


def sweep_change_sets(aws: AwsSession, stack: str, region: str) -> list[str]:
    """Delete the change sets an earlier run of this tool planned on ``stack`` but never executed
    (named ``orderops-<ms>``, ``ExecutionStatus`` ``AVAILABLE`` or ``UNAVAILABLE``): what a run
    killed between plan and execute (``kill -9``, a lost connection) leaves. Returns their names.

    Change sets of other tools and executing ones are left alone. Call it only under the
    environment lock (another live run's change set is about to be executed). Raises
    :class:`AwsCallError` when listing or deleting fails.
    """
    if stack_status(aws, stack, region) is None:
        return []
    cfn = aws.client("cloudformation", region)
    summaries = call("cloudformation", "ListChangeSets", cfn.list_change_sets, StackName=stack).get("Summaries", [])
    stale = [c["ChangeSetName"] for c in summaries
             if c.get("StackName", stack) == stack and c.get("ChangeSetName", "").startswith("orderops-")
             and c.get("ExecutionStatus") in ("AVAILABLE", "UNAVAILABLE")]
    for name in stale:
        call("cloudformation", "DeleteChangeSet", cfn.delete_change_set, StackName=stack, ChangeSetName=name)
    return stale


def _wait_change_set(cfn: Any, stack: str, name: str, poll: float) -> dict[str, Any]:
    for _ in range(int(600 / poll) + 1):
        desc = call("cloudformation", "DescribeChangeSet", cfn.describe_change_set,
                    StackName=stack, ChangeSetName=name)
        if desc["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return desc
        time.sleep(poll)
    raise AwsCallError("cloudformation", "DescribeChangeSet", "Timeout", f"change set {name} still pending")


def apply(aws: AwsSession, the_plan: Plan) -> str:
    """Execute ``the_plan`` and wait; returns the final stack status.

    An empty plan returns the current status without any call that changes something.
    Raises :class:`StackFailed` (with the failed events) when the stack rolls back.
    """
    cfn = aws.client("cloudformation", the_plan.region)
    if the_plan.empty:
        return stack_status(aws, the_plan.stack, the_plan.region) or "NONE"
    started = time.time()
    call("cloudformation", "ExecuteChangeSet", cfn.execute_change_set,
         StackName=the_plan.stack, ChangeSetName=the_plan.change_set)
    waiter = "stack_create_complete" if the_plan.kind == "CREATE" else "stack_update_complete"
    try:
        cfn.get_waiter(waiter).wait(StackName=the_plan.stack, **aws.wait(3600))
    except Exception:  # noqa: BLE001 - any waiter failure: report what the stack says
        status = stack_status(aws, the_plan.stack, the_plan.region) or "DELETED"
        raise StackFailed(the_plan.stack, status, failed_events(aws, the_plan.stack, the_plan.region, started)) from None
    return stack_status(aws, the_plan.stack, the_plan.region) or "NONE"


def failed_events(aws: AwsSession, stack: str, region: str, since: float = 0.0) -> list[tuple[str, str, str, str]]:
    """Events of ``stack`` since ``since`` (epoch s) whose status ends in ``FAILED``, oldest first."""
    cfn = aws.client("cloudformation", region)
    events = call("cloudformation", "DescribeStackEvents", cfn.describe_stack_events, StackName=stack)["StackEvents"]
    out = [(e["LogicalResourceId"], e["ResourceType"], e["ResourceStatus"], e.get("ResourceStatusReason", ""))
           for e in events
           if e["ResourceStatus"].endswith("FAILED") and e["Timestamp"].timestamp() >= since - 1]
    return list(reversed(out))
