"""CLI errors touch no host; outputs (textfile metrics, webhook); executor helpers; show and history."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from runbooks import cli
from runbooks.core.errors import ParameterError, UnknownRunbook
from runbooks.engine.params import parse_assignments, validate_params
from runbooks.engine.outputs import failure_payload, notify_webhook, textfile_text, write_textfile
from tests.support.webhook import webhook_receiver
from runbooks.executors.ansible import ansible_inventory, playbook_text
from runbooks.library import get_runbook
from tests.unit.runbooks.conftest import make_host

RESULT = {
    "runbook": "daily", "run_id": "r1", "status": "failed", "duration_s": 12.5,
    "summary": {"ok": 3, "changed": 0, "failed": 1, "skipped": 0},
    "steps": [{"name": "Resource usage", "results": {"h1": {"status": "failed", "message": "disk / 91% > 85%"}}}],
}


@pytest.fixture
def no_hosts(monkeypatch):
    """Any executor construction or inventory load would touch hosts: make them explode."""
    def explode(*a, **k):
        raise AssertionError("a host would have been touched")

    import runbooks.executors.ansible as ansible_mod
    monkeypatch.setattr(ansible_mod.AnsibleExecutor, "__init__", explode)
    monkeypatch.setattr(cli, "run_runbook", explode)


def test_unknown_runbook_is_one_clear_message(no_hosts, tmp_path):
    res = CliRunner().invoke(cli.app, ["run", "dialy", "-i", str(tmp_path / "inv.py")])
    assert res.exit_code == 2
    assert "unknown runbook 'dialy'; known runbooks: aws-backup, aws-daily, aws-emergency, aws-import-backup, aws-restore, backup, capacity, daily, data-integrity, diagnose, emergency-redeploy, emergency-restart, emergency-restore, monthly, restore-drill" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("param, expected", [
    ("disk_max_percent=abc", "parameter disk_max_percent: Input should be a valid integer"),
    ("disk_max_percent=150", "parameter disk_max_percent: Input should be less than or equal to 100"),
    ("nosuch=1", "parameter nosuch: unknown parameter (known: disk_max_percent"),
    ("novalue", "parameter novalue: expected key=value"),
])
def test_bad_parameter_is_one_clear_message(no_hosts, tmp_path, param, expected):
    res = CliRunner().invoke(cli.app, ["run", "daily", "-i", str(tmp_path / "inv.py"), "-p", param])
    assert res.exit_code == 2, res.output
    assert expected in " ".join(res.output.split())
    assert "Traceback" not in res.output


def test_missing_required_parameter(no_hosts, tmp_path):
    res = CliRunner().invoke(cli.app, ["run", "emergency-redeploy", "-i", str(tmp_path / "inv.py")])
    assert res.exit_code == 2 and "parameter version: required value is missing" in res.output


def test_missing_inventory_is_one_clear_message(no_hosts, tmp_path):
    res = CliRunner().invoke(cli.app, ["run", "daily", "-i", str(tmp_path / "nope.py")])
    assert res.exit_code == 2 and "inventory file not found" in res.output


def test_list_shows_every_runbook():
    res = CliRunner().invoke(cli.app, ["list"])
    assert res.exit_code == 0
    for name in ("daily", "diagnose", "emergency-restart", "emergency-redeploy", "aws-daily", "aws-backup",
                 "aws-restore", "aws-emergency", "weekly", "monthly"):
        assert name in res.output


def test_list_shows_the_default_schedules_and_the_serial_step():
    out = CliRunner(env={"COLUMNS": "200"}).invoke(cli.app, ["list"]).output
    weekly = out[out.index("weekly  Weekly maintenance"):]
    assert "scheduled by default (controller timer, runbook_schedules): Sun *-*-* 04:00:00" in weekly
    assert "Apply updates  (remote, app, changes, destructive, serial 1)" in weekly
    assert "scheduled by default (controller timer, runbook_schedules): *-*-* 06:00:00" in out[out.index("daily  Daily check"):]
    monthly = out[out.index("monthly  Monthly security and database review"):]
    assert "scheduled by default (controller timer, runbook_schedules): Sun *-*-01..07 05:00:00" in monthly
    assert "Security scan  (remote, app)" in monthly and "Database performance  (remote, app)" in monthly


def test_params_helpers():
    assert parse_assignments("x", ["a=1", "b-c=x=y"]) == {"a": "1", "b_c": "x=y"}
    with pytest.raises(ParameterError):
        parse_assignments("x", ["a=1", "a=2"])
    rb = get_runbook("emergency-redeploy")
    with pytest.raises(ParameterError, match="latest"):
        validate_params(rb.name, rb.params, {"version": "latest"})
    with pytest.raises(UnknownRunbook):
        get_runbook("fortnightly")


def test_textfile_format(tmp_path):
    text = textfile_text(RESULT, now=1700000000)
    from prometheus_client.parser import text_string_to_metric_families

    samples = {f.name: f.samples[0] for f in text_string_to_metric_families(text)}
    assert samples["orderops_runbook_last_run_success"].value == 0
    assert samples["orderops_runbook_last_run_success"].labels == {"runbook": "daily"}
    assert samples["orderops_runbook_last_run_timestamp_seconds"].value == 1700000000
    assert samples["orderops_runbook_last_run_duration_seconds"].value == 12.5
    assert samples["orderops_runbook_last_run_failed_results"].value == 1
    assert "# TYPE orderops_runbook_last_run_success gauge" in text
    path = write_textfile(tmp_path / "tf", {**RESULT, "runbook": "emergency-restart"})
    assert path.name == "orderops_runbook_emergency_restart.prom"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_webhook_posts_failures():
    with webhook_receiver() as (url, got):
        assert notify_webhook(url, RESULT) is None
    assert got == [failure_payload(RESULT)]
    assert got[0]["failures"] == [{"step": "Resource usage", "host": "h1", "message": "disk / 91% > 85%"}]
    assert notify_webhook("http://127.0.0.1:9/none", RESULT, timeout=2) is not None
    with webhook_receiver(status=500) as (url, _):
        assert "500" in notify_webhook(url, RESULT)


def test_ansible_inventory_from_pyinfra_host_data():
    h = make_host("web1")
    h.data.update(ssh_hostname="10.0.0.5", ssh_port=2222, ssh_user="deploy", ssh_key="/k/id",
                  ssh_strict_host_key_checking="no", ssh_known_hosts_file="/dev/null")
    hv = ansible_inventory(h)["all"]["hosts"]["web1"]
    assert (hv["ansible_host"], hv["ansible_port"], hv["ansible_user"], hv["ansible_ssh_private_key_file"]) == ("10.0.0.5", 2222, "deploy", "/k/id")
    assert "StrictHostKeyChecking=no" in hv["ansible_ssh_common_args"]
    assert "password" not in json.dumps(hv).lower()


def test_generated_playbook_never_templates_the_command():
    import yaml

    class Unsafe(str):
        pass

    loader = yaml.SafeLoader
    loader.add_constructor("!unsafe", lambda l, n: Unsafe(l.construct_scalar(n)))
    cmd = "docker ps --format '{{.Names}}' && echo \"$HOME\""
    play = yaml.load(playbook_text(cmd, sudo=True), Loader=loader)[0]
    task = play["tasks"][0]["ansible.builtin.shell"]
    assert play["become"] is True and isinstance(task["cmd"], Unsafe) and task["cmd"] == cmd


def test_show_and_history_read_the_run_directories(tmp_path):
    from runbooks.engine.model import Runbook, Step
    from runbooks.engine.runner import run as run_engine
    from runbooks.executors.fake import FakeExecutor

    fake = FakeExecutor()
    rb = Runbook("demo", "Demo", "", (Step("s", lambda ctx: ctx.ok("fine")),))
    res = run_engine(rb, [make_host("h1")], rb.params(), {"remote": fake, "local": fake, "pyinfra": fake}, runs_dir=tmp_path)
    run_id = res.run_id
    out = CliRunner().invoke(cli.app, ["history", "--runs-dir", str(tmp_path)], terminal_width=200)
    assert out.exit_code == 0 and run_id in out.output and "ok" in out.output
    out = CliRunner().invoke(cli.app, ["show", run_id[-6:], "--runs-dir", str(tmp_path)], terminal_width=200)
    assert out.exit_code == 0 and "Demo" in out.output and "fine" in out.output
    out = CliRunner().invoke(cli.app, ["show", run_id, "--runs-dir", str(tmp_path), "--format", "json"])
    assert json.loads(out.output)["run_id"] == run_id
    out = CliRunner().invoke(cli.app, ["show", "nope", "--runs-dir", str(tmp_path)])
    assert out.exit_code == 2 and "no (unique) finished run 'nope'" in out.output


def test_limit_selects_hosts_and_groups():
    from runbooks.core.errors import TargetError
    from runbooks.engine.targets import select

    hosts = [make_host("web-1"), make_host("web-2"), make_host("ctl", ("controller",))]
    assert [h.name for h in select(hosts, ["web-2"])] == ["web-2"]
    assert [h.name for h in select(hosts, ["web-*"])] == ["web-1", "web-2"]
    assert [h.name for h in select(hosts, ["controller,web-1"])] == ["web-1", "ctl"]
    assert select(hosts, None) == hosts
    with pytest.raises(TargetError, match="--limit 'db' matches no host"):
        select(hosts, ["db"])


def test_bad_inventory_is_one_clear_message(no_hosts, tmp_path):
    inv = tmp_path / "inv.py"
    inv.write_text("app = [('web-1', {'environment': 'local', 'domain': 'not a domain'})]\n")
    res = CliRunner().invoke(cli.app, ["run", "daily", "-i", str(inv)])
    assert res.exit_code == 2 and "host 'web-1'" in res.output and "Traceback" not in res.output


def test_pyinfra_deploy_reports_a_lost_lock(monkeypatch):
    from runbooks.core.types import CommandResult
    from runbooks.executors.fake import FakeExecutor
    from runbooks.executors.pyinfra_exec import PyinfraExecutor

    relock = FakeExecutor().on(r"set -e.*orderops-lock", CommandResult(75, "locked by someone"))
    ex = PyinfraExecutor("inv.py", run_id="r1", relock=relock)
    monkeypatch.setattr(ex, "_pyinfra", lambda *a, **k: CommandResult(0, '{"plan": [], "results": null}\n', ""))
    result = ex.deploy(make_host("h1"), dry=True)
    assert not result.ok and "lost the host lock" in result.errors[0]
    assert relock.calls and relock.calls[0].sudo


def test_ansible_verifies_host_keys_unless_the_inventory_says_otherwise():
    from runbooks.executors.ansible import host_key_checking

    h = make_host("web1")
    h.data.pop("ssh_strict_host_key_checking", None)
    hv = ansible_inventory(h)["all"]["hosts"]["web1"]
    assert "StrictHostKeyChecking=yes" in hv["ansible_ssh_common_args"] and host_key_checking(h) == "yes"
    h.data.update(ssh_known_hosts_file="/state/known_hosts", ssh_strict_host_key_checking="yes")
    assert "UserKnownHostsFile=/state/known_hosts" in ansible_inventory(h)["all"]["hosts"]["web1"]["ansible_ssh_common_args"]
    h.data.update(ssh_strict_host_key_checking="off")
    assert host_key_checking(h) == "no"
