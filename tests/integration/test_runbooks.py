"""Runbooks against the local test host: each runbook detects the fault it exists for, the run
directory holds all four reports with no secret in them, the deploy installed the timer on the
controller host, and a run from the controller host itself works.

Needs a deployed test host (the first test deploys when the runbook tooling is missing).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest

from deploys.contract.paths import (LOCK_FILE, LOCK_GUARD, RELEASE_FILE, RUNBOOK_DIR, STACK_DIR, STATE_DIR, RunbookLayout, StackLayout,
                                    local_state_dir)
from deploys.contract.services import SERVICES
from runbooks.library._capacity import append_sample, format_ts, read_samples, store_file
from tests.integration.apt_fault import DUMMY, GATE, dpkg_version, pending_security_update, reboot_flagged
from tests.integration.conftest import INVENTORY, ROOT, ssh
from tests.support.webhook import webhook_receiver

pytestmark = pytest.mark.integration

STACK, RUNBOOKS = StackLayout(STACK_DIR), RunbookLayout(RUNBOOK_DIR)

BAD_TAG = "broken-runbook-test"
#: the test host shares this machine's load (other test runs): thresholds other tests do not probe are relaxed
RELAXED = ["-p", "load_max_per_cpu=100", "-p", "memory_max_percent=100"]


def _secret_values() -> list[str]:
    state = local_state_dir()
    return list(json.loads((state / "secrets" / "local.json").read_text()).values())


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def runbook(*args: str, runs_dir: Path, **kw) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the CLI; returns the process and the run's result.json (the newest run)."""
    before = set(os.listdir(runs_dir))
    proc = subprocess.run([sys.executable, "-m", "runbooks", *args, "--runs-dir", str(runs_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=kw.get("timeout", 600), check=False)
    sys.stdout.write(proc.stdout[-5000:] + proc.stderr[-3000:])
    new = sorted(set(os.listdir(runs_dir)) - before)
    assert new, f"no run directory written:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    result = json.loads((runs_dir / new[-1] / "result.json").read_text())
    return proc, result


def step_result(result: dict, step: str, host: str) -> dict:
    return next(s for s in result["steps"] if s["name"] == step)["results"][host]


def test_daily_on_a_healthy_host_writes_four_reports(app_host, runs_dir):
    name, _ = app_host
    proc, result = runbook("run", "daily", "-i", INVENTORY, *RELAXED, runs_dir=runs_dir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert result["status"] == "ok" and result["schema_version"] == 2
    run_dir = runs_dir / result["run_id"]
    for f in ("events.jsonl", "result.json", "report.md", "report.ipynb"):
        assert (run_dir / f).stat().st_size > 0
    nbformat.validate(nbformat.read(str(run_dir / "report.ipynb"), as_version=4))
    assert step_result(result, "Configuration drift", name)["message"] == "no drift"
    assert "| Service status | ok |" in (run_dir / "report.md").read_text()


def test_daily_flags_a_crossed_disk_threshold_and_notifies(app_host, runs_dir, tmp_path):
    name, _ = app_host
    with webhook_receiver() as (url, received):
        proc, result = runbook("run", "daily", "-i", INVENTORY, "-p", "disk_max_percent=1", "-p", "drift=false",
                               "--textfile-dir", str(tmp_path / "textfile"), "--webhook-url", url, runs_dir=runs_dir)
    assert proc.returncode == 1
    usage = step_result(result, "Resource usage", name)
    assert usage["status"] == "failed" and "threshold crossed: disk /" in usage["message"]
    assert received and received[0]["runbook"] == "daily" and received[0]["status"] == "failed"
    assert any(f["step"] == "Resource usage" for f in received[0]["failures"])
    prom = (tmp_path / "textfile" / "orderops_runbook_daily.prom").read_text()
    assert 'orderops_runbook_last_run_success{runbook="daily"} 0.0' in prom


def test_daily_drift_check_flags_an_edited_managed_file(app_host, runs_dir):
    name, data = app_host
    ssh(data, f"echo '# edited by hand' | sudo tee -a {STACK.nginx_conf} >/dev/null")
    try:
        proc, result = runbook("run", "daily", "-i", INVENTORY, *RELAXED, runs_dir=runs_dir)
    finally:
        ssh(data, f"sudo sed -i '/^# edited by hand$/d' {STACK.nginx_conf}")
    assert proc.returncode == 1
    drift = step_result(result, "Configuration drift", name)
    assert drift["status"] == "failed", drift
    assert [op for op in drift["data"]["drift"] if op.startswith("order stack | nginx vhost")], drift["data"]["drift"]


def test_diagnose_collects_the_troubleshooting_report(app_host, runs_dir):
    name, _ = app_host
    proc, result = runbook("run", "diagnose", "-i", INVENTORY, runs_dir=runs_dir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert step_result(result, "Readiness", name)["data"]["http_status"] == "200"
    assert step_result(result, "PostgreSQL activity", name)["data"]["sessions"] >= 1
    services = {row[0] for row in step_result(result, "Compose status", name)["tables"][0]["rows"]}
    assert services == set(SERVICES)


def test_emergency_restart_check_mode_then_restart(app_host, runs_dir):
    name, data = app_host
    ssh(data, "sudo docker stop orderops-redis-1 >/dev/null")
    proc, result = runbook("run", "emergency-restart", "-i", INVENTORY, "--check", runs_dir=runs_dir)
    assert step_result(result, "Restart them", name)["message"] == "check mode: would restart redis"
    assert ssh(data, "sudo docker inspect -f '{{.State.Status}}' orderops-redis-1").stdout.strip() == "exited"
    proc, result = runbook("run", "emergency-restart", "-i", INVENTORY, runs_dir=runs_dir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert step_result(result, "Restart them", name)["status"] == "changed"
    assert step_result(result, "Wait for health", name)["message"] == "healthy again: redis"
    assert ssh(data, "sudo docker inspect -f '{{.State.Health.Status}}' orderops-redis-1").stdout.strip() == "healthy"


def test_busy_host_lock_stops_the_runbook_before_any_step(app_host, runs_dir):
    name, data = app_host
    ssh(data, f"echo \"other-run $(( $(date +%s) + 600 )) mallory@elsewhere\" | sudo tee {LOCK_FILE} >/dev/null")
    try:
        proc, result = runbook("run", "emergency-restart", "-i", INVENTORY, runs_dir=runs_dir)
    finally:
        ssh(data, f"sudo rm -f {LOCK_FILE}")
    assert proc.returncode == 1
    lock = step_result(result, "Take the host lock", name)
    assert lock["status"] == "failed" and "locked by mallory@elsewhere" in lock["message"]
    assert step_result(result, "Find unhealthy or stopped services", name)["status"] == "skipped"


def _processes_of_run(run_id: str) -> list[str]:
    """Command lines of this machine's processes started for ``run_id`` (ORDEROPS_RUN_ID in their environment)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"ORDEROPS_RUN_ID={run_id}".encode() in env:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return found


def test_a_step_timing_out_during_the_drift_check_kills_pyinfra_and_releases_the_lock(app_host, inventory, tmp_path):
    """The daily drift step with a timeout shorter than the dry run: the step fails as timed
    out, no pyinfra process of the run is left, and the host lock is released."""
    import time

    from runbooks.engine.model import Runbook, Step
    from runbooks.engine.runner import new_run_id, run
    from runbooks.engine.targets import load_inventory
    from runbooks.executors.ansible import AnsibleExecutor
    from runbooks.executors.local import LocalExecutor
    from runbooks.executors.pyinfra_exec import PyinfraExecutor
    from runbooks.library import daily

    name, data = app_host
    hosts = [h for h in load_inventory(ROOT / INVENTORY) if h.name == name]
    rb = Runbook("drift-timeout", "Drift with a short timeout", "", (
        Step("Configuration drift", daily.drift.func, executor="pyinfra", timeout=4),), params=daily.DailyParams)
    run_id = new_run_id(rb.name)
    seen_running = []

    def watch(event):  # a pyinfra of this run was running while the step ran
        if event["event"] == "step-start" and event["step"] == "Configuration drift":
            threading.Thread(target=lambda: (time.sleep(2.5), seen_running.append(_processes_of_run(run_id)))).start()

    with AnsibleExecutor() as remote, LocalExecutor() as local, \
            PyinfraExecutor(str(ROOT / INVENTORY), run_id=run_id, relock=remote) as deployer:
        result = run(rb, hosts, rb.params(drift=True), {"remote": remote, "local": local, "pyinfra": deployer},
                     runs_dir=tmp_path, run_id=run_id, on_event=watch)
    drift = next(s for s in result.steps if s.name == "Configuration drift").results[name]
    assert drift.status == "failed" and "timed out" in drift.message, drift.message
    assert seen_running and any("pyinfra" in c for c in seen_running[0]), "no pyinfra ran for the drift check"
    assert _processes_of_run(run_id) == [], "a process of the timed-out step is still running"
    unlock = next(s for s in result.steps if s.kind == "unlock").results[name]
    assert unlock.status == "ok", unlock.message
    assert ssh(data, f"sudo cat {LOCK_FILE} 2>/dev/null || true").stdout.strip() == "", "the host lock is still held"


@pytest.fixture(scope="module")
def bad_image():
    """A tiny image that cannot run the order service, on the controller's Docker (archive transport)."""
    ref = f"orderops/order-service:{BAD_TAG}"
    ctx = Path(__import__("tempfile").mkdtemp())
    (ctx / "marker").write_text("not an order service\n")
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY marker /marker\nCMD ["/no-such-order-service"]\n')
    subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], check=True, capture_output=True)
    yield ref
    subprocess.run(["docker", "rmi", ref], check=False, capture_output=True)


def test_emergency_redeploy_needs_approval_and_check_changes_nothing(app_host, runs_dir, bad_image):
    name, data = app_host
    proc, result = runbook("run", "emergency-redeploy", "-i", INVENTORY, "-p", f"version={BAD_TAG}", "--check", runs_dir=runs_dir)
    assert step_result(result, "Deploy the new version", name)["message"].startswith(f"check mode: would deploy {bad_image}")
    proc, result = runbook("run", "emergency-redeploy", "-i", INVENTORY, "-p", f"version={BAD_TAG}", runs_dir=runs_dir)
    assert "not approved" in step_result(result, "Deploy the new version", name)["message"]
    release = ssh(data, f"cat {RELEASE_FILE} 2>/dev/null || echo '{{}}'").stdout
    assert BAD_TAG not in json.loads(release).get("order_service", "")
    assert BAD_TAG not in ssh(data, f"cat {STACK.compose_file}").stdout


def test_emergency_redeploy_rolls_back_a_bad_version(app_host, runs_dir, bad_image, inventory):
    name, data = app_host
    proc, result = runbook("run", "emergency-redeploy", "-i", INVENTORY, "-p", f"version={BAD_TAG}",
                           "-p", "health_timeout=30", "--yes", runs_dir=runs_dir)
    assert proc.returncode == 1
    assert step_result(result, "Deploy the new version", name)["status"] == "failed"
    rollback = step_result(result, "Roll back if unhealthy", name)
    assert rollback["status"] == "changed", rollback
    assert rollback["data"]["schema_revision_before"] == rollback["data"]["schema_revision_after"]
    verify = step_result(result, "Verify", name)
    assert verify["status"] == "ok" and verify["data"]["running"] == data["images"]["order_service"]
    release = json.loads(ssh(data, f"cat {RELEASE_FILE}").stdout)
    assert release["order_service"] == data["images"]["order_service"]
    # the shared running version: a converge keeps it and the drift check sees nothing
    from runbooks.engine.targets import load_inventory
    from runbooks.executors.pyinfra_exec import PyinfraExecutor

    [host] = [h for h in load_inventory(ROOT / INVENTORY) if h.name == name]
    dry = PyinfraExecutor(str(ROOT / INVENTORY)).deploy(host, dry=True)  # --dry --json, without -y
    assert dry.ok and dry.changes == [], dry.output[-3000:]
    assert f"order service {release['order_service']} (from release.json: recorded by run " in dry.output, dry.output[-3000:]
    # the daily report states the recorded release
    proc, daily = runbook("run", "daily", "-i", INVENTORY, *RELAXED, runs_dir=runs_dir)
    assert step_result(daily, "Running release", name)["data"]["recorded"]["order_service"] == release["order_service"]


STRAY_PORT = 9002
WEAK_SSHD = "/etc/ssh/sshd_config.d/00-aaa-monthly-test.conf"
#: the bloated table: 5000 rows inserted, 4000 deleted with autovacuum off for it (80 % dead tuples)
BLOATED = "monthly_bloat_probe"
#: marks the time a monthly run starts: files of the host changed after it are listed
SINCE = "/var/tmp/orderops-monthly-since"


def _order_db(sql: str) -> str:
    """``psql`` on the order database in the postgres container, as the order service's user (a shell command)."""
    from deploys.contract.compose import COMPOSE_PROJECT, compose_command
    from deploys.contract.services import DB_NAME, DB_USER

    return "sudo " + compose_command(COMPOSE_PROJECT, STACK_DIR, "exec", "-T", "postgres", "psql", "-X", "-U", DB_USER,
                                     "-d", DB_NAME, "-v", "ON_ERROR_STOP=1", "-qtAc", sql)


@pytest.fixture
def monthly_faults(app_host):
    """Four faults on the app host, removed afterwards: a slow statement (``pg_sleep(0.3)`` three
    times as the order service's database user), a bloated table (``BLOATED``: autovacuum off for
    it, 4000 of its 5000 rows deleted: 80 % dead tuples, over ``bloat_max_ratio`` 0.2 and
    ``bloat_min_dead`` 1000), a container listening on a port the allowlist lacks with the port
    opened in ufw by hand (a host-network container: reachable from outside), and a weak sshd
    drop-in read before orderops' own (``sshd -T`` shows it; sshd is not reloaded)."""
    name, data = app_host
    ssh(data, f"for i in 1 2 3; do {_order_db('SELECT pg_sleep(0.3)')} >/dev/null; done")
    ssh(data, _order_db(f"DROP TABLE IF EXISTS {BLOATED}; CREATE TABLE {BLOATED} (id int PRIMARY KEY, note text) "
                        "WITH (autovacuum_enabled = false); "
                        f"INSERT INTO {BLOATED} SELECT i, repeat('x', 100) FROM generate_series(1, 5000) i; "
                        f"DELETE FROM {BLOATED} WHERE id > 1000"))
    image = data["images"]["order_service"]
    ssh(data, "sudo docker rm -f orderops-monthly-stray >/dev/null 2>&1; "
              f"sudo docker run -d --name orderops-monthly-stray --network host --entrypoint python3 {image} "
              f"-m http.server {STRAY_PORT} >/dev/null && sudo ufw allow {STRAY_PORT}/tcp >/dev/null")
    ssh(data, f"printf 'PasswordAuthentication yes\\n' | sudo tee {WEAK_SSHD} >/dev/null")
    try:
        yield name, data
    finally:
        ssh(data, f"sudo rm -f {WEAK_SSHD} {SINCE}; sudo docker rm -f orderops-monthly-stray; "
                  f"sudo ufw delete allow {STRAY_PORT}/tcp; {_order_db(f'DROP TABLE IF EXISTS {BLOATED}')}", check=False)


def _host_state(data: dict) -> dict[str, str]:
    """What a read-only runbook must leave as it was, by part: packages, firewall, sshd in force,
    containers (ID, start time, restarts), images, volumes, units, the order database's schema and
    row counts, and the host's files changed since ``SINCE`` (``/etc``, ``/opt``, ``/usr``,
    ``/var/lib/orderops``, ``/home``, ``/root``; touch ``SINCE`` before the run)."""
    parts = {
        "packages": "dpkg-query -W -f '${Package} ${Version}\\n'",
        "firewall": "sudo ufw status verbose",
        "sshd": "sudo sshd -T | sort",
        "containers": "sudo docker ps -aq | sort | xargs -r sudo docker inspect -f "
                      "'{{.Name}} {{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}'",
        "images": "sudo docker images -a -q --no-trunc | sort",
        "volumes": "sudo docker volume ls -q | sort",
        "units": "systemctl list-units --all --no-legend --plain --type=service,timer | awk '{print $1, $3, $4}' | sort",
        "database": _order_db("SELECT string_agg(c.relname || ' ' || c.relkind, ',' ORDER BY c.relname) FROM pg_class c "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'") + "; "
                    + _order_db(f"SELECT count(*) FROM {BLOATED}"),
        "files": f"sudo find /etc /opt /usr /var/lib/orderops /home /root -xdev -newer {SINCE} -print 2>/dev/null | sort",
    }
    state = {k: ssh(data, v).stdout for k, v in parts.items()}
    home = f"/home/{data['ssh_user']}"
    state["files"] = "".join(line + "\n" for line in state["files"].splitlines() if line not in _runbook_own(home))
    return state


def _runbook_own(home: str) -> set[str]:
    """What every runbook run touches and owns on a host: the host lock (taken and released, its
    directory's mtime) and Ansible's remote temporary directory (``~/.ansible/tmp``, emptied after
    each command, and the home directory's mtime when it is created)."""
    return {STATE_DIR, LOCK_FILE, LOCK_GUARD, home, f"{home}/.ansible", f"{home}/.ansible/tmp"}


def _monthly_read_only(data: dict, *args: str, runs_dir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """A monthly run that must change nothing on the host (``_host_state`` before and after)."""
    ssh(data, f"sudo touch {SINCE}")
    before = _host_state(data)
    assert before["files"] == "", before["files"]
    proc, result = runbook("run", "monthly", "-i", INVENTORY, *args, runs_dir=runs_dir)
    after = _host_state(data)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"the monthly run {args} changed the host: {changed}"
    return proc, result


def test_monthly_names_each_fault_and_changes_nothing(monthly_faults, inventory, runs_dir):
    """The slow query, the bloated table, the stray port and the weak sshd setting are reported;
    the monthly steps are read-only: neither a ``--check`` nor a normal run changes the host."""
    name, data = monthly_faults
    for args in (["--check"], []):
        proc, result = _monthly_read_only(data, *args, runs_dir=runs_dir)
        assert proc.returncode == 1, proc.stdout[-3000:]
        db = step_result(result, "Database performance", name)
        assert db["status"] == "failed" and f"bloat over 20%: public.{BLOATED} (80% dead)" in db["message"], db["message"]
    assert f"public.{BLOATED} (80% dead)" in db["data"]["bloated"], db["data"]
    rows = next(t for t in db["tables"] if t["title"].startswith("tables: dead tuples"))["rows"]
    assert [r[:3] for r in rows if r[0] == f"public.{BLOATED}"] == [[f"public.{BLOATED}", 1000, 4000]], rows
    scan = step_result(result, "Security scan", name)
    assert scan["status"] == "failed" and "sshd: PasswordAuthentication: in force 'yes', wanted 'no'" in scan["message"], scan["message"]
    ports = scan["data"]["ports"]
    assert STRAY_PORT in ports["candidates" if not ports["probed"] else "open"], ports
    if name in [n for n, _ in inventory["controller"]]:  # single layout: the runbook runs on the host
        assert not ports["probed"] and ports["reason"].startswith("no outside vantage point"), ports
        assert "reachable from outside" not in scan["message"]
    else:  # split layout: this machine probes the app host over the test network
        assert f"reachable from outside, not in firewall_allow_tcp: {STRAY_PORT}" in scan["message"], scan["message"]
        assert sorted(set(ports["open"]) - {STRAY_PORT}) == [22, 80, 443], ports
    tls = scan["data"]["tls"]
    assert tls["accepted"] == {"tls1": False, "tls1_1": False, "tls1_2": True, "tls1_3": True} and "order.test" in tls["names"]
    assert "SELECT pg_sleep($1)" in db["message"], db["message"]
    assert any(q["query"] == "SELECT pg_sleep($1)" and float(q["mean_ms"]) >= 300 for q in db["data"]["slow"])
    report = (runs_dir / result["run_id"] / "report.md").read_text()
    assert "sshd -T against the hardening policy" in report and "slowest statements" in report
    assert f"public.{BLOATED}" in report


CHATTY = "orderops-weekly-chatty"
DANGLING_REPO = "orderops-weekly-dangling:test"


@pytest.fixture
def weekly_faults(app_host, tmp_path):
    """The weekly runbook's three faults on the app host, everything restored afterwards:

    - a pending security update that asks for a reboot (``tests/integration/apt_fault.py``:
      ``DUMMY`` 1.0 installed, 1.1 in a local ``file://`` repository under a ``-security`` suite,
      the real mirror off for the test)
    - a container log past ``docker_log_max_size`` (10m): a container whose own ``--log-opt
      max-size=1g`` let it escape the daemon's rotation, writing about 11 MiB
    - a dangling image: ``docker import`` twice under one tag (the first loses it)

    Yields ``(name, data, {"log": path, "dangling": image id})``."""
    name, data = app_host
    image, first = data["images"]["order_service"], ""
    with pending_security_update(data, tmp_path):
        try:
            ssh(data, f"sudo docker rm -f {CHATTY} >/dev/null 2>&1; sudo docker run -d --name {CHATTY} --log-opt max-size=1g "
                      f"--entrypoint python3 {image} -c \"import sys; sys.stdout.write(('x' * 8000 + chr(10)) * 1400)\" >/dev/null "
                      f"&& sudo docker wait {CHATTY} >/dev/null")
            log = ssh(data, f"sudo docker inspect -f '{{{{.LogPath}}}}' {CHATTY}").stdout.strip()
            first = ssh(data, f"tar -C /etc -cf - hostname | sudo docker import -m one - {DANGLING_REPO}").stdout.strip()
            ssh(data, f"tar -C /etc -cf - hostname | sudo docker import -m two - {DANGLING_REPO} >/dev/null")
            assert ssh(data, f"sudo docker images -q --no-trunc -f dangling=true").stdout.split().count(first) == 1
            yield name, data, {"log": log, "dangling": first}
        finally:
            ssh(data, f"sudo docker rm -f {CHATTY}; sudo docker rmi -f {DANGLING_REPO} {first}", check=False)


#: alertname of the alerts the weekly test posts to Alertmanager (v2 API) while the host is silenced
PROBE_ALERT = "OrderopsSilenceProbe"


def _alertmanager_url(data: dict) -> str:
    from deploys.contract.monitoring import SERVICE_PORTS

    port = data.get("monitoring", {}).get("loopback_ports", {}).get("alertmanager", SERVICE_PORTS["alertmanager"])
    return f"http://127.0.0.1:{port}"


def _probe_alert(data: dict, host: str, resolved: bool = False) -> None:
    """Post ``PROBE_ALERT`` with label ``host`` to the host's Alertmanager (``POST /api/v2/alerts``,
    as Prometheus does); ``resolved``: with ``endsAt`` now, which ends it."""
    from datetime import datetime, timezone

    alert = {"labels": {"alertname": PROBE_ALERT, "host": host, "severity": "warning"},
             "annotations": {"summary": "posted by the weekly runbook test"}}
    if resolved:
        alert["endsAt"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    ssh(data, f"printf '%s' {shlex.quote(json.dumps([alert]))} | curl -fsS -m 20 -X POST -H 'Content-Type: application/json' "
              f"--data-binary @- {_alertmanager_url(data)}/api/v2/alerts >/dev/null")


def _probe_alerts(items: list[dict], host: str) -> list[dict]:
    """Firing ``PROBE_ALERT`` alerts of ``host`` in the webhook bodies the alert sink received."""
    return [a for item in items if item["kind"] == "webhook" for a in item["body"].get("alerts", [])
            if a["labels"].get("alertname") == PROBE_ALERT and a["labels"].get("host") == host and a["status"] == "firing"]


def _wait_for(what: str, check, timeout: float, interval: float = 1.0):
    import time

    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
    return got


def _muted_while_the_update_runs(data: dict, name: str, sink) -> str:
    """Inside the weekly run's maintenance window (its update held at ``GATE``): the run's silence
    is active, an alert of ``name`` posted then is silenced by it and does not reach the webhook,
    while an alert of another host posted after it does (same route, same group_wait: the
    pipeline delivers). Returns the silence's ID."""
    from runbooks.library.weekly import SILENCE_CREATOR

    _wait_for("the weekly update held in its postinst", lambda: ssh(data, f"test -e {GATE}.entered", check=False).returncode == 0,
              300)
    silences = json.loads(ssh(data, f"curl -fsS {_alertmanager_url(data)}/api/v2/silences").stdout)
    [active] = [x for x in silences if x["createdBy"] == SILENCE_CREATOR and x["status"]["state"] == "active"]
    assert active["matchers"] == [{"name": "host", "value": name, "isRegex": False, "isEqual": True}], active
    _probe_alert(data, name)
    _probe_alert(data, f"{name}-elsewhere")
    _wait_for("the other host's probe alert at the webhook", lambda: _probe_alerts(sink(), f"{name}-elsewhere"), 60)
    alerts = json.loads(ssh(data, f"curl -fsS -G --data-urlencode 'filter=alertname=\"{PROBE_ALERT}\"' "
                                  f"{_alertmanager_url(data)}/api/v2/alerts").stdout)
    mine = [a for a in alerts if a["labels"]["host"] == name]
    assert [a["status"]["silencedBy"] for a in mine] == [[active["id"]]], alerts
    assert _probe_alerts(sink(), name) == [], "the silenced host's alert reached the webhook"
    return active["id"]


def _container_started(data: dict) -> str:
    """When the test host's container (its PID 1, systemd) last started: a reboot of it changes this."""
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", data["testhost_container"]],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_weekly_reports_each_fault_under_check_and_fixes_what_it_owns_with_yes(weekly_faults, inventory, runs_dir, request):
    """``--check``: the security update, the oversized log and the dangling image are reported and
    nothing changes. ``--yes -p reboot=true``: the update is installed (its postinst asks for a
    reboot), the dangling image is gone, journald is vacuumed, the stack stays healthy, the
    oversized log is still reported (dockerd owns it), and the host, the controller in the single
    layout, is not rebooted: the reboot is deferred and the reason reported. With the monitoring
    stack on the host, the update runs inside an Alertmanager silence of the host: held in its
    postinst (``GATE``), an alert of the host does not reach the webhook while an alert of another
    host does; once the silence is expired the host's alert is notified."""
    from deploys.contract.compose import COMPOSE_PROJECT, containers_command, parse_containers

    name, data, fault = weekly_faults
    controller = name in [n for n, _ in inventory["controller"]]
    proc, result = runbook("run", "weekly", "-i", INVENTORY, "--check", runs_dir=runs_dir)
    assert proc.returncode == 1, proc.stdout[-3000:]  # the oversized log fails Log cleanup
    pending = step_result(result, "Pending updates", name)
    assert pending["status"] == "ok" and DUMMY in pending["data"]["security"] and not pending["data"]["reboot_required"], pending
    apply = step_result(result, "Apply updates", name)
    assert apply["status"] == "skipped" and DUMMY in apply["data"]["would_upgrade"], apply
    logs = step_result(result, "Log cleanup", name)
    assert logs["status"] == "failed" and fault["log"] in logs["data"]["oversized_logs"], logs
    assert logs["message"].startswith("check mode: would vacuum journald"), logs["message"]
    hygiene = step_result(result, "Docker hygiene", name)
    assert hygiene["status"] == "skipped" and fault["dangling"] in hygiene["data"]["dangling"], hygiene
    # nothing changed
    assert dpkg_version(data) == "1.0"
    assert ssh(data, f"sudo docker image inspect -f ok {fault['dangling']}").stdout.strip() == "ok"
    assert not reboot_flagged(data)

    started = _container_started(data)
    reboot = ["-p", "reboot=true"] if controller else []  # never reboot a local test host without a restart policy
    monitored = name in [n for n, _ in inventory["monitoring"]]
    sink = request.getfixturevalue("sink") if monitored else None
    if monitored:
        ssh(data, f"sudo touch {GATE}")  # the update waits in its postinst: inside the maintenance window
    done: dict = {}
    run = threading.Thread(target=lambda: done.update(zip(("proc", "result"), runbook(
        "run", "weekly", "-i", INVENTORY, "--yes", *reboot, runs_dir=runs_dir))))
    run.start()
    try:
        muted = _muted_while_the_update_runs(data, name, sink) if monitored else None
    finally:
        ssh(data, f"sudo rm -f {GATE}", check=False)
        run.join(timeout=900)
    proc, result = done["proc"], done["result"]
    assert proc.returncode == 1, proc.stdout[-3000:]  # the oversized log is still reported
    apply = step_result(result, "Apply updates", name)
    assert apply["status"] == "changed" and DUMMY in apply["data"]["upgraded"], apply
    assert apply["data"]["reboot_required"] and apply["data"]["reboot"] == "deferred", apply
    wanted = f"{name} is the controller host, the runbook runs on it" if controller else "reboot=false"
    assert apply["data"]["reboot_deferred"] == wanted and "stack healthy; reboot required: deferred" in apply["message"], apply
    assert dpkg_version(data) == "1.1"
    assert ssh(data, "cat /var/run/reboot-required.pkgs").stdout.split() == [DUMMY]
    assert _container_started(data) == started, "the host was rebooted"
    hygiene = step_result(result, "Docker hygiene", name)
    assert hygiene["status"] == "changed" and fault["dangling"] in hygiene["data"]["dangling"], hygiene
    assert ssh(data, f"sudo docker image inspect {fault['dangling']}", check=False).returncode != 0, "dangling image still there"
    logs = step_result(result, "Log cleanup", name)
    assert logs["status"] == "failed" and logs["message"].startswith("journald vacuumed: "), logs
    assert "container log(s) past" in logs["message"] and fault["log"] in logs["data"]["oversized_logs"]
    states = parse_containers(ssh(data, f"sudo sh -c {shlex.quote(containers_command(COMPOSE_PROJECT))}").stdout.splitlines())
    assert {c.service for c in states if c.up} >= set(SERVICES), [(c.service, c.status, c.health) for c in states]
    report = (runs_dir / result["run_id"] / "report.md").read_text()
    assert "container logs past docker_log_max_size" in report and "reboot required: deferred" in report
    if monitored:  # the update ran inside a silence of the host's alerts, ended after it
        from runbooks.library.weekly import SILENCE_CREATOR

        silence = apply["data"]["silence"]
        assert silence["expired"] is True, silence
        got = json.loads(ssh(data, f"curl -fsS {_alertmanager_url(data)}/api/v2/silence/{silence['id']}").stdout)
        assert got["status"]["state"] == "expired" and got["createdBy"] == SILENCE_CREATOR, got
        assert got["matchers"] == [{"name": "host", "value": name, "isRegex": False, "isEqual": True}], got
        assert result["run_id"] in got["comment"] and got["id"] == muted
        try:  # the silence is over: the host's alert, muted until now, reaches the webhook
            _wait_for("the host's probe alert at the webhook after the silence", lambda: _probe_alerts(sink(), name), 60)
        finally:
            _probe_alert(data, name, resolved=True)
            _probe_alert(data, f"{name}-elsewhere", resolved=True)


def test_timer_installed_by_the_deploy(inventory):
    for name, data in inventory["controller"]:
        timers = ssh(data, "systemctl list-timers --all --no-pager").stdout
        assert "orderops-runbook-daily.timer" in timers, timers
        unit = ssh(data, "systemctl cat orderops-runbook-daily.timer").stdout
        assert "Persistent=true" in unit and "OnCalendar=*-*-* 06:00:00" in unit
        assert ssh(data, "systemctl is-enabled orderops-runbook-daily.timer").stdout.strip() == "enabled"
        weekly = ssh(data, "systemctl cat orderops-runbook-weekly.timer").stdout
        assert "Persistent=true" in weekly and "OnCalendar=Sun *-*-* 04:00:00" in weekly
        assert ssh(data, "systemctl is-enabled orderops-runbook-weekly.timer").stdout.strip() == "enabled"
        monthly = ssh(data, "systemctl cat orderops-runbook-monthly.timer").stdout
        assert "Persistent=true" in monthly and "OnCalendar=Sun *-*-01..07 05:00:00" in monthly


def test_scheduled_run_from_the_controller_host(app_host, inventory):
    name, data = inventory["controller"][0]
    ssh(data, f"sudo mkdir -p /etc/systemd/system/orderops-runbook-daily.service.d && printf '[Service]\\nExecStart=\\nExecStart={RUNBOOKS.runbook_cli} run daily -i {RUNBOOKS.inventory} --textfile-dir /var/lib/prometheus/node-exporter -p load_max_per_cpu=100 -p memory_max_percent=100\\n' | sudo tee /etc/systemd/system/orderops-runbook-daily.service.d/test.conf >/dev/null && sudo systemctl daemon-reload")
    try:
        ssh(data, "sudo systemctl start orderops-runbook-daily.service", check=False)
    finally:
        ssh(data, "sudo rm -rf /etc/systemd/system/orderops-runbook-daily.service.d && sudo systemctl daemon-reload")
    latest = ssh(data, f"sudo sh -c 'ls -1d {RUNBOOKS.state_dir}/runs/*daily* | tail -n1'").stdout.strip()
    result = json.loads(ssh(data, f"sudo cat {latest}/result.json").stdout)
    bad = {s["name"]: {h: (r["status"], r["message"]) for h, r in s["results"].items() if r["status"] != "ok"}
           for s in result["steps"]}
    assert result["status"] == "ok", {k: v for k, v in bad.items() if v}
    assert result["hosts"] == [n for n, _ in inventory["app"]]
    prom = ssh(data, "cat /var/lib/prometheus/node-exporter/orderops_runbook_daily.prom").stdout
    assert 'orderops_runbook_last_run_success{runbook="daily"} 1' in prom
    everything = ssh(data, f"sudo cat {latest}/events.jsonl {latest}/result.json {latest}/report.md {latest}/report.ipynb").stdout
    for value in _secret_values():
        assert value not in everything


def test_capacity_forecast_of_a_disk_filling_at_a_steady_rate(app_host, runs_dir, tmp_path):
    """Two daily runs leave two samples per host in the store (beside the runs, not in them); ten
    earlier samples of a steady fill (20 days left at the first real sample) are written before
    them, a real file grows on the host, then the capacity runbook samples again and forecasts:
    disk / full in about 20 days, under the 30-day warning, with the plot attached."""
    name, data = app_host
    store = tmp_path / "capacity"
    for _ in range(2):
        proc, result = runbook("run", "daily", "-i", INVENTORY, *RELAXED, "-p", "drift=false", "-p",
                               f"capacity_dir={store}", runs_dir=runs_dir)
        assert step_result(result, "Capacity sample", name)["status"] == "ok", step_result(result, "Capacity sample", name)
    path = store_file(store, name)
    samples, bad = read_samples(path)
    assert len(samples) == 2 and bad == []
    first = samples[0]
    assert first["db_bytes"] > 0 and first["redis_max"] == 256 * 1024 ** 2 and first["root_used"] > 0
    rate = first["root_avail"] / 20  # bytes a day: full 20 days after the first real sample
    for day in range(10, 0, -1):
        grown = rate * day
        append_sample(path, {**{k: v for k, v in first.items() if not k.startswith("_")},
                             "ts": format_ts(first["_at"] - timedelta(days=day)), "run_id": f"synthetic-{day}",
                             "root_used": int(first["root_used"] - grown), "root_avail": int(first["root_avail"] + grown),
                             "docker_used": int(first["docker_used"] - grown),
                             "docker_avail": int(first["docker_avail"] + grown)})
    probe = "/var/tmp/orderops-capacity-probe"
    ssh(data, f"sudo dd if=/dev/zero of={probe} bs=1M count=256 status=none && sync")
    try:
        proc, result = runbook("run", "capacity", "-i", INVENTORY, "-p", f"capacity_dir={store}", runs_dir=runs_dir)
    finally:
        ssh(data, f"sudo rm -f {probe}")
    assert proc.returncode == 1, proc.stdout[-3000:]  # the forecast fails: full within capacity_warn_days (30)
    assert step_result(result, "Capacity sample", name)["status"] == "ok"
    fc = step_result(result, "Capacity forecast", name)
    assert fc["status"] == "failed" and fc["message"].startswith("disk / full in "), fc["message"]
    disk = fc["data"]["metrics"]["disk /"]
    assert disk["samples"] == 13 and 18 <= disk["days_until_full"] <= 21, disk  # others' writes on this disk: +-1 day
    points = next(t for t in fc["tables"] if t["title"] == "data points (MiB)")
    assert len(points["rows"]) == 13
    run_dir = runs_dir / result["run_id"]
    png = run_dir / f"capacity-{name}.png"
    assert fc["files"] == [png.name] and png.read_bytes().startswith(b"\x89PNG")
    assert f"[{png.name}]({png.name})" in (run_dir / "report.md").read_text()
    nb = nbformat.read(str(run_dir / "report.ipynb"), as_version=4)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert len(read_samples(path)[0]) == 13 and not (runs_dir / "capacity").exists()


def test_no_secret_in_any_report(runs_dir):
    files = [p for p in runs_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"events.jsonl", "result.json", "report.md", "report.ipynb"}
    for p in files:  # bytes: a run directory also holds attachments (the capacity forecast's PNG)
        content = p.read_bytes()
        for value in _secret_values():
            assert value.encode() not in content, f"{p} leaks a secret"
