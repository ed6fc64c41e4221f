"""The monthly runbook on the fake executor: a clean host passes, every finding of the security
scan and of the database review fails its step naming it, the outside probe (real sockets on this
machine) and the single layout's vantage message, check mode, the parsers."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone

import pytest

from deploys.contract.sshd import policy
from runbooks.core.types import CommandResult
from runbooks.engine.runner import run
from runbooks.library import get_runbook, monthly
from runbooks.library.monthly import (
    NO_VANTAGE, image_age_days, parse_certificate, parse_listening, parse_published, parse_users, probe_ports,
)
from tests.unit.runbooks.conftest import make_host

ALLOW = (22, 80, 443)
NOW = datetime.now(timezone.utc)
SSH_GROUPS = ("orderops-ssh",)


def _docker_time(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def _openssl_date(days: int) -> str:
    return (NOW + timedelta(days=days, hours=1)).strftime("%b %d %H:%M:%S %Y GMT")


def _tls(accepted: bool, version: str) -> str:
    if accepted:
        return f"New, {version}, Cipher is TLS_AES_256_GCM_SHA384\nrc=0\n"
    return "40C7A1E4B17F0000:error:0A00042E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version\nNew, (NONE), Cipher is (NONE)\nrc=1\n"


def scan_output(*, listening=(22, 80, 443), published="orderops-nginx-1\t0.0.0.0:80->80/tcp, 0.0.0.0:443->443/tcp",
                sshd=None, tls10=False, tls12=True, cert_days=200, names="DNS:order.test", image_days=10,
                extra_passwd="", sudoers="/etc/sudoers.d/deploy:deploy ALL=(ALL) NOPASSWD:ALL") -> str:
    """What the security scan's one command prints on a host (sections as the host prints them)."""
    sshd = policy(SSH_GROUPS) if sshd is None else sshd
    ss = "\n".join(f"LISTEN 0      4096         0.0.0.0:{p}        0.0.0.0:*" for p in listening)
    passwd = ("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
              "sync:x:4:65534:sync:/bin:/bin/sync\ndeploy:x:1000:1000::/home/deploy:/bin/bash\n" + extra_passwd)
    return "\n".join([
        "#orderops:listening", ss,
        "#orderops:published", published,
        "#orderops:sshd", *[f"{k.lower()} {v}" for k, v in sshd.items()], "port 22",
        "#orderops:tls-tls1", _tls(tls10, "TLSv1"), "#orderops:tls-tls1_1", _tls(False, "TLSv1.1"),
        "#orderops:tls-tls1_2", _tls(tls12, "TLSv1.2"), "#orderops:tls-tls1_3", _tls(True, "TLSv1.3"),
        "#orderops:certificate", "subject=CN = order.test", f"notAfter={_openssl_date(cert_days)}",
        "X509v3 Subject Alternative Name: ", f"    {names}",
        "#orderops:containers", "/orderops-nginx-1\torderops-local/nginx:1.22-abc\tsha256:nnn",
        "/orderops-api-1\torderops/order-service:1.0\tsha256:aaa",
        "#orderops:images", f"sha256:nnn\t{_docker_time(image_days)}", f"sha256:aaa\t{_docker_time(3)}",
        "#orderops:passwd", passwd,
        "#orderops:groups", "sudo:x:27:deploy",
        "#orderops:sudoers", sudoers, "",
    ])


SIM_CLEAN = "NOTE: This is only a simulation!\nInst curl [7.88.1-10] (7.88.1-10+deb12u5 Debian:12.5/bookworm [amd64])\n"
SIM_SECURITY = SIM_CLEAN + "Inst libssl3 [3.0.11-1] (3.0.15-1~deb12u1 Debian-Security:12/bookworm-security [amd64])\n"


def db_output(*, pss=True, slow_ms=2.5, dead=10, live=5000, vacuumed_days=1, unused_bytes=0, hit=99900, read=100) -> str:
    now = NOW.timestamp()
    stats = {
        "tables": [{"table": "public.orders", "live": live, "dead": dead, "vacuumed": now - vacuumed_days * 86400,
                    "analysed": now - vacuumed_days * 86400},
                   {"table": "public.alembic_version", "live": 1, "dead": 0, "vacuumed": None, "analysed": None}],
        "unused_indexes": [{"index": "public.ix_orders_customer", "table": "orders", "bytes": unused_bytes}] if unused_bytes else [],
        "blks_hit": hit, "blks_read": read, "now": now, "pss": pss,
    }
    slow = [{"query": "SELECT pg_sleep($1)", "calls": 5, "mean_ms": slow_ms, "total_ms": slow_ms * 5},
            {"query": "SELECT 1", "calls": 100, "mean_ms": 0.01, "total_ms": 1.0}]
    # psql prints json_agg with a line break between elements
    return json.dumps(stats) + "\n#orderops:slow\n" + (json.dumps(slow).replace("}, {", "}, \n {") if pss else "") + "\n"


@pytest.fixture
def host():
    h = make_host("h1")
    h.settings.firewall_allow_tcp = ALLOW
    h.settings.ssh_allow_groups = SSH_GROUPS
    h.settings.deploy_user = "deploy"
    h.settings.controller_address = None
    return h


def _script(fake, scan=None, sim=SIM_CLEAN, db=None):
    fake.on(r"apt-get -s", sim + "#reboot\n")
    fake.on(r"#orderops:listening", scan if scan is not None else scan_output())
    fake.on(r"pg_stat_user_tables", db if db is not None else db_output())


def _run(host, fake, executors, tmp_path, check=False, **params):
    rb = get_runbook("monthly")
    res = run(rb, [host], rb.params(**params), executors, runs_dir=tmp_path, check=check)
    return {s.name: s.results["h1"] for s in res.steps}


def test_clean_host_passes_and_the_single_layout_has_no_vantage_point(host, fake, executors, tmp_path):
    host = make_host("h1", groups=("app", "controller"))  # the single layout: the runbook runs on the host
    host.settings.firewall_allow_tcp, host.settings.ssh_allow_groups, host.settings.deploy_user = ALLOW, SSH_GROUPS, "deploy"
    host.settings.controller_address = None
    _script(fake, scan=scan_output(listening=(22, 80, 443, 9999)))  # not probed: no finding
    st = _run(host, fake, executors, tmp_path)
    scan, db = st["Security scan"], st["Database performance"]
    assert scan.status == "ok", scan.message
    assert f"ports: {NO_VANTAGE}: h1 is the controller host" in scan.message
    assert scan.data["ports"]["probed"] is False and 9999 in scan.data["ports"]["candidates"]
    assert any(t.title.startswith(f"ports from outside: {NO_VANTAGE}") for t in scan.tables)
    assert len(scan.tables) == 6
    assert db.status == "ok" and db.message == "no findings; cache hit 99.9%", db.message
    assert {t.title.split(" (")[0] for t in db.tables} >= {"slowest statements", "cache hit ratio"}


def test_an_address_of_this_machine_is_no_outside_vantage_point_either(host, fake, executors, tmp_path):
    _script(fake)  # app-only host, but its address (127.0.0.1) is this machine's own
    scan = _run(host, fake, executors, tmp_path)["Security scan"]
    assert scan.status == "ok" and f"{NO_VANTAGE}: 127.0.0.1 is an address of this machine" in scan.message


@pytest.fixture
def listener():
    """A real TCP listener on 127.0.0.1 (the port a stray container would publish)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_finds_an_open_port_not_in_the_allowlist(host, fake, executors, tmp_path, listener, monkeypatch):
    # this machine stands in for the outside: its loopback is not "local" for this test only
    monkeypatch.setattr(monthly, "_is_local_address", lambda address: False)
    closed = _free_port()
    _script(fake, scan=scan_output(listening=(22, closed), published=f"stray\t0.0.0.0:{listener}->8000/tcp, :::{listener}->8000/tcp"))
    scan = _run(host, fake, executors, tmp_path)["Security scan"]
    assert scan.status == "failed"
    assert f"reachable from outside, not in firewall_allow_tcp: {listener} (stray)" in scan.message
    assert scan.data["ports"]["not_allowed"] == [listener]
    rows = {r[0]: r for r in next(t for t in scan.tables if t.title.startswith("ports from outside")).rows}
    assert rows[listener][1:] == [f"published by stray", False, "open"] and rows[closed][3] == "closed"


def test_probe_of_allowed_ports_only_passes(host, fake, executors, tmp_path, monkeypatch):
    monkeypatch.setattr(monthly, "_is_local_address", lambda address: False)
    host.settings.firewall_allow_tcp = (_free_port(),)
    _script(fake, scan=scan_output(listening=(), published=""))
    scan = _run(host, fake, executors, tmp_path)["Security scan"]
    assert scan.status == "ok" and scan.message == "no findings; 0 port(s) open from outside, all allowed", scan.message


WEAK = {**policy(SSH_GROUPS), "PasswordAuthentication": "yes", "Ciphers": "aes128-cbc,aes256-ctr"}


@pytest.mark.parametrize("kwargs,sim,expected", [
    ({}, SIM_SECURITY, "1 pending security update(s): libssl3"),
    ({"sshd": WEAK}, SIM_CLEAN, "sshd: PasswordAuthentication: in force 'yes', wanted 'no'"),
    ({"sshd": WEAK}, SIM_CLEAN, "Ciphers: in force 'aes128-cbc,aes256-ctr'"),
    ({"sshd": {**policy(SSH_GROUPS), "AllowGroups": "users"}}, SIM_CLEAN, "AllowGroups: in force 'users', wanted 'orderops-ssh'"),
    ({"tls10": True}, SIM_CLEAN, "TLS 1 accepted"),
    ({"tls12": False}, SIM_CLEAN, "TLS 1.2 refused"),
    ({"cert_days": 5}, SIM_CLEAN, "certificate expires in 5 days (< 21)"),
    ({"names": "DNS:other.test"}, SIM_CLEAN, "certificate names ['other.test'] do not cover order.test"),
    ({"image_days": 120}, SIM_CLEAN, "image(s) older than 90 days: orderops-nginx-1 (orderops-local/nginx:1.22-abc, 120 days)"),
    ({"extra_passwd": "mallory:x:1001:1001::/home/mallory:/bin/sh\n"}, SIM_CLEAN, "unexpected user(s): mallory (login shell /bin/sh)"),
    ({"sudoers": "/etc/sudoers.d/deploy:deploy ALL=(ALL) NOPASSWD:ALL\n/etc/sudoers.d/backdoor:svc ALL=(ALL) ALL"}, SIM_CLEAN,
     "unexpected user(s): svc (sudo: /etc/sudoers.d/backdoor)"),
])
def test_every_security_finding_fails_the_step_naming_it(host, fake, executors, tmp_path, kwargs, sim, expected):
    _script(fake, scan=scan_output(**kwargs), sim=sim)
    scan = _run(host, fake, executors, tmp_path)["Security scan"]
    assert scan.status == "failed" and expected in scan.message, scan.message
    assert scan.message.startswith("1 finding(s): ")


def test_root_shell_is_noted_not_a_finding(host, fake, executors, tmp_path):
    _script(fake)
    scan = _run(host, fake, executors, tmp_path)["Security scan"]
    users = {r[0]: r for r in next(t for t in scan.tables if t.title.startswith("users")).rows}
    assert users["root"][1:] == ["/bin/bash", True, "-", "root (noted)"]
    assert users["deploy"][3:] == ["group sudo, /etc/sudoers.d/deploy", "expected"]
    assert set(users) == {"root", "deploy"}  # nologin and sync accounts are not login users


@pytest.mark.parametrize("kwargs,params,expected", [
    ({"slow_ms": 301.5}, {}, "1 statement(s) slower than 100.0 ms on average: SELECT pg_sleep($1) (301.5 ms)"),
    ({"slow_ms": 30}, {"slow_query_ms": 20}, "slower than 20.0 ms"),
    ({"dead": 5000, "live": 5000}, {}, "bloat over 20%: public.orders (50% dead)"),
    ({"vacuumed_days": 45}, {}, "vacuum/analyse overdue: public.orders (not vacuumed or analysed in 30 days)"),
    ({"unused_bytes": 8 * 1024 * 1024}, {}, "unused index(es): public.ix_orders_customer"),
    ({"hit": 900, "read": 100}, {}, "cache hit ratio 90.0% < 95.0%"),
])
def test_every_database_finding_fails_the_step_with_its_table(host, fake, executors, tmp_path, kwargs, params, expected):
    _script(fake, db=db_output(**kwargs))
    db = _run(host, fake, executors, tmp_path, **params)["Database performance"]
    assert db.status == "failed" and expected in db.message, db.message
    assert len(db.tables) == 4


def test_small_unused_index_and_small_tables_are_listed_not_findings(host, fake, executors, tmp_path):
    _script(fake, db=db_output(unused_bytes=8192))  # alembic_version: never vacuumed, 1 row
    db = _run(host, fake, executors, tmp_path)["Database performance"]
    assert db.status == "ok", db.message
    assert next(t for t in db.tables if t.title.startswith("unused")).rows == [["public.ix_orders_customer", "orders", 8192]]


def test_missing_extension_is_a_skipped_part_not_a_crash(host, fake, executors, tmp_path):
    _script(fake, db=db_output(pss=False))
    db = _run(host, fake, executors, tmp_path)["Database performance"]
    assert db.status == "ok" and "(pg_stat_statements not installed: slow statements skipped)" in db.message
    assert db.data["slow"] is None and len(db.tables) == 3


def test_extension_not_preloaded_is_skipped_with_psql_s_words(host, fake, executors, tmp_path):
    text = db_output().split("#orderops:slow")[0] + "#orderops:slow\nERROR:  pg_stat_statements must be loaded via shared_preload_libraries\n"
    _script(fake, db=text)
    db = _run(host, fake, executors, tmp_path)["Database performance"]
    assert db.status == "ok" and "must be loaded via shared_preload_libraries" in db.message


def test_unreadable_statistics_fail(host, fake, executors, tmp_path):
    _script(fake, db=CommandResult(1, "", "service \"postgres\" is not running"))
    db = _run(host, fake, executors, tmp_path)["Database performance"]
    assert db.status == "failed" and 'reading pg_stat_* failed: service "postgres" is not running' in db.message


def test_a_scan_that_cannot_run_fails_with_its_error(host, fake, executors, tmp_path):
    _script(fake, scan=CommandResult(255, "", "ssh: connect to host 127.0.0.1 port 22: Connection refused"))
    scan = _run(host, fake, executors, tmp_path)["Security scan"]
    assert scan.status == "failed" and scan.message == ("the scan command printed nothing (rc 255): "
                                                        "ssh: connect to host 127.0.0.1 port 22: Connection refused")


def test_check_mode_runs_the_same_read_only_steps(host, fake, executors, tmp_path):
    _script(fake, db=db_output(slow_ms=500))
    st = _run(host, fake, executors, tmp_path, check=True)
    assert st["Database performance"].status == "failed" and st["Security scan"].status == "ok"
    rb = get_runbook("monthly")
    assert not any(s.changes or s.destructive for s in rb.steps)
    steps = [c for c in fake.commands() if "orderops-lock" not in c]
    assert len(steps) == 3 and not [c for c in steps if any(w in c for w in ("apt-get -y", "CREATE", "DROP", "rm "))]


def test_parsers():
    assert parse_listening("LISTEN 0 4096 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 511 [::]:443 [::]:*\nLISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*") == {22, 443, 53}
    assert parse_published("a\t0.0.0.0:9001->8000/tcp, :::9001->8000/tcp\nb\t127.0.0.1:7000-7001->7000-7001/tcp\nc\t53/udp") == {
        9001: "a", 7000: "b", 7001: "b"}
    cert = parse_certificate("subject=CN = order.test\nnotAfter=Dec  4 10:00:00 2027 GMT\nX509v3 Subject Alternative Name: \n"
                             "    DNS:order.test, DNS:*.order.test, IP Address:127.0.0.1\n")
    assert cert["subject"] == "CN = order.test" and cert["names"] == ["order.test", "*.order.test"]
    assert cert["not_after"] == datetime(2027, 12, 4, 10, tzinfo=timezone.utc)
    assert image_age_days("2026-01-01T00:00:00.5Z", datetime(2026, 3, 2, tzinfo=timezone.utc)) == 60
    assert image_age_days("2026-01-01T02:00:00+02:00", datetime(2026, 1, 2, 0, 0, 1, tzinfo=timezone.utc)) == 1
    with pytest.raises(ValueError, match="not a Docker time"):
        image_age_days("yesterday")
    users = parse_users("root:x:0:0::/root:/bin/bash\nops:x:1002:1002::/home/ops:/usr/sbin/nologin\n",
                        "sudo:x:27:\nadmin:x:115:ops\nwheel:x:10:ops", "/etc/sudoers.d/w:%wheel ALL=(ALL) ALL\n/etc/sudoers.d/x:Defaults env_reset")
    assert users == {"ops": {"shell": "/usr/sbin/nologin", "login": False, "sudo": ["group admin", "/etc/sudoers.d/w (%wheel)"]},
                     "root": {"shell": "/bin/bash", "login": True, "sudo": []}}


def test_probe_ports_states(listener):
    closed = _free_port()
    assert probe_ports("127.0.0.1", [listener, closed], timeout=0.5) == {listener: "open", closed: "closed"}
