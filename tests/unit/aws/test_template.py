"""CloudFormation templates of the AWS layout: cfn-lint clean, and the security rules in the data."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint

from inventories.aws_settings import load_aws_inventory, validate_aws
from templates.aws.stack import CONTAINER_PORT, SECRET_ENV, edge_template, main_template, to_json

EXAMPLE = load_aws_inventory("inventories/aws_example.py")
PER_AZ = validate_aws({**EXAMPLE.model_dump(), "availability_zones": 3, "nat_gateways": "per_az",
                       "alarm_email": None, "cache": {"replicas": 0}})


@pytest.mark.parametrize("settings", [EXAMPLE, PER_AZ], ids=["example", "3az-per-az-nat"])
def test_cfn_lint_clean(settings):
    for template, region in ((main_template(settings), settings.region), (edge_template(settings), "us-east-1")):
        matches = lint(to_json(template), config=ManualArgs(regions=[region]))
        assert not matches, "\n".join(str(m) for m in matches)


def _resources(settings, rtype):
    return {k: v for k, v in main_template(settings)["Resources"].items() if v["Type"] == rtype}


def test_security_groups_least_exposure():
    groups = _resources(EXAMPLE, "AWS::EC2::SecurityGroup")
    open_to_world = {name for name, g in groups.items()
                     for rule in g["Properties"]["SecurityGroupIngress"] if rule.get("CidrIp") == "0.0.0.0/0"}
    assert open_to_world == {"AlbSecurityGroup"}
    alb = groups["AlbSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["ToPort"]) for r in alb] == [(443, 443)]
    sources = {name: [(r["FromPort"], r["SourceSecurityGroupId"]["Ref"]) for r in g["Properties"]["SecurityGroupIngress"]]
               for name, g in groups.items() if name != "AlbSecurityGroup"}
    assert sources == {"TaskSecurityGroup": [(CONTAINER_PORT, "AlbSecurityGroup")],
                       "DbSecurityGroup": [(5432, "TaskSecurityGroup")],
                       "CacheSecurityGroup": [(6379, "TaskSecurityGroup")]}


def test_secrets_only_by_reference():
    body = to_json(main_template(EXAMPLE))
    for task in _resources(EXAMPLE, "AWS::ECS::TaskDefinition").values():
        (container,) = task["Properties"]["ContainerDefinitions"]
        env_names = {e["Name"] for e in container["Environment"]}
        assert not env_names & set(SECRET_ENV), "a secret in plain environment"
        assert {s["Name"]: s["ValueFrom"]["Ref"] for s in container["Secrets"]} == SECRET_ENV
    assert "NoEcho" not in body and "Password\": {\"Type\"" not in body  # no secret template parameter
    db = main_template(EXAMPLE)["Resources"]["Database"]["Properties"]
    assert db["MasterUserPassword"] == {"Fn::Sub": "{{resolve:secretsmanager:${DbSecret}}}"}


def test_data_services_encrypted_and_private():
    res = main_template(EXAMPLE)["Resources"]
    db = res["Database"]
    assert db["Properties"]["StorageEncrypted"] and db["Properties"]["MultiAZ"]
    assert db["Properties"]["PubliclyAccessible"] is False and db["DeletionPolicy"] == "Snapshot"
    assert db["Properties"]["BackupRetentionPeriod"] == EXAMPLE.db.backup_retention_days
    cache = res["Cache"]["Properties"]
    assert cache["TransitEncryptionEnabled"] and cache["AtRestEncryptionEnabled"] and "AuthToken" in cache
    for name in ("AttachmentsBucket", "WebBucket"):
        props = res[name]["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]


def test_tasks_private_and_circuit_breaker():
    svc = main_template(EXAMPLE)["Resources"]["ApiService"]["Properties"]
    assert svc["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert svc["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    tg = main_template(EXAMPLE)["Resources"]["ApiTargetGroup"]["Properties"]
    assert tg["HealthCheckPath"] == "/api/ready"


def test_nat_per_az_and_subnets_disjoint():
    res = main_template(PER_AZ)["Resources"]
    assert len([r for r in res.values() if r["Type"] == "AWS::EC2::NatGateway"]) == 3
    cidrs = [r["Properties"]["CidrBlock"] for r in res.values() if r["Type"] == "AWS::EC2::Subnet"]
    assert len(cidrs) == 6 == len(set(cidrs))
    one = main_template(EXAMPLE)["Resources"]
    assert len([r for r in one.values() if r["Type"] == "AWS::EC2::NatGateway"]) == 1


def test_deterministic_body():
    assert to_json(main_template(EXAMPLE)) == to_json(main_template(load_aws_inventory("inventories/aws_example.py")))
    json.loads(to_json(edge_template(EXAMPLE)))
