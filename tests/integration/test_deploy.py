"""The main job end to end: bad input stops early, the deploy converges, the second run changes
nothing, the host lock holds off a concurrent run, and a daemon.json change restarts dockerd
with the stack coming back by itself.

Runs against whatever layout the harness started (1 host in both groups, or split).
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from deploys.contract.compose import COMPOSE_PROJECT, PROJECT_LABEL
from deploys.contract.paths import LOCK_FILE, STACK_DIR, STATE_DIR, StackLayout, local_state_dir
from deploys.contract.services import SERVICES
from tests.integration.conftest import ROOT, run_pyinfra, ssh

pytestmark = pytest.mark.integration

STACK = StackLayout(STACK_DIR)

RUNS: dict[str, object] = {}


def _secret_values() -> list[str]:
    state = local_state_dir()
    return list(json.loads((state / "secrets" / "local.json").read_text()).values())


def test_bad_inventory_stops_before_any_host_is_touched(inventory, tmp_path):
    inv = tmp_path / "bad_inventory.py"
    inv.write_text(
        "import runpy\n"
        f"ns = runpy.run_path({str(ROOT / 'inventories' / 'local.py')!r})\n"
        "from inventories.schema import check_inventory\n"
        "app = [(n, {**d, 'docker_log_max_size': '10 MB'}) for n, d in ns['app']]\n"
        "controller = [(n, {**d, 'docker_log_max_size': '10 MB'}) for n, d in ns['controller']]\n"
        "check_inventory({'app': app, 'controller': controller})\n",
    )
    name, data = inventory["app"][0]
    probe = f"sudo ls -la --time-style=+%s {STATE_DIR} /opt /etc/ssh/sshd_config.d 2>&1; sudo cat {LOCK_FILE} 2>&1"
    before = ssh(data, probe, check=False).stdout
    result = run_pyinfra(inventory=str(inv))
    assert result.returncode != 0
    assert f"orderops: inventory error: host {name!r}: docker_log_max_size" in result.output
    assert "Traceback" not in result.output
    assert "Connecting" not in result.output and "Starting operation" not in result.output
    after = ssh(data, probe, check=False).stdout
    assert after == before


def test_first_deploy_converges(inventory):
    result = run_pyinfra()
    RUNS["first"] = result
    assert result.returncode == 0, result.output[-4000:]
    assert result.totals["error"] == 0


def test_second_deploy_reports_zero_changes():
    result = run_pyinfra()
    RUNS["second"] = result
    assert result.returncode == 0
    totals = result.totals
    assert totals["success"] == 0, f"second run changed {totals['success']} operations:\n{result.output[-4000:]}"
    assert totals["error"] == 0 and totals["no_change"] > 0
    # the running version has two sources (inventory, release.json): the deploy names the one that won
    assert re.search(r"order service \S+ \(from (inventory|release\.json): ", result.output), result.output[-4000:]


#: issue 8 §4: remote commands (each one SSH exec with sudo) of a no-change converge, per host
MAX_REMOTE_COMMANDS = 40


def test_no_change_converge_round_trips():
    """A converged host costs at most MAX_REMOTE_COMMANDS remote commands per host (a count, not a
    timing: deterministic; deploys/facts/cache.py reads each fact once and file checks in batches)."""
    from benchmarks.remote_commands import count_remote_commands, top_commands

    result = run_pyinfra("--debug")
    RUNS["counted"] = result
    assert result.returncode == 0 and result.totals["success"] == 0, result.output[-4000:]
    counts = count_remote_commands(result.output)
    assert counts, "no remote command found in pyinfra --debug output (did its log line change?)"
    for name, count in counts.items():
        assert count <= MAX_REMOTE_COMMANDS, f"{name}: {count} remote commands; most repeated: {top_commands(result.output, name, 10)}"


def test_no_secret_in_deploy_output():
    assert RUNS, "deploy runs did not happen"
    for run in RUNS.values():
        for value in _secret_values():
            assert value not in run.output


def _admin_token(data: dict, ctx: ssl.SSLContext) -> str:
    """Bearer token of the seeded admin (``admin@<domain>``, password = the secrets file's
    ``admin_password``). The password goes into the form only; errors show the status alone."""
    from inventories.schema import load_secrets

    secrets_file = data.get("secrets_file")
    password = load_secrets(Path(secrets_file) if secrets_file else None)["admin_password"]
    form = urllib.parse.urlencode({"username": f"admin@{data['domain']}", "password": password}).encode()
    req = urllib.request.Request(f"{data['probe_https_url']}/api/login/access-token", data=form, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded", "Host": data["domain"]})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"admin login failed with HTTP {exc.code}") from None


def test_order_created_over_https(inventory):
    for name, data in inventory["app"]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed certificate of tls_mode 'self-signed'
        token = _admin_token(data, ctx)
        body = json.dumps({"customer": "integration", "currency": "EUR",
                           "lines": [{"sku": "SKU-1", "quantity": 3, "unit_price_minor": 199}]}).encode()
        req = urllib.request.Request(f"{data['probe_https_url']}/api/orders", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Host": data["domain"],
                                              "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            assert resp.status == 201
            order = json.loads(resp.read())
        assert order["total_minor"] == 597, name


def test_host_lock_blocks_a_concurrent_run(inventory):
    name, data = inventory["app"][0]
    expiry = int(time.time()) + 600
    ssh(data, f"echo 'other-run {expiry} mallory@elsewhere' | sudo tee {LOCK_FILE} >/dev/null")
    try:
        result = run_pyinfra()
        assert result.returncode != 0
        assert "locked by mallory@elsewhere (run other-run)" in result.output
    finally:
        ssh(data, f"sudo rm -f {LOCK_FILE}")


def test_daemon_json_change_restarts_dockerd_and_stack_comes_back(inventory):
    name, data = inventory["app"][0]
    started_before = ssh(data, "systemctl show docker -p ExecMainStartTimestampMonotonic --value").stdout.strip()
    changed = run_pyinfra("--data", "docker_log_max_file=4")
    assert changed.returncode == 0, changed.output[-4000:]
    started_after = ssh(data, "systemctl show docker -p ExecMainStartTimestampMonotonic --value").stdout.strip()
    assert started_after != started_before, "dockerd was not restarted"
    daemon = json.loads(ssh(data, "cat /etc/docker/daemon.json").stdout)
    assert daemon["log-opts"]["max-file"] == "4"
    # back to the inventory's value; the stack is healthy again and the run after that is clean
    assert run_pyinfra().returncode == 0
    final = run_pyinfra()
    assert final.totals["success"] == 0
    health = ssh(data, f"sudo docker ps --filter label={PROJECT_LABEL}={COMPOSE_PROJECT} --format '{{{{.Names}}}} {{{{.Status}}}}'").stdout
    assert health.count("(healthy)") == len(SERVICES), health


def test_ssh_key_login_still_works_and_passwords_are_off(inventory):
    for name, data in inventory["app"] + inventory["controller"]:
        out = ssh(data, "sudo sshd -T -C user=nobody,host=x,addr=127.0.0.1").stdout
        assert "passwordauthentication no" in out
        assert "permitrootlogin no" in out


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs an ssh client")
def test_controller_only_host_has_no_stack(inventory):
    app_names = {n for n, _ in inventory["app"]}
    only_controller = [(n, d) for n, d in inventory["controller"] if n not in app_names]
    if not only_controller:
        pytest.skip("single-host layout: the controller is also an app host")
    for name, data in only_controller:
        assert ssh(data, f"test -e {STACK.compose_file}", check=False).returncode != 0
        assert "Status: active" in ssh(data, "sudo ufw status").stdout
