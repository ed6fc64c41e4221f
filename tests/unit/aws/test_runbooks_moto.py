"""The AWS runbooks (aws-daily, aws-backup, aws-restore, aws-emergency) on the runbook engine,
against moto's server mode (local endpoint, started by tests/unit/aws/conftest.py).

States are injected through AWS's own APIs where moto serves them: CloudWatch metrics
(``PutMetricData``: low RDS free storage, Redis memory), an alarm in ALARM (``PutMetricAlarm`` +
``SetAlarmState``), an ElastiCache replication group (``CreateReplicationGroup``: moto's
CloudFormation skips that type). Two stand-ins, named where used: moto has no API that lowers a
service's running count below its desired count (ECS does that itself when tasks die), so the test
sets it in moto's in-process ECS backend; and no ALB exists, so ``/api/ready`` for the rollback is a
loopback HTTP server (``ready_url``).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploys.aws import environment, lock
from runbooks.core.errors import ParameterError
from runbooks.engine.params import validate_params
from runbooks.engine.runner import run
from runbooks.engine.targets import load_aws
from runbooks.executors.aws import AwsExecutor
from runbooks.executors.local import LocalExecutor
from runbooks.library import get_runbook

COPY_REGION = "eu-central-1"


@pytest.fixture(scope="module")
def deployed(aws):
    assert environment.apply_environment(aws, approve=lambda t: True, log=lambda _: None)
    s = aws.settings
    aws.client("elasticache").create_replication_group(  # moto's CloudFormation skips this type
        ReplicationGroupId=s.cache_group_id, ReplicationGroupDescription="test", Engine="redis",
        CacheNodeType=s.cache.node_type, NumCacheClusters=1)
    return aws


@pytest.fixture(scope="module")
def ready_server(monkeypatch_module):
    """Loopback stand-in for ``https://<domain>/api/ready`` through the ALB: answers 200."""
    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/api/ready" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch_module.setenv("ORDEROPS_AWS_READY_URL", f"http://127.0.0.1:{server.server_address[1]}/api/ready")
    yield
    server.shutdown()


def _run(name, tmp_path, check=False, approve=False, **params):
    rb = get_runbook(name)
    targets = load_aws("inventories/aws_local.py")
    model = validate_params(name, rb.params, {k: str(v) for k, v in params.items()})
    with AwsExecutor() as ex, LocalExecutor() as local:
        return run(rb, targets, model, {"aws": ex, "local": local}, inventory="inventories/aws_local.py",
                   check=check, approve=approve, runs_dir=tmp_path)


def _by_step(result):
    name = result.hosts[0]
    return {s.name: s.results[name] for s in result.steps if name in s.results}


def _put(aws, namespace, metric, dims, value, unit="None"):
    """One datapoint a minute old: CloudWatch's EndTime is exclusive and moto truncates it to the
    second, so a point stamped in the query's own second would not be counted."""
    aws.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[{
        "MetricName": metric, "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
        "Timestamp": datetime.now(timezone.utc) - timedelta(minutes=1), "Value": value, "Unit": unit}])


def _db_id(aws):
    out = aws.client("cloudformation").describe_stacks(StackName=aws.settings.stack_name)["Stacks"][0]["Outputs"]
    return {o["OutputKey"]: o["OutputValue"] for o in out}["DatabaseId"]


def test_daily_on_a_healthy_environment(deployed, tmp_path):
    aws = deployed
    dims = {"DBInstanceIdentifier": _db_id(aws)}
    _put(aws, "AWS/RDS", "FreeStorageSpace", dims, 15 * 1024**3, "Bytes")  # 15 of 20 GiB free
    _put(aws, "AWS/RDS", "CPUUtilization", dims, 12.0, "Percent")
    _put(aws, "AWS/RDS", "DatabaseConnections", dims, 8, "Count")
    result = _run("aws-daily", tmp_path)
    steps = _by_step(result)
    assert result.status == "ok", {k: (v.status, v.message) for k, v in steps.items()}
    assert steps["Take the host lock"].message == "acquired"
    assert steps["RDS storage, CPU and connections"].data["free_percent"] == 75.0
    assert "no datapoints" in steps["ElastiCache memory"].tables[0].rows[0][1]
    assert set(steps["Certificate expiry"].data["days"]) == {aws.settings.region, "us-east-1"}
    run_dir = tmp_path / result.run_id
    assert {p.name for p in run_dir.iterdir()} >= {"result.json", "report.md", "report.ipynb", "events.jsonl"}
    assert json.loads((run_dir / "result.json").read_text())["hosts"] == [aws.settings.name]
    assert "## " in (run_dir / "report.md").read_text()


def test_daily_finds_injected_faults(deployed, tmp_path):
    aws = deployed
    s = aws.settings
    dims = {"DBInstanceIdentifier": _db_id(aws)}
    _put(aws, "AWS/RDS", "FreeStorageSpace", dims, 1 * 1024**3, "Bytes")  # 5 % free: low storage
    cw = aws.client("cloudwatch")
    cw.put_metric_alarm(AlarmName=f"{s.name}-api-5xx", Namespace="AWS/ApplicationELB",
                        MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Period=60, EvaluationPeriods=1,
                        Threshold=10, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName=f"{s.name}-api-5xx", StateValue="ALARM", StateReason="injected by the test")
    (member,) = aws.client("elasticache").describe_replication_groups(
        ReplicationGroupId=s.cache_group_id)["ReplicationGroups"][0]["MemberClusters"]
    _put(aws, "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", {"CacheClusterId": member}, 97.0, "Percent")
    # Stand-in: ECS lowers runningCount when tasks die; moto has no API for it, so set its backend.
    from moto.ecs.models import ecs_backends

    svc = ecs_backends["123456789012"][s.region].services[f"{s.cluster_name}:{s.api_service_name}"]
    saved, svc.running_count = svc.running_count, 0
    try:
        result = _run("aws-daily", tmp_path, cert_min_days=4000)
    finally:
        svc.running_count = saved
    steps = _by_step(result)
    assert result.status == "failed"
    assert steps["ECS services"].status == "failed"
    assert f"{s.api_service_name}: 0/1 running" in steps["ECS services"].message
    assert steps["RDS storage, CPU and connections"].status == "failed"
    assert "free storage % 5.0" in steps["RDS storage, CPU and connections"].message
    assert steps["ElastiCache memory"].status == "failed" and "97.0 %" in steps["ElastiCache memory"].message
    assert steps["Alarms in ALARM"].data["alarms"] == [f"{s.name}-api-5xx"]
    assert steps["Alarms in ALARM"].tables[0].rows[0][2] == "injected by the test"
    assert steps["Certificate expiry"].status == "failed" and "< 4000" in steps["Certificate expiry"].message
    cw.set_alarm_state(AlarmName=f"{s.name}-api-5xx", StateValue="OK", StateReason="test done")
    _put(aws, "AWS/RDS", "FreeStorageSpace", dims, 15 * 1024**3, "Bytes")


def test_a_held_environment_lock_stops_the_run(deployed, tmp_path):
    token = lock.acquire(deployed, "a deploy elsewhere")
    try:
        result = _run("aws-daily", tmp_path)
    finally:
        assert lock.release(deployed, token)
    steps = _by_step(result)
    assert steps["Take the host lock"].status == "failed"
    msg = steps["Take the host lock"].message
    assert "environment is busy" in msg and "a deploy elsewhere" in msg and "unlock --yes" in msg
    assert [s.name for s in result.steps] == ["Take the host lock"] + [st.name for st in get_runbook("aws-daily").steps]
    assert all(r.status == "skipped" for name, r in steps.items() if name != "Take the host lock")


def test_backup_snapshots_copies_and_keeps_the_newest(deployed, tmp_path):
    aws = deployed
    rds = aws.client("rds")
    ident = _db_id(aws)
    rds.create_db_snapshot(DBInstanceIdentifier=ident, DBSnapshotIdentifier="operator-own")  # never deleted
    check = _run("aws-backup", tmp_path, check=True, copy_region=COPY_REGION)
    assert check.status == "ok" and _by_step(check)["Take a manual snapshot"].message.startswith("would snapshot")
    assert [x["DBSnapshotIdentifier"] for x in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]] == ["operator-own"]
    made = []
    for _ in range(3):  # keep=2 (inventories/aws_local.py: manual_snapshots_keep)
        result = _run("aws-backup", tmp_path, copy_region=COPY_REGION)
        steps = _by_step(result)
        assert result.status == "changed", {k: (v.status, v.message) for k, v in steps.items()}
        made.append(steps["Take a manual snapshot"].data["snapshot"])
        assert steps["Copy to another region"].status == "changed"
    assert "deleted 2" in steps["Retention of manual snapshots"].message  # the first one, in both regions
    here = sorted(x["DBSnapshotIdentifier"] for x in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"])
    there = sorted(x["DBSnapshotIdentifier"] for x in aws.client("rds", COPY_REGION).describe_db_snapshots(
        SnapshotType="manual")["DBSnapshots"])
    assert here == sorted([*made[1:], "operator-own"]) and there == sorted(made[1:])


def test_restore_parameters_are_validated():
    rb = get_runbook("aws-restore")
    with pytest.raises(ParameterError) as e:
        validate_params("aws-restore", rb.params, {"snapshot": "x", "latest": "true"})
    assert "exactly one of snapshot, point_in_time, latest" in str(e.value)
    with pytest.raises(ParameterError) as e:
        validate_params("aws-restore", rb.params, {"latest": "true", "new_instance": "bad--name"})
    assert e.value.field == "new_instance"


def test_restore_needs_yes_then_swaps_by_rename(deployed, tmp_path):
    aws = deployed
    rds = aws.client("rds")
    ident = _db_id(aws)
    rds.create_db_snapshot(DBInstanceIdentifier=ident, DBSnapshotIdentifier="before-restore")
    unapproved = _by_step(_run("aws-restore", tmp_path, snapshot="before-restore", swap=True))
    assert unapproved["Restore a new instance"].status == "skipped"
    assert "not approved" in unapproved["Restore a new instance"].message
    assert len(rds.describe_db_instances()["DBInstances"]) == 1
    result = _run("aws-restore", tmp_path, approve=True, snapshot="before-restore", swap=True)
    steps = _by_step(result)
    assert result.status == "changed", {k: (v.status, v.message) for k, v in steps.items()}
    old = steps["Swap the restored instance in"].data["old_instance"]
    instances = {d["DBInstanceIdentifier"]: d for d in rds.describe_db_instances()["DBInstances"]}
    assert set(instances) == {ident, old}
    tags = rds.list_tags_for_resource(ResourceName=instances[ident]["DBInstanceArn"])["TagList"]
    assert {"Key": "orderops:restored-by", "Value": result.run_id} in tags


def test_point_in_time_restore_check_mode_window_and_approval(deployed, tmp_path):
    """``--check`` and an unapproved run restore nothing; a time outside the restorable window
    stops at the source check; an approved point-in-time restore runs beside the current instance."""
    rds = deployed.client("rds")
    ident = _db_id(deployed)
    before = {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}
    db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    when = (db["LatestRestorableTime"] - timedelta(seconds=1)).isoformat()

    checked = _by_step(_run("aws-restore", tmp_path, check=True, approve=True, point_in_time=when, new_instance="pitr-check"))
    assert checked["Check the source"].status == "ok", checked["Check the source"].message
    assert checked["Restore a new instance"].status == "skipped"
    assert checked["Restore a new instance"].message.startswith("would restore")
    too_old = (datetime.now(timezone.utc) - timedelta(days=db["BackupRetentionPeriod"] + 1)).isoformat()
    outside = _by_step(_run("aws-restore", tmp_path, approve=True, point_in_time=too_old, new_instance="pitr-old"))
    assert outside["Check the source"].status == "failed"
    assert "outside the restorable window" in outside["Check the source"].message
    assert {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]} == before

    result = _run("aws-restore", tmp_path, approve=True, point_in_time=when, new_instance="pitr-new")
    steps = _by_step(result)
    assert steps["Restore a new instance"].status == "changed", steps["Restore a new instance"].message
    assert steps["Swap the restored instance in"].status == "skipped"  # swap=false: runs beside the current one
    assert {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]} == before | {"pitr-new"}
    rds.modify_db_instance(DBInstanceIdentifier="pitr-new", DeletionProtection=False, ApplyImmediately=True)
    rds.delete_db_instance(DBInstanceIdentifier="pitr-new", SkipFinalSnapshot=True)


def test_emergency_scale_out_and_rollback(deployed, tmp_path, ready_server):
    aws = deployed
    s = aws.settings
    ecs = aws.client("ecs")
    with pytest.raises(ParameterError):
        validate_params("aws-emergency", get_runbook("aws-emergency").params, {"action": "scale-out"})
    too_many = _by_step(_run("aws-emergency", tmp_path, action="scale-out", count=s.api.max_count + 1))
    assert too_many["Scale out"].status == "failed" and "max_count" in too_many["Scale out"].message
    result = _run("aws-emergency", tmp_path, action="scale-out", count=s.api.max_count)
    assert result.status == "changed" and _by_step(result)["Wait until stable"].status == "ok"
    svc = ecs.describe_services(cluster=s.cluster_name, services=[s.api_service_name])["services"][0]
    assert svc["desiredCount"] == s.api.max_count
    # a release record whose previous revision is the stack's: what orderops-aws release writes
    first = svc["taskDefinition"]
    spec = ecs.describe_task_definition(taskDefinition=first)["taskDefinition"]
    keep = ("family", "containerDefinitions", "requiresCompatibilities", "networkMode", "cpu", "memory",
            "executionRoleArn", "taskRoleArn")
    second = ecs.register_task_definition(**{k: spec[k] for k in keep if spec.get(k)})["taskDefinition"][
        "taskDefinitionArn"]
    ecs.update_service(cluster=s.cluster_name, service=s.api_service_name, taskDefinition=second)
    aws.client("ssm").put_parameter(Name=s.release_parameter, Type="String", Overwrite=True, Value=json.dumps({
        "version": "0.2.0", "image": "img:0.2.0", "task_definition": second, "migrate_task_definition": second,
        "previous": first, "at": 0}))
    check = _by_step(_run("aws-emergency", tmp_path, check=True, action="rollback"))
    assert check["Roll back the release"].message.startswith("would roll back 0.2.0")
    result = _run("aws-emergency", tmp_path, approve=True, action="rollback")
    steps = _by_step(result)
    assert result.status == "changed", {k: (v.status, v.message) for k, v in steps.items()}
    assert steps["Service after"].data["task_definition"] == first
    record = json.loads(aws.client("ssm").get_parameter(Name=s.release_parameter)["Parameter"]["Value"])
    assert record["task_definition"] == first and record["previous"] == second


def test_cli_refuses_bad_input_before_any_call(tmp_path):
    from typer.testing import CliRunner

    from runbooks import cli

    bad = tmp_path / "aws_bad.py"
    bad.write_text('aws = {"name": "x", "region": "eu-west-1", "domain": "a.example.com", '
                   '"hosted_zone_id": "Z0EXAMPLE12345", "version": "1", "endpoint_url": "https://aws.example.com"}\n')
    res = CliRunner().invoke(cli.app, ["run", "aws-daily", "-i", str(bad), "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "aws.name" in res.output
    res = CliRunner().invoke(cli.app, ["run", "aws-emergency", "-i", "inventories/aws_local.py", "-p", "action=scale-out",
                                       "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "count: required with action=scale-out" in res.output
    hosts = tmp_path / "hosts.py"
    hosts.write_text('app = ["orderops-1"]\n')  # a host inventory: no aws settings
    res = CliRunner().invoke(cli.app, ["run", "aws-daily", "-i", str(hosts), "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "defines no 'aws' settings dict" in res.output


def test_environment_lock_reenters_for_its_own_run_only(deployed):
    from deploys.contract import aws_lock

    ddb, env = deployed.client("dynamodb"), deployed.settings.name
    outer = aws_lock.acquire(ddb, env, "runbook", run_id="run-a")
    try:
        inner = aws_lock.acquire(ddb, env, "orderops-aws rollback", run_id="run-a")
        assert inner == aws_lock.REENTERED + "run-a" and aws_lock.release(ddb, env, inner)
        with pytest.raises(aws_lock.Held) as held:
            aws_lock.acquire(ddb, env, "another run", run_id="run-b")
        assert json.loads(held.value.holder)["run_id"] == "run-a"
        with pytest.raises(aws_lock.Held):
            aws_lock.acquire(ddb, env, "no run id")
    finally:
        assert aws_lock.release(ddb, env, outer)  # the inner release left it to the outer holder
