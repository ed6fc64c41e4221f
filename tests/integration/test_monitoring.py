"""The monitoring stack live on the local test host (after tests/integration/test_deploy.py converged it).

* an alert end to end: the order service's container stops, ``TargetDown`` reaches a webhook
  receiver and an SMTP sink (images/alert-sink, real aiosmtpd) within two minutes, and both get the
  resolution after it is back (scrape, ``for:`` and group intervals: the test inventory's);
* a log line written through the API (a request with a unique ``X-Request-ID``) is found in Loki by
  its ``host``/``project``/``service`` labels;
* Grafana lists its provisioned dashboards and datasources with the inventory password (on the
  loopback port and through nginx under ``/grafana/`` over HTTPS); ``admin/admin`` is refused; a
  password changed inside Grafana's existing database is set back by the next deploy, which also
  puts back a hand-edited rules file and reloads Prometheus through ``/-/reload`` (no restart).

Stand-ins: Loki, Alloy and Grafana are the stand-ins of images/monitoring-standins (README there);
Prometheus, Alertmanager and the exporters are the real programs from Debian's packages.
"""

from __future__ import annotations

import base64
import json
import shlex
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploys.contract.compose import compose_command
from deploys.contract.monitoring import MonitoringLayout
from inventories.schema import load_secrets
from tests.integration.conftest import run_pyinfra, ssh, ssh_argv, wait_until as _wait

pytestmark = pytest.mark.integration


def _ssh_input(data: dict, command: str, stdin: bytes, timeout: int = 300) -> subprocess.CompletedProcess:
    """``command`` on the host with ``stdin`` (secrets travel here, never in the command line)."""
    return subprocess.run(
        ssh_argv(data, command), input=stdin, capture_output=True, timeout=timeout, check=False)


def _grafana_password(data: dict) -> str:
    return load_secrets(Path(data["secrets_file"]))["grafana_admin_password"]


def _grafana_get(data: dict, settings, path: str, user: str, password: str) -> tuple[int, str]:
    """``GET`` Grafana's API on the host's loopback as ``user`` (credentials on curl's stdin)."""
    m = settings.monitoring
    base = f"http://127.0.0.1:{m.loopback_ports['grafana']}" + ("/grafana" if m.grafana_public else "")
    config = f'user = "{user}:{password}"\n'.encode()
    out = _ssh_input(data, f"curl -s -K - -w '\\n%{{http_code}}' {shlex.quote(base + path)}", config).stdout.decode()
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def _target_down(items: list[dict], status: str, kind: str) -> list[dict]:
    """Items of ``kind`` announcing ``TargetDown`` of the order service with ``status`` (firing/resolved)."""
    out = []
    for item in items:
        if item["kind"] != kind:
            continue
        if kind == "webhook":
            alerts = [a for a in item["body"].get("alerts", []) if a["labels"].get("alertname") == "TargetDown"
                      and a["labels"].get("job") == "order-service" and a["status"] == status]
            if alerts:
                out.append(item)
        elif "TargetDown" in item["subject"] and item["subject"].startswith(f"[{status.upper()}"):
            out.append(item)
    return out


def test_order_service_down_alerts_by_webhook_and_mail_then_resolves(mon, sink, inventory):
    """Stand-ins: none on this path (Prometheus, Alertmanager real; the sink is a test receiver)."""
    name, data, settings = mon
    api = compose_command(settings.compose_project, settings.stack_dir, "stop", "api")
    started = time.monotonic()
    ssh(data, f"sudo {api}")
    try:
        _wait("TargetDown firing at the webhook", lambda: _target_down(sink(), "firing", "webhook"), 120)
        _wait("TargetDown firing by e-mail", lambda: _target_down(sink(), "firing", "smtp"), 120 - (time.monotonic() - started))
        mail = _target_down(sink(), "firing", "smtp")[0]
        assert mail["to"] == list(settings.monitoring.smtp.to) and mail["from"] == settings.monitoring.smtp.sender
    finally:
        ssh(data, "sudo " + compose_command(settings.compose_project, settings.stack_dir, "up", "-d", "--wait", "api"))
    back = time.monotonic()
    _wait("TargetDown resolved at the webhook", lambda: _target_down(sink(), "resolved", "webhook"), 120)
    _wait("TargetDown resolved by e-mail", lambda: _target_down(sink(), "resolved", "smtp"), 120 - (time.monotonic() - back))


def test_a_log_line_written_through_the_api_is_in_loki_by_label(mon):
    """Stand-ins: Alloy ships the container logs, Loki stores and queries them (images/monitoring-standins)."""
    name, data, settings = mon
    marker = str(uuid.uuid4())
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # self-signed local certificate
    req = urllib.request.Request(f"{data['probe_https_url']}/api/health",
                                 headers={"Host": data["domain"], "X-Request-ID": marker})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        assert resp.status == 200
    query = f'{{host="{name}", project="{settings.compose_project}", service="api"}} |= "{marker}"'
    url = (f"http://127.0.0.1:{settings.monitoring.loopback_ports['loki']}/loki/api/v1/query_range?"
           + urllib.parse.urlencode({"query": query, "limit": 10, "start": int((time.time() - 600) * 1e9)}))

    def found():
        out = ssh(data, f"curl -fsS {shlex.quote(url)}", check=False).stdout
        streams = json.loads(out)["data"]["result"] if out.strip() else []
        return [line for s in streams for _, line in s["values"] if marker in line]

    lines = _wait("the request's log line in Loki", found, 60)
    assert len(lines) == 1


def test_grafana_lists_provisioned_dashboards_and_datasources_with_the_inventory_password(mon):
    """Stand-in: Grafana (images/monitoring-standins/standins/grafana.py)."""
    from templates.monitoring.grafana.dashboards import DASHBOARDS

    name, data, settings = mon
    password = _grafana_password(data)
    code, body = _grafana_get(data, settings, "/api/search", "admin", password)
    assert code == 200
    assert {d["uid"] for d in json.loads(body)} >= set(DASHBOARDS)
    code, body = _grafana_get(data, settings, "/api/datasources", "admin", password)
    assert code == 200 and {d["name"] for d in json.loads(body)} == {"Prometheus", "Loki", "Alertmanager"}
    assert _grafana_get(data, settings, "/api/search", "admin", "admin")[0] == 401
    assert _grafana_get(data, settings, "/api/search", "", "")[0] == 401  # anonymous access is off


def test_grafana_through_nginx_over_https_only(mon):
    """Stand-in: Grafana. nginx is the stack's nginx (Debian's package in its stand-in image)."""
    name, data, settings = mon
    if not settings.monitoring.grafana_public:
        pytest.skip("monitoring.grafana_public is off in this inventory")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE

    def get(base: str, auth: str | None) -> int:
        headers = {"Host": data["domain"]}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        req = urllib.request.Request(f"{base}/grafana/api/search", headers=headers)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert get(data["probe_https_url"], f"admin:{_grafana_password(data)}") == 200
    assert get(data["probe_https_url"], "admin:admin") == 401
    assert get(data["probe_https_url"], None) == 401

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    req = urllib.request.Request(f"{data['probe_http_url']}/grafana/api/search", headers={"Host": data["domain"]})
    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(NoRedirect).open(req, timeout=30)
    assert redirect.value.code == 301 and redirect.value.headers["Location"].startswith("https://")


def test_deploy_resets_grafana_password_and_reloads_prometheus_without_restart(mon):
    """Stand-in: Grafana keeps the password of its existing database and ignores
    GF_SECURITY_ADMIN_PASSWORD, as real Grafana does; only the deploy's reset brings it back."""
    name, data, settings = mon
    m = settings.monitoring
    layout = MonitoringLayout(m.dir)
    dc = compose_command(m.compose_project, m.dir)
    password = _grafana_password(data)
    # somebody changes the admin password inside Grafana, and hand-edits the rules file
    other = _ssh_input(data, f"sudo {dc} exec -T grafana grafana cli admin reset-admin-password --password-from-stdin",
                       b"changed-by-hand-1234\n")
    assert other.returncode == 0, other.stderr[-1000:]
    ssh(data, f"sudo {dc} restart grafana >/dev/null 2>&1 && sleep 3")  # a restart does not bring it back
    _wait("grafana answering", lambda: _grafana_get(data, settings, "/api/health", "", "")[0] == 200, 60, 1)
    assert _grafana_get(data, settings, "/api/search", "admin", password)[0] == 401
    rules = f"{layout.config_dir}/prometheus/rules/orderops.yml"
    ssh(data, f"echo '# hand edit' | sudo tee -a {rules} >/dev/null")
    started = ssh(data, f"sudo docker inspect -f '{{{{.State.StartedAt}}}}' $(sudo {dc} ps -q prometheus)").stdout.strip()

    result = run_pyinfra()
    assert result.returncode == 0, result.output[-4000:]
    assert "Grafana admin password from the secrets" in result.output
    assert "Reload prometheus (POST /-/reload)" in result.output
    assert _grafana_get(data, settings, "/api/search", "admin", password)[0] == 200
    assert "# hand edit" not in ssh(data, f"sudo cat {rules}").stdout
    after = ssh(data, f"sudo docker inspect -f '{{{{.State.StartedAt}}}}' $(sudo {dc} ps -q prometheus)").stdout.strip()
    assert after == started, "Prometheus was restarted instead of reloaded"
    port = m.loopback_ports["prometheus"]
    reloaded = ssh(data, f"curl -fsS http://127.0.0.1:{port}/api/v1/query?query=prometheus_config_last_reload_successful").stdout
    assert json.loads(reloaded)["data"]["result"][0]["value"][1] == "1"
