"""``orderops-aws destroy --yes`` against moto's server mode (local endpoint): the final snapshot
exists before the stacks go, deletion protection is lifted first, buckets are retained; without
``--yes`` nothing is called. moto's CloudFormation does not take the ``DeletionPolicy: Snapshot``
snapshot itself (AWS does) and does not apply the instance's ``DeletionProtection`` from a template;
both are asserted on the template instead. moto's ``DeleteStack`` of this template fails
(``DependencyViolation``: moto deletes the VPC before what lives in it, where AWS orders deletions by
dependency), so the test checks what destroy guarantees before that call (the final snapshot) and
that the failure exits 1 with AWS's message; the stack deletion itself is not exercised here."""

from __future__ import annotations

from deploys.aws import cli, environment, stack
from deploys.aws.session import EDGE_REGION
from templates.aws.stack import main_template


def test_destroy_needs_yes_and_keeps_a_final_snapshot(aws, capsys):
    s = aws.settings
    assert environment.apply_environment(aws, approve=lambda t: True, log=lambda _: None)
    assert main_template(s)["Resources"]["Database"]["DeletionPolicy"] == "Snapshot"
    db = stack.outputs(aws, s.stack_name)["DatabaseId"]
    assert main_template(s)["Resources"]["Database"]["Properties"]["DeletionProtection"] is True  # moto ignores it
    assert cli.main(["-i", "inventories/aws_local.py", "destroy"]) == 3
    assert stack.stack_status(aws, s.stack_name) == "CREATE_COMPLETE"
    capsys.readouterr()
    assert cli.main(["-i", "inventories/aws_local.py", "destroy", "--yes"]) == 1  # moto: DependencyViolation
    assert "cloudformation DeleteStack failed: DependencyViolation" in capsys.readouterr().err
    snaps = aws.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert [x["DBSnapshotIdentifier"].startswith(f"{s.name}-final-") for x in snaps] == [True]
    assert snaps[0]["DBInstanceIdentifier"] == db and snaps[0]["Status"] == "available"
    assert stack.stack_status(aws, s.edge_stack_name, EDGE_REGION)  # the edge stack goes only after the main one
