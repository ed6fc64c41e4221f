"""``plan`` (and ``apply``) check the Route 53 hosted zone first, read-only: a zone that does not
exist, or that does not hold the domain, is one line naming ``aws.hosted_zone_id``, before any
change set. Against moto's server mode (tests/support/moto_aws.py)."""

from __future__ import annotations

import os

import boto3
import pytest

from deploys.aws import cli, stack
from deploys.aws.session import EDGE_REGION

INV = ["-i", "inventories/aws_local.py"]


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_missing_zone_is_one_line_naming_the_setting(aws, monkeypatch, capsys, command):
    monkeypatch.setenv("ORDEROPS_AWS_ZONE", "Z0DOESNOTEXIST1")
    assert cli.main([*INV, command, "--yes"] if command == "apply" else [*INV, command]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "aws.hosted_zone_id" in line and "Z0DOESNOTEXIST1" in line
    assert stack.stack_status(aws, aws.settings.edge_stack_name, EDGE_REGION) is None
    assert aws.client("acm", EDGE_REGION).list_certificates()["CertificateSummaryList"] == []


def test_zone_of_another_domain_is_refused(aws, moto_url, monkeypatch, capsys):
    other = boto3.client("route53", endpoint_url=moto_url, region_name="us-east-1").create_hosted_zone(
        Name="example.org", CallerReference=os.urandom(8).hex())["HostedZone"]["Id"].split("/")[-1]
    monkeypatch.setenv("ORDEROPS_AWS_ZONE", other)
    assert cli.main([*INV, "plan"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "aws.hosted_zone_id" in line and "example.org" in line and "orders.example.com" in line


def test_existing_zone_plans(aws, capsys):
    assert cli.main([*INV, "plan"]) == 0
    assert "certificate orders.example.com" in capsys.readouterr().out
