"""The monitoring stack on a host of its own (``server``) and the app hosts it monitors (``agent``):
the schema's cross-checks, each part's services, ports, configuration, and the firewall's sources."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from deploys.contract.monitoring import AGENT_PUBLISHED, LOKI_PUSH_PORT, METRICS_PORT, PART_SERVICES, SERVICE_PORTS
from deploys.roles import monitoring as role
from deploys.roles import order_stack
from inventories.schema import InventoryError, validate_groups
from tests.unit.conftest import STRONG_SECRETS
from tests.unit.monitoring.conftest import IMAGES, SMTP

APP, MON = "10.0.0.2", "10.0.0.9"


@pytest.fixture
def split(tmp_path):
    """``split(app={...}, mon={...}, apps=1, server=True) -> {name: HostSettings}`` of app-1.. (+ mon-1),
    validated as one inventory."""
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(STRONG_SECRETS))
    os.chmod(path, 0o600)

    def make(app=None, mon=None, apps=1, server=True):
        base = {"environment": "production", "domain": "orders.example.com", "secrets_file": str(path),
                "backup_age_recipients": ["age1j8aws9357ynzr6uy0p83fxk2q784axu2zkustzkxwutx6wjcsseqc4qt90"],
                "images": {"order_service": "r.example.com/o:1", "postgres": "postgres:15", "redis": "redis:7",
                           "nginx": "nginx:1"}}
        shared = {"images": IMAGES, "smtp": SMTP, "monitoring_hosts": {"mon-1": MON},
                  "app_hosts": {f"app-{i}": f"10.0.0.{i + 1}" for i in range(1, apps + 1)}}
        app_data = {**base, "monitoring": {**shared, **(app or {})}}
        mon_data = {**base, "monitoring": {**shared, **(mon or {})}}
        groups = {"app": [(f"app-{i}", app_data) for i in range(1, apps + 1)]}
        if server:
            groups["monitoring"] = [("mon-1", mon_data)]
        return validate_groups(groups)

    return make


def test_parts_and_firewall_sources(split, monitoring_settings):
    s = split()
    assert s["app-1"].monitoring_part == "agent" and s["mon-1"].monitoring_part == "server"
    assert monitoring_settings().monitoring_part == "all"
    ports = sorted([SERVICE_PORTS[x] for x in AGENT_PUBLISHED] + [METRICS_PORT])
    assert s["app-1"].firewall_allow_from == tuple((MON, p) for p in ports)
    assert s["mon-1"].firewall_allow_from == ((APP, LOKI_PUSH_PORT),)
    assert monitoring_settings().firewall_allow_from == ()  # single layout: nothing new


@pytest.mark.parametrize("app,mon,apps,host,field", [
    (None, {"app_hosts": {}}, 1, "mon-1", "monitoring.app_hosts"),
    (None, {"monitoring_hosts": {}}, 1, "mon-1", "monitoring.monitoring_hosts"),
    (None, {"grafana_public": True}, 1, "mon-1", "monitoring.grafana_public"),
    (None, {"app_hosts": {"app-1": "app-1.internal"}}, 1, "mon-1", "monitoring.app_hosts"),
    ({"monitoring_hosts": {}}, None, 1, "app-1", "monitoring.monitoring_hosts"),
    ({"monitoring_hosts": {"mon-2": MON}}, None, 1, "app-1", "monitoring.monitoring_hosts"),
    ({"app_hosts": {"app-1": "10.0.0.3"}}, None, 1, "app-1", "monitoring.app_hosts"),
    (None, {"app_hosts": {"app-1": APP}}, 2, "mon-1", "monitoring.app_hosts"),
])
def test_bad_split_names_host_and_field(split, app, mon, apps, host, field):
    with pytest.raises(InventoryError) as err:
        split(app=app, mon=mon, apps=apps)
    assert (err.value.host, err.value.field) == (host, field), str(err.value)


def test_single_layout_refuses_app_hosts(monitoring_settings):
    with pytest.raises(InventoryError) as err:
        monitoring_settings(app_hosts={"app-2": APP})
    assert err.value.field == "monitoring.app_hosts"


def test_app_hosts_alone_validate_host_by_host(split):
    """The controller host's exported inventory holds the app hosts only: no cross-check fails."""
    assert split(server=False)["app-1"].monitoring_part == "agent"


def _ports(project: dict) -> dict[str, list[str]]:
    return {name: spec.get("ports", []) for name, spec in project["services"].items()}


def test_agent_publishes_exporters_on_its_address_only(split):
    s = split()["app-1"]
    project = role.compose_project(s)
    assert tuple(project["services"]) == PART_SERVICES["agent"]
    ports = _ports(project)
    for service in AGENT_PUBLISHED:
        assert ports[service] == [f"{APP}:{SERVICE_PORTS[service]}:{SERVICE_PORTS[service]}"]
    assert ports["alloy"] == [] and "depends_on" not in project["services"]["alloy"]
    assert set(project["volumes"]) == {"alloydata"}
    assert sorted(role.config_files(s)) == ["config.alloy"]
    assert f'url = "http://{MON}:{LOKI_PUSH_PORT}/loki/api/v1/push"' in role.config_files(s)["config.alloy"]
    assert [c for c in role.checks(s) if "alloy" in c] == role.checks(s) and len(role.checks(s)) == 1
    env = role.env_text(s)
    assert "PG_MONITOR_PASSWORD=" in env and "GRAFANA_ADMIN_PASSWORD" not in env
    # nginx's /metrics listener, on the app host's address
    nginx = order_stack.compose_project(s)["services"]["nginx"]
    assert nginx["ports"] == ["80:80", "443:443", f"{APP}:{METRICS_PORT}:{METRICS_PORT}"]
    vhost = order_stack.nginx_text(s)
    assert f"listen {METRICS_PORT};" in vhost and "location = /metrics" in vhost


def test_server_scrapes_the_app_hosts_and_publishes_loki_on_its_address(split):
    s = split(apps=2)["mon-1"]
    project = role.compose_project(s)
    assert tuple(project["services"]) == PART_SERVICES["server"]
    assert set(project["networks"]) == {"monitoring"}  # no order stack here
    ports = _ports(project)
    assert ports["loki"] == [f"127.0.0.1:{SERVICE_PORTS['loki']}:{SERVICE_PORTS['loki']}",
                             f"{MON}:{LOKI_PUSH_PORT}:{SERVICE_PORTS['loki']}"]
    assert all(p.startswith("127.0.0.1:") for name, ps in ports.items() if name != "loki" for p in ps)
    prom = yaml.safe_load(role.config_files(s)["prometheus/prometheus.yml"])
    jobs = {j["job_name"]: j["static_configs"] for j in prom["scrape_configs"]}
    groups = {(tuple(g["targets"]), g["labels"]["host"]) for g in jobs["postgres"]}
    assert groups == {(("10.0.0.2:9187",), "app-1"), (("10.0.0.3:9187",), "app-2")}
    assert {(tuple(g["targets"]), g["labels"]["host"]) for g in jobs["order-service"]} == {
        ((f"10.0.0.2:{METRICS_PORT}",), "app-1"), ((f"10.0.0.3:{METRICS_PORT}",), "app-2")}
    assert (("node-exporter:9100",), "mon-1") in {(tuple(g["targets"]), g["labels"]["host"]) for g in jobs["node"]}
    assert [g["targets"] for g in jobs["blackbox-https"]] == [["https://10.0.0.2/api/health"], ["https://10.0.0.3/api/health"]]
    assert "config.alloy" in role.config_files(s) and "loki:3100" in role.config_files(s)["config.alloy"]
    assert "PG_MONITOR_PASSWORD" not in role.env_text(s)


def test_ipv6_addresses_in_brackets(split):
    s = split(app={"monitoring_hosts": {"mon-1": "fd00::9"}}, mon={"monitoring_hosts": {"mon-1": "fd00::9"}})["app-1"]
    assert f'"http://[fd00::9]:{LOKI_PUSH_PORT}/loki/api/v1/push"' in role.config_files(s)["config.alloy"]


def test_single_layout_publishes_nothing_new(monitoring_settings):
    s = monitoring_settings()
    ports = _ports(role.compose_project(s))
    assert all(p.startswith("127.0.0.1:") for ps in ports.values() for p in ps)
    assert order_stack.compose_project(s)["services"]["nginx"]["ports"] == ["80:80", "443:443"]
    assert f"listen {METRICS_PORT}" not in order_stack.nginx_text(s)
