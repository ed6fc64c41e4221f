"""Remove an AWS environment, keeping its data: ``orderops-aws destroy --yes``.

Under the environment lock:

1. a final manual snapshot of the database (``<name>-final-<UTC yyyymmddthhmmssz>``), waited for
   until ``available``; CloudFormation's ``DeletionPolicy: Snapshot`` on the instance
   (templates/aws/stack.py) takes one more when the stack deletes it, so the data survives even a
   ``delete-stack`` run by hand;
2. deletion protection of the instance off (the template turns it on; CloudFormation cannot delete
   a protected instance);
3. the main stack deleted and waited for; then the us-east-1 edge stack.

Kept, by design: the S3 buckets (``DeletionPolicy: Retain``: attachments and the front end), the ECR
repository and its images (created outside the stacks by ``release``), the manual snapshots, the
release record's SSM parameter is deleted (it names task definitions that no longer run).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deploys.aws.errors import AwsError
from deploys.aws.lock import environment_lock
from deploys.aws.session import EDGE_REGION, AwsSession, call
from deploys.aws.stack import outputs, stack_status

__all__ = ["destroy_environment", "final_snapshot_id"]


def final_snapshot_id(name: str, now: float | None = None) -> str:
    """``<name>-final-<UTC yyyymmddthhmmssz>`` (an RDS snapshot identifier)."""
    return f"{name}-final-{time.strftime('%Y%m%dt%H%M%Sz', time.gmtime(now))}"


def destroy_environment(aws: AwsSession, log: Callable[[str], None] = print) -> str | None:
    """Delete the stacks after a final snapshot (module docstring); returns the snapshot id, or
    ``None`` when the main stack did not exist. Raises :class:`AwsError` / :class:`AwsCallError`."""
    s = aws.settings
    rds, cfn = aws.client("rds"), aws.client("cloudformation")
    snapshot = None
    with environment_lock(aws, "destroy"):
        if stack_status(aws, s.stack_name):
            db = outputs(aws, s.stack_name).get("DatabaseId")
            if db:
                snapshot = final_snapshot_id(s.name)
                log(f"final snapshot {snapshot} of {db}")
                call("rds", "CreateDBSnapshot", rds.create_db_snapshot, DBInstanceIdentifier=db,
                     DBSnapshotIdentifier=snapshot, Tags=[{"Key": "orderops:final", "Value": s.name}])
                call("rds", "Wait", rds.get_waiter("db_snapshot_available").wait, DBSnapshotIdentifier=snapshot,
                     **aws.wait(3600))
                call("rds", "ModifyDBInstance", rds.modify_db_instance, DBInstanceIdentifier=db,
                     DeletionProtection=False, ApplyImmediately=True)
            log(f"delete stack {s.stack_name}")
            call("cloudformation", "DeleteStack", cfn.delete_stack, StackName=s.stack_name)
            call("cloudformation", "Wait", cfn.get_waiter("stack_delete_complete").wait, StackName=s.stack_name,
                 **aws.wait(3600))
            if stack_status(aws, s.stack_name) not in (None, "DELETE_COMPLETE"):
                raise AwsError(f"stack {s.stack_name} was not deleted: {stack_status(aws, s.stack_name)}")
        if stack_status(aws, s.edge_stack_name, EDGE_REGION):
            edge = aws.client("cloudformation", EDGE_REGION)
            log(f"delete stack {s.edge_stack_name} ({EDGE_REGION})")
            call("cloudformation", "DeleteStack", edge.delete_stack, StackName=s.edge_stack_name)
            call("cloudformation", "Wait", edge.get_waiter("stack_delete_complete").wait,
                 StackName=s.edge_stack_name, **aws.wait(3600))
        ssm = aws.client("ssm")
        try:
            ssm.delete_parameter(Name=s.release_parameter)
        except ssm.exceptions.ParameterNotFound:
            pass
    return snapshot
