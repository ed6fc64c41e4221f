"""The monitoring stack on a host of its own (testhosts layout ``monitoring``: controller + app +
monitoring), after tests/integration/test_deploy.py converged the hosts.

* Prometheus on the monitoring host has every scrape target of the app host ``up``: its exporters
  (node-exporter, cAdvisor, postgres-exporter, redis-exporter, nginx-exporter) and the order
  service's ``/metrics`` at the app host's address, and the blackbox probe of its HTTPS readiness;
* a log line written on the app host (a request with a unique ``X-Request-ID``) is found in the
  monitoring host's Loki by the app host's ``host`` label (Alloy on the app host pushes it);
* from a container on the test network that is not the monitoring host, the app host's exporter
  ports and ``/metrics`` listener and the monitoring host's Loki push port are refused or filtered,
  while the app host's 443 answers (the probe does reach the hosts).

Skipped when the inventory has no monitoring host of its own. Stand-ins: Loki and Alloy (and cAdvisor)
are the stand-ins of images/monitoring-standins; Prometheus and the other exporters are the real
programs from Debian's packages.
"""

from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from deploys.contract.paths import local_state_dir
from deploys.contract.monitoring import AGENT_PUBLISHED, LOKI_PUSH_PORT, METRICS_PORT, SERVICE_PORTS
from inventories.schema import validate_groups
from tests.integration.conftest import host_network, ssh, wait_until as _wait

pytestmark = pytest.mark.integration

#: scrape jobs with a target on every app host (job -> port there)
APP_JOBS = {"node": SERVICE_PORTS["node-exporter"], "cadvisor": SERVICE_PORTS["cadvisor"],
            "postgres": SERVICE_PORTS["postgres-exporter"], "redis": SERVICE_PORTS["redis-exporter"],
            "nginx": SERVICE_PORTS["nginx-exporter"], "order-service": METRICS_PORT}

CONNECT = r"""
import json, socket, sys
out = {}
for port in [int(p) for p in sys.argv[2].split(",")]:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((sys.argv[1], port)); out[port] = "open"
    except socket.timeout:
        out[port] = "filtered"
    except OSError:
        out[port] = "closed"
    finally:
        s.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def split(inventory):
    """``(app (name, data, settings), monitoring (name, data, settings))``, or skip without a monitoring host of its own."""
    apps = {name for name, _ in inventory["app"]}
    own = [(n, d) for n, d in inventory["monitoring"] if n not in apps]
    if not own:
        pytest.skip("no monitoring host of its own in this inventory (testhosts layout 'monitoring')")
    settings = validate_groups(inventory)
    (app_name, app_data), (mon_name, mon_data) = inventory["app"][0], own[0]
    return (app_name, app_data, settings[app_name]), (mon_name, mon_data, settings[mon_name])


def _prometheus(mon, path: str) -> dict:
    name, data, settings = mon
    port = settings.monitoring.loopback_ports["prometheus"]
    return json.loads(ssh(data, f"curl -fsS {shlex.quote(f'http://127.0.0.1:{port}{path}')}").stdout)


def test_prometheus_scrapes_every_exporter_and_metrics_of_the_app_host(split):
    """Real Prometheus and exporters; cAdvisor is the stand-in."""
    app, mon = split
    address = app[2].monitoring_address
    state: dict = {}

    def all_up():
        targets = _prometheus(mon, "/api/v1/targets?state=active")["data"]["activeTargets"]
        state.clear()
        state.update({(t["labels"]["job"], t["labels"]["instance"]): (t["health"], t.get("lastError", ""))
                      for t in targets if t["labels"].get("host") == app[0]})
        wanted = {(job, f"{address}:{port}") for job, port in APP_JOBS.items()}
        blackbox = [k for k in state if k[0] == "blackbox-https"]
        return wanted <= set(state) and blackbox and all(state[k][0] == "up" for k in [*wanted, *blackbox])

    try:
        _wait("every app-host target up on the monitoring host", all_up, 120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {state}") from None
    # the samples carry the app host's label and come from it (the order service's own metric)
    result = _prometheus(mon, "/api/v1/query?" + urllib.parse.urlencode(
        {"query": f'up{{job="order-service", host="{app[0]}"}}'}))["data"]["result"]
    assert [r["value"][1] for r in result] == ["1"]


def test_a_log_line_written_on_the_app_host_is_in_the_monitoring_hosts_loki(split):
    """Stand-ins: Alloy on the app host ships the container logs, Loki on the monitoring host stores them."""
    app, mon = split
    app_name, app_data, app_settings = app
    marker = str(uuid.uuid4())
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # self-signed local certificate
    req = urllib.request.Request(f"{app_data['probe_https_url']}/api/health",
                                 headers={"Host": app_data["domain"], "X-Request-ID": marker})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        assert resp.status == 200
    query = f'{{host="{app_name}", project="{app_settings.compose_project}", service="api"}} |= "{marker}"'
    port = mon[2].monitoring.loopback_ports["loki"]
    url = (f"http://127.0.0.1:{port}/loki/api/v1/query_range?"
           + urllib.parse.urlencode({"query": query, "limit": 10, "start": int((time.time() - 600) * 1e9)}))

    def found():
        out = ssh(mon[1], f"curl -fsS {shlex.quote(url)}", check=False).stdout
        streams = json.loads(out)["data"]["result"] if out.strip() else []
        return [line for s in streams for _, line in s["values"] if marker in line]

    assert len(_wait("the app host's log line in the monitoring host's Loki", found, 90)) == 1


def _connect_from(container: str, address: str, ports: list[int]) -> dict[int, str]:
    proc = subprocess.run(["docker", "exec", "-i", container, "python3", "-", address, ",".join(map(str, ports))],
                          input=CONNECT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return {int(k): v for k, v in json.loads(proc.stdout).items()}


def test_exporters_and_loki_unreachable_from_another_container_on_the_network(split, inventory):
    """A container of the target image on the test network (not the monitoring host) connects to
    the app host's exporter and /metrics ports and the monitoring host's Loki port: none is open;
    the app host's 443 is (the control). The monitoring host's own reach is the first test's ``up``."""
    from testhosts.hosts import LABEL

    app, mon = split
    images = json.loads((local_state_dir() / "images.json").read_text())
    name = f"{app[1]['testhost_container']}-outsider"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", host_network(app[1]),
                    "--label", f"{LABEL}={local_state_dir().resolve()}", "--entrypoint", "sleep", images["target"], "infinity"],
                   capture_output=True, check=True)
    try:
        exporter_ports = sorted([SERVICE_PORTS[s] for s in AGENT_PUBLISHED] + [METRICS_PORT])
        on_app = _connect_from(name, app[2].monitoring_address, exporter_ports + [443])
        on_mon = _connect_from(name, mon[2].monitoring_address, [LOKI_PUSH_PORT])
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert on_app.pop(443) == "open", "control: the outsider reaches the app host's HTTPS"
    assert {p: s for p, s in on_app.items() if s == "open"} == {}, on_app
    assert on_mon[LOKI_PUSH_PORT] != "open", on_mon
