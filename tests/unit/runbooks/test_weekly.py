"""The weekly runbook on the fake executor: parsers, check mode changes nothing, --yes applies
updates one host at a time and halts at an unhealthy host, log and image hygiene, the drill's skip."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploys.contract.services import SERVICES
from runbooks.core.errors import ExecutorError
from runbooks.core.types import CommandResult
from runbooks.engine.runner import NOT_APPROVED, run
from runbooks.library import get_runbook, weekly
from runbooks.library.weekly import parse_simulated_upgrade, parse_size
from tests.unit.runbooks.conftest import make_host

SIM = """NOTE: This is only a simulation!
Inst dummy-sec [1.0] (1.1 Local:bookworm-security [all])
Inst curl [7.88.1-10] (7.88.1-10+deb12u5 Debian:12.5/bookworm [amd64]) []
Inst libgcrypt20-dev [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []
Conf dummy-sec (1.1 Local:bookworm-security [all])
"""


def _inspect(health="healthy"):
    return "\n".join(json.dumps({"Name": f"/orderops-{s}-1", "Config": {"Image": "img", "Labels": {
        "com.docker.compose.service": s, "com.docker.compose.project": "orderops"}},
        "State": {"Status": "running", "Health": {"Status": health}}, "RestartCount": 0}) for s in SERVICES)


@pytest.fixture
def weekly_hosts():
    hs = [make_host(n) for n in ("h1", "h2", "h3")]
    for h in hs:
        h.settings.docker_log_max_size = "10m"
    return hs


def test_parse_simulated_upgrade_separates_security():
    pk = parse_simulated_upgrade(SIM)
    assert [(p["package"], p["current"], p["candidate"], p["security"]) for p in pk] == [
        ("dummy-sec", "1.0", "1.1", True), ("curl", "7.88.1-10", "7.88.1-10+deb12u5", False),
        ("libgcrypt20-dev", "1.10.1-3", "1.10.1-3+deb12u1", True)]  # a line of a real Debian 12 machine


@pytest.mark.parametrize("text,n", [("10m", 10 * 1024 ** 2), ("512k", 512 * 1024), ("7", 7), ("1G", 1024 ** 3)])
def test_parse_size(text, n):
    assert parse_size(text) == n


def test_parse_size_rejects():
    with pytest.raises(ValueError, match="not a size"):
        parse_size("ten")


def _script(fake, unhealthy_after_upgrade=None):
    fake.on(r"apt-get -s", SIM + "#reboot\n")
    fake.on(r"--only-upgrade install", "done")
    fake.on(r"docker inspect|docker ps", lambda h, c: _inspect("unhealthy" if h.name == unhealthy_after_upgrade else "healthy"))
    fake.on(r"journalctl --disk-usage", "Archived and active journals take up 1.2G.\n#logs\n"
            f"{20 * 1024 ** 2} /var/lib/docker/containers/abc/abc-json.log\n100 /var/lib/docker/containers/d/d-json.log\n")
    fake.on(r"journalctl --vacuum", CommandResult(0, "", "Vacuuming done, freed 700.0M"))
    fake.on(r"docker images -q -f dangling", "sha256:aaa\nsha256:bbb\n#cache\nTotal: 1.5GB\n")
    fake.on(r"prune", "Total reclaimed space: 1GB")


def _st(res, name):
    rec = next(s for s in res.steps if s.name == name)
    return {h: (r.status, r.message) for h, r in rec.results.items()}


CHANGING = ("--only-upgrade", "journalctl --vacuum", "prune")


def test_check_mode_reports_every_fault_and_changes_nothing(weekly_hosts, fake, executors, tmp_path):
    _script(fake)
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts, rb.params(), executors, runs_dir=tmp_path, check=True)
    assert not [c for c in fake.commands() if any(x in c for x in CHANGING)]
    assert _st(res, "Pending updates")["h1"] == ("ok", "3 pending, 2 security")
    assert _st(res, "Apply updates")["h1"][1] == "check mode: would upgrade 3: dummy-sec, curl, libgcrypt20-dev"
    assert _st(res, "Log cleanup")["h1"][0] == "failed" and "1 container log(s) past 10m" in _st(res, "Log cleanup")["h1"][1]
    assert "would remove 2 dangling" in _st(res, "Docker hygiene")["h1"][1]
    assert _st(res, "Backup integrity")["h1"][0] == "skipped"


def test_without_yes_changing_steps_are_not_run(weekly_hosts, fake, executors, tmp_path):
    _script(fake)
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts, rb.params(), executors, runs_dir=tmp_path)
    assert not [c for c in fake.commands() if any(x in c for x in CHANGING)]
    assert _st(res, "Apply updates")["h2"] == ("skipped", NOT_APPROVED)
    assert _st(res, "Pending updates")["h2"][0] == "ok"


def test_yes_applies_serially_and_halts_at_an_unhealthy_host(weekly_hosts, fake, executors, tmp_path):
    _script(fake, unhealthy_after_upgrade="h2")
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts, rb.params(), executors, runs_dir=tmp_path, approve=True)
    st = _st(res, "Apply updates")
    assert st["h1"][0] == "changed"
    assert st["h2"][0] == "failed" and "stack not healthy" in st["h2"][1]
    assert st["h3"] == ("skipped", "not run: serial step stopped after it failed on h2")
    assert not [c for c in fake.commands("h3") if "--only-upgrade" in c]
    assert [c for c in fake.commands("h1") if "--only-upgrade install dummy-sec curl libgcrypt20-dev" in c]
    assert _st(res, "Docker hygiene")["h1"][0] == "changed"
    assert _st(res, "Docker hygiene")["h3"][0] == "skipped"  # out of the run


def test_security_only_applies_security_packages(weekly_hosts, fake, executors, tmp_path):
    _script(fake)
    rb = get_runbook("weekly")
    run(rb, weekly_hosts[:1], rb.params(security_only=True), executors, runs_dir=tmp_path, approve=True)
    assert [c for c in fake.commands("h1") if c.endswith("--only-upgrade install dummy-sec libgcrypt20-dev")]


def test_backup_without_a_backup_is_skipped_with_the_reason(weekly_hosts, fake, executors, tmp_path):
    _script(fake)
    key = tmp_path / "k"
    key.write_text("AGE-SECRET-KEY-1XYZ\n")
    fake.on(r"orderops-backup verify", CommandResult(1, "", "error: no valid backup in /var/backups/orderops"))
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts[:1], rb.params(identity=str(key)), executors, runs_dir=tmp_path, approve=True)
    assert _st(res, "Backup integrity")["h1"] == ("skipped", "no backup to drill: no usable backup latest: "
                                                  "error: no valid backup in /var/backups/orderops")


REBOOT_CMD = "systemctl reboot"


class _Clock:
    """``time`` of the weekly module: ``sleep`` advances ``monotonic`` (a reboot wait in no time)."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _rebooting(fake, comes_back_after: int | None):
    """The marker probe fails (connection lost) ``comes_back_after`` times, then passes; never when ``None``."""
    probes = []

    def probe(host, command):
        probes.append(command)
        if comes_back_after is None or len(probes) <= comes_back_after:
            raise ExecutorError(f"ansible-runner on {host.name}: unreachable")
        return CommandResult(0, "")

    fake.on(r"test ! -e /run/orderops-reboot-", probe)
    fake.on(r"cat /etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    return probes


def test_reboot_is_deferred_unless_allowed(weekly_hosts, fake, executors, tmp_path):
    _script(fake)  # the fake's `test -e /var/run/reboot-required` passes: every host asks for a reboot
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts[:1], rb.params(), executors, runs_dir=tmp_path, approve=True)
    assert _st(res, "Apply updates")["h1"] == ("changed", "upgraded 3, stack healthy; reboot required: deferred (reboot=false)")
    assert not [c for c in fake.commands() if REBOOT_CMD in c]


def test_reboot_of_the_controller_host_is_deferred_and_reported(fake, executors, tmp_path):
    _script(fake)
    _rebooting(fake, 0)
    host = make_host("c1", groups=("app", "controller"))
    host.settings.docker_log_max_size = "10m"
    rb = get_runbook("weekly")
    res = run(rb, [host], rb.params(reboot=True), executors, runs_dir=tmp_path, approve=True)
    rec = next(s for s in res.steps if s.name == "Apply updates").results["c1"]
    assert rec.status == "changed" and rec.data["reboot"] == "deferred"
    assert rec.data["reboot_deferred"] == "c1 is the controller host, the runbook runs on it"
    assert "reboot required: deferred (c1 is the controller host" in rec.message
    assert not [c for c in fake.commands() if REBOOT_CMD in c]


def test_reboot_of_this_machine_is_deferred(weekly_hosts, fake, executors, tmp_path, monkeypatch):
    _script(fake)
    _rebooting(fake, 0)
    monkeypatch.setattr(weekly, "LOCAL_MACHINE_ID", tmp_path / "machine-id")
    (tmp_path / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")  # the fake host's own
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts[:1], rb.params(reboot=True), executors, runs_dir=tmp_path, approve=True)
    rec = next(s for s in res.steps if s.name == "Apply updates").results["h1"]
    assert rec.data["reboot_deferred"] == "h1 is this machine (same /etc/machine-id), the runbook runs on it"
    assert not [c for c in fake.commands() if REBOOT_CMD in c]


def test_reboot_waits_for_ssh_and_health_then_the_next_host(weekly_hosts, fake, executors, tmp_path, monkeypatch):
    _script(fake)
    probes = _rebooting(fake, 3)
    monkeypatch.setattr(weekly, "time", _Clock())
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts[:2], rb.params(reboot=True), executors, runs_dir=tmp_path, approve=True)
    st = _st(res, "Apply updates")
    assert st["h1"] == ("changed", "upgraded 3, rebooted, back and healthy in 20 s")  # 4 probes, 5 s apart
    assert st["h2"][0] == "changed" and len(probes) == 4 + 1  # h2's first probe already passes
    h1 = fake.commands("h1")
    reboot_at = next(i for i, c in enumerate(h1) if REBOOT_CMD in c)
    assert "touch /run/orderops-reboot-" in h1[reboot_at] and "systemd-run --quiet --on-active=2" in h1[reboot_at]
    assert any("docker inspect" in c for c in h1[reboot_at + 1:]), "health not checked after the reboot"


def test_a_host_that_does_not_come_back_stops_the_run(weekly_hosts, fake, executors, tmp_path, monkeypatch):
    _script(fake)
    _rebooting(fake, None)
    monkeypatch.setattr(weekly, "time", _Clock())
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts[:2], rb.params(reboot=True, reboot_timeout=60), executors, runs_dir=tmp_path, approve=True)
    st = _st(res, "Apply updates")
    assert st["h1"] == ("failed", "upgraded 3, rebooted: not back over SSH 60 s after the reboot")
    assert st["h2"] == ("skipped", "not run: serial step stopped after it failed on h1")
    assert not [c for c in fake.commands("h2") if REBOOT_CMD in c or "--only-upgrade" in c]


def _old_run(runs: Path, run_id: str, days: float) -> Path:
    d = runs / run_id
    d.mkdir(parents=True)
    (d / "events.jsonl").write_text("{}\n")
    t = time.time() - days * 86400
    os.utime(d, (t, t))
    return d


def test_log_cleanup_removes_old_run_directories_never_the_current_one(weekly_hosts, fake, executors, tmp_path):
    """Run directories older than ``runs_max_days`` (3 here; the runner's own rotation keeps 30
    days) go; a younger one, a directory that is no run (the capacity store) and this run's stay.
    Under ``--check`` they are listed and kept."""
    _script(fake)
    runs = tmp_path / "runs"
    old = [_old_run(runs, f"2026010{i}T000000Z-weekly-old{i}", 5 + i) for i in range(2)]
    young = _old_run(runs, "20260110T000000Z-weekly-young", 1)
    (runs / "capacity").mkdir()
    os.utime(runs / "capacity", (0, 0))
    rb = get_runbook("weekly")
    res = run(rb, weekly_hosts[:1], rb.params(runs_max_days=3), executors, runs_dir=runs, check=True)
    st = next(s for s in res.steps if s.name == "Log cleanup").results["h1"]
    assert sorted(st.data["old_runs"]) == sorted(d.name for d in old) and "remove 2 run directories older than 3d" in st.message
    assert all(d.is_dir() for d in old)
    res = run(rb, weekly_hosts[:1], rb.params(runs_max_days=3), executors, runs_dir=runs, approve=True)
    st = next(s for s in res.steps if s.name == "Log cleanup").results["h1"]
    assert sorted(st.data["old_runs"]) == sorted(d.name for d in old) and "2 old run directories removed" in st.message
    assert not any(d.exists() for d in old) and young.is_dir() and (runs / "capacity").is_dir()
    assert (runs / res.run_id / "result.json").is_file()


def test_log_cleanup_never_removes_the_current_run_even_when_it_is_old(weekly_hosts, fake, executors, tmp_path):
    from runbooks.library.weekly import _old_runs

    _script(fake)
    current = _old_run(tmp_path, "20250101T000000Z-weekly-current", 400)
    other = _old_run(tmp_path, "20250101T000000Z-weekly-other", 400)
    rb = get_runbook("weekly")
    ctx = SimpleNamespace(run_dir=current, params=rb.params(runs_max_days=1))
    assert _old_runs(ctx) == [other]
    assert _old_runs(SimpleNamespace(run_dir=None, params=ctx.params)) == []


def test_silence_request_matches_the_host_for_the_window():
    from datetime import datetime, timezone

    from runbooks.library.weekly import SILENCE_CREATOR, silence_request

    body = silence_request("h1", 90, "20261204T000000Z-weekly-abc", datetime(2026, 12, 4, 23, 30, tzinfo=timezone.utc))
    assert body == {"matchers": [{"name": "host", "value": "h1", "isRegex": False, "isEqual": True}],
                    "startsAt": "2026-12-04T23:30:00.000Z", "endsAt": "2026-12-05T01:00:00.000Z",
                    "createdBy": SILENCE_CREATOR, "comment": "maintenance window of run 20261204T000000Z-weekly-abc: updates applied"}


def _monitored(name):
    h = make_host(name, groups=("app", "monitoring"))
    h.settings.docker_log_max_size = "10m"
    h.settings.monitoring = SimpleNamespace(loopback_ports={"alertmanager": 19093, "prometheus": 19090})
    return h


def _posted(command: str) -> dict:
    """The JSON body a silence command pipes to curl (``printf '%s' '<json>' | curl ...``)."""
    import shlex

    words = shlex.split(command)
    return json.loads(words[words.index("printf") + 2])


@pytest.mark.parametrize("unhealthy", [False, True])
def test_updates_run_inside_an_alert_silence_expired_afterwards(fake, executors, tmp_path, unhealthy):
    _script(fake, unhealthy_after_upgrade="h1" if unhealthy else None)
    fake.on(r"/api/v2/silences", '{"silenceID":"5f1c2a3b-aaaa-bbbb-cccc-0123456789ab"}')
    rb = get_runbook("weekly")
    res = run(rb, [_monitored("h1")], rb.params(silence_minutes=45), executors, runs_dir=tmp_path, approve=True)
    cmds = fake.commands("h1")
    post = next(i for i, c in enumerate(cmds) if "/api/v2/silences" in c)
    upgrade = next(i for i, c in enumerate(cmds) if "--only-upgrade" in c)
    delete = next(i for i, c in enumerate(cmds) if "-X DELETE" in c)
    assert post < upgrade < delete  # expired also when the host is not healthy: its alerts fire again
    assert "curl -fsS -m 20 -X POST -H 'Content-Type: application/json' --data-binary @- http://127.0.0.1:19093/api/v2/silences" in cmds[post]
    body = _posted(cmds[post])
    assert body["matchers"] == [{"name": "host", "value": "h1", "isRegex": False, "isEqual": True}]
    assert body["comment"] == f"maintenance window of run {res.run_id}: updates applied"
    from datetime import datetime

    length = datetime.fromisoformat(body["endsAt"]) - datetime.fromisoformat(body["startsAt"])
    assert length.total_seconds() == 45 * 60
    assert cmds[delete].endswith("http://127.0.0.1:19093/api/v2/silence/5f1c2a3b-aaaa-bbbb-cccc-0123456789ab")
    rec = next(s for s in res.steps if s.name == "Apply updates").results["h1"]
    assert rec.status == ("failed" if unhealthy else "changed")
    assert rec.data["silence"] == {"id": "5f1c2a3b-aaaa-bbbb-cccc-0123456789ab", "ends_at": body["endsAt"], "expired": True}


def test_a_refused_silence_is_reported_and_the_update_goes_on(fake, executors, tmp_path):
    _script(fake)
    fake.on(r"/api/v2/silences", CommandResult(7, "", "curl: (7) Failed to connect to 127.0.0.1 port 19093"))
    rb = get_runbook("weekly")
    res = run(rb, [_monitored("h1")], rb.params(), executors, runs_dir=tmp_path, approve=True)
    rec = next(s for s in res.steps if s.name == "Apply updates").results["h1"]
    assert rec.status == "changed" and rec.message.endswith(
        "; alert silence: POST /api/v2/silences failed: curl: (7) Failed to connect to 127.0.0.1 port 19093")
    assert not [c for c in fake.commands() if "-X DELETE" in c]


def test_no_silence_without_a_monitoring_stack_or_in_check_mode(weekly_hosts, fake, executors, tmp_path):
    _script(fake)
    rb = get_runbook("weekly")
    run(rb, weekly_hosts[:1], rb.params(), executors, runs_dir=tmp_path, approve=True)
    run(rb, [_monitored("h2")], rb.params(), executors, runs_dir=tmp_path, check=True)
    assert not [c for c in fake.commands() if "/api/v2/silence" in c]
