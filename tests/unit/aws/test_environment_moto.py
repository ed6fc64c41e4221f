"""Plan/apply of a whole environment through change sets, against moto's server mode (local endpoint).

moto's CloudFormation skips resource types it does not implement; the test asserts the exact
list, so a moto upgrade that starts creating one (or a template change that adds one) is seen.
Those resources are covered by cfn-lint only (tests/unit/aws/test_template.py).
"""

from __future__ import annotations

import pytest

from deploys.aws import environment, stack
from deploys.aws.errors import NotApproved
from deploys.aws.session import EDGE_REGION
from templates.aws.stack import edge_template, main_template
from tests.support.moto_aws import moto_unsupported_types

#: What moto 5.2 does not create of our templates (covered by cfn-lint only).
SKIPPED_MAIN = ["AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy",
                "AWS::CloudFront::Distribution", "AWS::CloudFront::OriginAccessControl",
                "AWS::CloudWatch::Alarm", "AWS::ElastiCache::ReplicationGroup",
                "AWS::ElastiCache::SubnetGroup", "AWS::S3::BucketPolicy", "AWS::SecretsManager::Secret"]
SKIPPED_EDGE = ["AWS::WAFv2::WebACL"]


def _created_types(aws, name, region, template):
    """Types of ``template`` that moto's stack holds no resource for (read from moto's in-process
    backend: its StackResources responses carry no logical ids)."""
    from moto.cloudformation.models import cloudformation_backends

    (fake,) = [st for st in cloudformation_backends["123456789012"][region].stacks.values() if st.name == name]
    parsed = fake.resource_map._parsed_resources
    return sorted({r["Type"] for lid, r in template["Resources"].items() if parsed.get(lid) is None})


def test_first_plan_changes_nothing(aws):
    plan = environment.plan_environment(aws)
    assert [c.action for c in plan.certificates] == ["request", "request"]
    assert plan.edge.kind == "CREATE" and plan.main.kind == "CREATE" and not plan.empty
    assert "+ Add    Vpc [AWS::EC2::VPC]" in plan.render()
    assert aws.client("acm").list_certificates()["CertificateSummaryList"] == []
    assert stack.stack_status(aws, aws.settings.stack_name) is None  # no stack shell left behind
    assert stack.stack_status(aws, aws.settings.edge_stack_name, EDGE_REGION) is None


def test_apply_creates_everything_moto_implements(aws):
    lines: list[str] = []
    assert environment.apply_environment(aws, approve=lambda text: True, log=lines.append)
    s = aws.settings
    assert stack.stack_status(aws, s.stack_name) == "CREATE_COMPLETE"
    assert stack.stack_status(aws, s.edge_stack_name, EDGE_REGION) == "CREATE_COMPLETE"
    assert _created_types(aws, s.stack_name, s.region, main_template(s)) == SKIPPED_MAIN
    assert moto_unsupported_types(main_template(s)) == SKIPPED_MAIN
    assert _created_types(aws, s.edge_stack_name, EDGE_REGION, edge_template(s)) == SKIPPED_EDGE
    svc = aws.client("ecs").describe_services(cluster=s.cluster_name, services=[s.api_service_name])["services"][0]
    assert svc["desiredCount"] == s.api.desired_count
    db = aws.client("rds").describe_db_instances()["DBInstances"][0]
    assert db["StorageEncrypted"] and db["DBInstanceClass"] == s.db.instance_class


def test_second_apply_is_empty_and_orders_no_certificate(aws):
    certs = aws.client("acm").list_certificates()["CertificateSummaryList"]
    plan = environment.plan_environment(aws)
    assert plan.empty, plan.render()
    assert "no changes" in plan.main.render()
    asked: list[str] = []
    assert environment.apply_environment(aws, approve=lambda t: asked.append(t) or True, log=lambda _: None) is False
    assert asked == []
    assert aws.client("acm").list_certificates()["CertificateSummaryList"] == certs


def test_changed_setting_is_a_modify_in_the_change_set(aws):
    from deploys.aws.session import AwsSession
    from inventories.aws_settings import validate_aws

    changed = AwsSession(validate_aws({**aws.settings.model_dump(), "log_retention_days": 7}))
    plan = environment.plan_environment(changed)
    assert [(c.action, c.logical_id) for c in plan.main.changes] == [("Modify", "ApiLogGroup")]
    with pytest.raises(NotApproved):
        environment.apply_environment(changed, approve=lambda t: False, log=lambda _: None)
    assert _applied_retention(aws) == aws.settings.log_retention_days  # not approved: unchanged
    assert environment.apply_environment(changed, approve=lambda t: True, log=lambda _: None) is True
    # moto does not update a log group in place, so the applied template is what is checked.
    assert _applied_retention(aws) == 7
    assert environment.plan_environment(changed).empty


def _applied_retention(aws):
    import json

    body = aws.client("cloudformation").get_template(StackName=aws.settings.stack_name)["TemplateBody"]
    body = body if isinstance(body, dict) else json.loads(body)
    return body["Resources"]["ApiLogGroup"]["Properties"]["RetentionInDays"]


def test_refused_template_is_one_error(aws):
    from deploys.aws.errors import AwsCallError

    with pytest.raises(AwsCallError) as err:
        stack.plan(aws, "orderops-t-broken", '{"Resources": {"X": {"Type": "AWS::SNS::Topic", "Properties": ')
    assert err.value.operation == "CreateChangeSet"
    with pytest.raises(AwsCallError) as err:
        stack.plan(aws, "orderops-t-broken", '{"Outputs": {"A": {"Value": "x"}}}')
    assert err.value.operation == "CreateChangeSet"
