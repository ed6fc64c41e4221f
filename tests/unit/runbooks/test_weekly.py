"""The weekly runbook on the fake executor: parsers, check mode changes nothing, --yes applies
updates one host at a time and halts at an unhealthy host, log and image hygiene, the drill's skip."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deploys.contract.services import SERVICES
from runbooks.core.types import CommandResult
from runbooks.engine.runner import NOT_APPROVED, run
from runbooks.library import get_runbook
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
