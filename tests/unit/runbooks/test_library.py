"""The runbooks' decisions on scripted host output (fake executor): thresholds, restart growth,
what emergency-restart restarts, when emergency-redeploy rolls back."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from deploys.contract.services import SERVICES
from runbooks import cli
from runbooks.core.types import CommandResult, DeployResult
from runbooks.engine.runner import run
from runbooks.executors.fake import FakeExecutor
from runbooks.library import get_runbook
from tests.support.docker_inspect import container_line
from tests.unit.runbooks.conftest import make_host


def stack_states(api_image="img/api:1", restarts=0, down=()):
    """Inspect lines of the stack: every service running and healthy, except those in ``down`` (exited)."""
    return "\n".join(
        container_line(s, "exited" if s in down else "running", None if s in down else "healthy",
                       image=api_image if s == "api" else f"img/{s}:1", restarts=restarts if s == "api" else 0)
        for s in SERVICES
    )


STATES_OK = stack_states()
USAGE = ("#df\n/dev/sda1 100 50 50 91% /\n/dev/sda1 100 50 50 40% /var/lib/docker\n#di\n/dev/sda1 100 5 95 5% /\n"
         "/dev/sda1 100 5 95 5% /var/lib/docker\n#mem\nMemTotal: 1000 kB\nMemAvailable: 500 kB\n#load\n0.5 0.6 0.7 1/100 1\n2\n")


def _result(res):
    return json.loads(open(f"{res.run_dir}/result.json").read())


def _step(data, name, host="h1"):
    return next(s for s in data["steps"] if s["name"] == name)["results"][host]


class FakePyinfra(FakeExecutor):
    def __init__(self, deploys):
        super().__init__("pyinfra")
        self.deploys = list(deploys)
        self.deployed = []

    def deploy(self, host, dry=False, data=None, timeout=0):
        self.deployed.append((dry, dict(data or {})))
        return self.deploys.pop(0)


def _executors(remote, pyinfra=None):
    return {"remote": remote, "local": remote, "pyinfra": pyinfra or FakePyinfra([DeployResult(True, [])] * 3)}


def test_daily_flags_disk_and_restart_growth(tmp_path):
    rb = get_runbook("daily")
    fake = FakeExecutor().on(r"docker inspect", STATES_OK).on(r"#df", USAGE).on(r"openssl x509", "#file\nserial=0A1B\nnotAfter=Jan  1 00:00:00 2099 GMT\n#served\nserial=0A1B\nnotAfter=Jan  1 00:00:00 2099 GMT")
    p = rb.params(drift=True)
    res = run(rb, [make_host("h1")], p, _executors(fake, FakePyinfra([DeployResult(True, ["order stack | nginx vhost"])])), runs_dir=tmp_path)
    data = _result(res)
    assert _step(data, "Resource usage")["message"] == "threshold crossed: disk / 91% > 85%"
    assert _step(data, "Configuration drift")["data"]["drift"] == ["order stack | nginx vhost"]
    assert _step(data, "Certificate days left")["status"] == "ok"
    # the next run sees api restarted 3 times since this one
    fake2 = FakeExecutor().on(r"docker inspect", stack_states(restarts=3))
    res2 = run(rb, [make_host("h1")], rb.params(drift=False), _executors(fake2), runs_dir=tmp_path)
    status = _step(_result(res2), "Service status")
    assert status["status"] == "failed" and "api: restarted 3 time(s) since the last run" in status["message"]


def _daily_certificate(tmp_path, file_out: str, served_out: str) -> dict:
    rb = get_runbook("daily")
    fake = (FakeExecutor().on(r"docker inspect", STATES_OK).on(r"#df", USAGE)
            .on(r"s_client", f"#file\n{file_out}\n#served\n{served_out}\n"))
    res = run(rb, [make_host("h1")], rb.params(drift=False), _executors(fake), runs_dir=tmp_path)
    assert any("s_client -connect 127.0.0.1:443" in c for c in fake.commands())
    return _step(_result(res), "Certificate days left")


def test_daily_certificate_reads_the_served_certificate(tmp_path):
    ok = _daily_certificate(tmp_path, "serial=0A1B\nnotAfter=Jan  1 00:00:00 2099 GMT",
                            "serial=0A1B\nnotAfter=Jan  1 00:00:00 2099 GMT")
    assert ok["status"] == "ok" and ok["data"]["served_serial"] == "0A1B"


def test_daily_certificate_fails_when_nginx_serves_another_serial(tmp_path):
    stale = _daily_certificate(tmp_path, "serial=0A1C\nnotAfter=Jan  1 00:00:00 2099 GMT",
                               "serial=0A1B\nnotAfter=Jan  1 00:00:00 2030 GMT")
    assert stale["status"] == "failed" and "nginx serves serial 0A1B" in stale["message"]


def test_daily_certificate_fails_when_nothing_is_served(tmp_path):
    none = _daily_certificate(tmp_path, "serial=0A1B\nnotAfter=Jan  1 00:00:00 2099 GMT", "")
    assert none["status"] == "failed" and "serves no readable certificate" in none["message"]


def test_emergency_restart_restarts_only_what_is_down(tmp_path):
    rb = get_runbook("emergency-restart")
    down = stack_states(down=("redis",))
    fake = FakeExecutor().on(r"docker inspect", down).on(r"ps -a --services", "api\npostgres\nredis\nnginx\n")
    res = run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path, check=True)
    assert _step(_result(res), "Restart them")["message"] == "check mode: would restart redis"
    assert not any(" restart " in c for c in fake.commands())
    calls = {"n": 0}

    def states(host, cmd):
        calls["n"] += 1
        return down if calls["n"] == 1 else STATES_OK

    fake = FakeExecutor().on(r"docker inspect", states).on(r"ps -a --services", "api\npostgres\nredis\nnginx\n")
    res = run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path)
    data = _result(res)
    assert _step(data, "Restart them")["status"] == "changed"
    restart = [c for c in fake.commands() if " restart " in c]
    assert len(restart) == 1 and restart[0].endswith("restart redis")
    assert not any("down" in c or "-v" in c.split() or "prune" in c for c in fake.commands())


def _redeploy(tmp_path, revisions, deploys, heads="0001", backup=None, **params):
    rb = get_runbook("emergency-redeploy")
    revs = iter(revisions)
    fake = (FakeExecutor().on(r"get_heads", heads).on(r"orderops-backup now", backup or CommandResult(1, "", "unexpected backup"))
            .on(r"docker inspect", stack_states(api_image="orderops/order-service:1.0"))
            .on(r"alembic_version", lambda h, c: next(revs)).on(r"curl", "200").on(r"docker image inspect", "sha256:abc"))
    pyinfra = FakePyinfra(deploys)
    res = run(rb, [make_host("h1")], rb.params(version="2.0", health_timeout=30, **params), _executors(fake, pyinfra),
              runs_dir=tmp_path, approve=True)
    writes = [c for c in fake.commands() if "release.json.new" in c]
    _redeploy.commands = fake.commands()
    return _result(res), pyinfra, writes


def test_redeploy_rolls_back_when_the_schema_did_not_change(tmp_path):
    data, pyinfra, writes = _redeploy(tmp_path, ["0001", "0001", "0001"], [DeployResult(False, errors=["unhealthy"]), DeployResult(True, [])])
    assert _step(data, "Deploy the new version")["status"] == "failed"
    assert _step(data, "Roll back if unhealthy")["status"] == "changed"
    assert [d for d in pyinfra.deployed] == [(False, {"health_timeout": "30"})] * 2
    assert "orderops/order-service:2.0" in writes[0] and '"order_service": "orderops/order-service:1.0"' in writes[1]


def test_redeploy_stops_for_the_operator_when_the_schema_changed(tmp_path):
    data, pyinfra, writes = _redeploy(tmp_path, ["0001", "0002", "0002"], [DeployResult(False, errors=["unhealthy"])])
    rollback = _step(data, "Roll back if unhealthy")
    assert rollback["status"] == "failed" and "not rolling back automatically" in rollback["message"]
    assert len(pyinfra.deployed) == 1 and len(writes) == 1
    data, pyinfra, _ = _redeploy(tmp_path, ["0001", "0002", "0002"], [DeployResult(False, []), DeployResult(True, [])], compatible_rollback=True)
    assert _step(data, "Roll back if unhealthy")["status"] == "changed"


def test_redeploy_happy_path_needs_no_rollback(tmp_path):
    data, pyinfra, writes = _redeploy(tmp_path, ["0001", "0002"], [DeployResult(True, [])])
    assert _step(data, "Deploy the new version")["status"] == "changed"
    assert _step(data, "Roll back if unhealthy")["message"] == "not needed"
    assert data["status"] == "changed"


def test_daily_states_the_recorded_release(tmp_path):
    rb = get_runbook("daily")
    record = json.dumps({"order_service": "orderops/order-service:2.0", "inventory_ref": "orderops/order-service:1.0",
                         "run_id": "r9"})
    fake = (FakeExecutor().on(r"#release", f"#release\n{record}\n#containers\n"
                              + stack_states(api_image="orderops/order-service:2.0"))
            .on(r"docker inspect", STATES_OK))
    res = run(rb, [make_host("h1")], rb.params(drift=False), _executors(fake), runs_dir=tmp_path)
    step = _step(_result(res), "Running release")
    assert step["status"] == "ok" and step["message"].startswith("orderops/order-service:2.0 from release.json")
    assert step["data"]["recorded"]["run_id"] == "r9" and step["data"]["running"] == "orderops/order-service:2.0"
    # `runbook show` states it: the report's "running release" table
    shown = CliRunner().invoke(cli.app, ["show", res.run_id, "--runs-dir", str(tmp_path)], terminal_width=250)
    assert shown.exit_code == 0, shown.output
    recorded = next(line for line in shown.output.splitlines() if "recorded release" in line)
    assert "orderops/order-service:2.0 (run r9" in recorded
    # no record: the inventory's ref, and a mismatch with what runs is named
    fake = FakeExecutor().on(r"#release", "#release\n#containers\n" + STATES_OK).on(r"docker inspect", STATES_OK)
    step = _step(_result(run(rb, [make_host("h1")], rb.params(drift=False), _executors(fake), runs_dir=tmp_path)),
                 "Running release")
    assert step["data"]["source"] == "inventory" and step["message"].endswith("; api runs img/api:1")


def test_diagnose_reads_docker_json_and_names_a_line_it_cannot_read(tmp_path):
    rb = get_runbook("diagnose")
    ps = "\n".join(json.dumps({"Service": s, "State": "running", "Status": "Up 2 hours (healthy)", "Image": f"img/{s}:1"})
                   for s in SERVICES)
    fake = FakeExecutor().on(r"ps -a --format json", ps).on(r"docker stats", '{"Name": "orderops-api-1", "CPUPerc": "0.5%"}\nshort')
    data = _result(run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path))
    status = _step(data, "Compose status")
    assert [r[0] for r in status["tables"][0]["rows"]] == list(SERVICES)
    stats = _step(data, "Container resources")
    assert stats["status"] == "failed" and "'short'" in stats["message"]


def test_redeploy_backs_up_first_when_the_image_has_a_new_migration(tmp_path):
    import json as _json

    manifest = {"id": "20261203T000000Z", "duration_seconds": 1.5, "row_counts": {"orders": 3},
                "files": {"db": {"name": "db.dump.zst.age", "bytes": 10}}}
    data, pyinfra, _ = _redeploy(tmp_path, ["0001", "0002"], [DeployResult(True, [])], heads="0002", backup=_json.dumps(manifest))
    step = _step(data, "Back up first when the new image carries a new migration")
    assert step["status"] == "changed" and "20261203T000000Z" in step["message"]
    cmds = _redeploy.commands
    backup_at = next(i for i, c in enumerate(cmds) if "orderops-backup now" in c)
    assert backup_at < next(i for i, c in enumerate(cmds) if "release.json.new" in c)  # before the deploy
    assert len(pyinfra.deployed) == 1
    # a failed backup stops the redeploy before anything is deployed
    data, pyinfra, writes = _redeploy(tmp_path, ["0001", "0002"], [DeployResult(True, [])], heads="0002",
                                      backup=CommandResult(1, "", "orderops-backup: db: pg_dump exited 1: connection refused"))
    step = _step(data, "Back up first when the new image carries a new migration")
    assert step["status"] == "failed" and "pg_dump exited 1" in step["message"]
    assert pyinfra.deployed == [] and writes == []
    # the same head: no backup
    data, _, _ = _redeploy(tmp_path, ["0001", "0001"], [DeployResult(True, [])], heads="0001")
    assert _step(data, "Back up first when the new image carries a new migration")["message"] == "no new migration (0001)"
