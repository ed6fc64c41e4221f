"""A declined ``orderops-aws apply`` changes nothing and exits 3; the next ``apply --yes`` works.

Against moto's server mode (tests/support/moto_aws.py). Declined means a ``n`` on a terminal, or no
terminal and no ``--yes``: no certificate requested, no validation record written, no ECR
repository, no change set and no stack shell left behind.
"""

from __future__ import annotations

import io

import pytest

from deploys.aws import cli, stack
from deploys.aws.session import EDGE_REGION
from templates.aws.stack import edge_template, to_json

INV = ["-i", "inventories/aws_local.py"]


def _nothing_created(aws):
    s = aws.settings
    for region in (s.region, EDGE_REGION):
        assert aws.client("acm", region).list_certificates()["CertificateSummaryList"] == []
    records = aws.client("route53", "us-east-1").list_resource_record_sets(
        HostedZoneId=s.hosted_zone_id)["ResourceRecordSets"]
    assert sorted(r["Type"] for r in records) == ["NS", "SOA"]
    assert aws.client("ecr").describe_repositories()["repositories"] == []
    assert stack.stack_status(aws, s.stack_name) is None
    assert stack.stack_status(aws, s.edge_stack_name, EDGE_REGION) is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stdin", [_Tty("n\n"), io.StringIO("")], ids=["answered-n", "no-terminal"])
def test_declined_apply_creates_nothing_and_exits_3(aws, monkeypatch, capsys, stdin):
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main([*INV, "apply"]) == 3
    out = capsys.readouterr()
    assert "certificate orders.example.com (eu-west-1): request" in out.out
    assert "not approved" in out.err
    _nothing_created(aws)


def test_apply_yes_after_a_leftover_shell_works_and_second_is_empty(aws, capsys):
    s = aws.settings
    # What an older version (or a killed run) left: a CREATE change set in a REVIEW_IN_PROGRESS shell.
    leftover = stack.plan(aws, s.edge_stack_name, to_json(edge_template(s)), region=EDGE_REGION)
    assert leftover.change_set and stack.stack_status(aws, s.edge_stack_name, EDGE_REGION) == "REVIEW_IN_PROGRESS"
    assert cli.main([*INV, "apply", "--yes"]) == 0
    assert stack.stack_status(aws, s.stack_name) == "CREATE_COMPLETE"
    assert stack.stack_status(aws, s.edge_stack_name, EDGE_REGION) == "CREATE_COMPLETE"
    capsys.readouterr()
    assert cli.main([*INV, "apply", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"stack {s.stack_name} ({s.region}): no changes" in out and "CREATE_COMPLETE" not in out


def test_apply_deletes_the_change_sets_a_killed_run_left_and_only_those(aws, capsys):
    s = aws.settings
    assert cli.main([*INV, "apply", "--yes"]) == 0
    cfn = aws.client("cloudformation", EDGE_REGION)
    body = to_json(edge_template(s))
    # a run killed between plan and execute leaves its UPDATE change set; another tool's stays
    for name in ("orderops-1700000000000", "someone-else"):
        cfn.create_change_set(StackName=s.edge_stack_name, ChangeSetName=name, ChangeSetType="UPDATE",
                              TemplateBody=body, Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    capsys.readouterr()
    assert cli.main([*INV, "apply", "--yes"]) == 0
    assert "deleted 1 change set(s) a previous run planned but never executed" in capsys.readouterr().out
    left = {c["ChangeSetName"] for c in cfn.list_change_sets(StackName=s.edge_stack_name)["Summaries"]
            if c.get("ExecutionStatus") in ("AVAILABLE", "UNAVAILABLE")}
    assert "orderops-1700000000000" not in left and "someone-else" in left
