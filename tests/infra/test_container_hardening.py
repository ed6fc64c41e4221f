"""The stacks' containers and dockerd: hardened as compose.yaml says, every service healthy.

Both Compose projects (the order stack on ``app`` hosts, the monitoring project on ``monitoring``
hosts) are checked the same way, against their roles' hardening tables and the inventory's limits:
the container's HostConfig, and the main process itself (``/proc/<pid>/status`` on the host: uid,
effective capabilities, no_new_privs).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from infra_checks import compose_containers, container_problems, wait_until

from deploys.contract.monitoring import (
    AGENT_PUBLISHED, LOKI_PUSH_PORT, LOOPBACK_SERVICES, NO_PROBE_SERVICES, PART_SERVICES, SERVICE_PORTS,
)
from deploys.roles.monitoring import SERVICE_HARDENING as MONITORING_HARDENING
from deploys.roles.order_stack import SERVICE_HARDENING

#: capability name -> bit in CapEff (linux/capability.h), for the capabilities the tables add
CAPABILITY_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "SETGID": 6, "SETUID": 7,
                   "NET_BIND_SERVICE": 10}


def _bytes(size: str) -> int:
    """Docker size notation (``256m``) in bytes."""
    return int(size[:-1]) * {"k": 1024, "m": 1024**2, "g": 1024**3}[size[-1]]


def _inspect(host, container_id: str) -> dict:
    return json.loads(host.run("docker inspect %s", container_id).stdout)[0]


def _hardening_problems(info: dict, entry, limits) -> list[str]:
    """How one container's HostConfig differs from its hardening entry and the inventory's limits."""
    hc, problems = info["HostConfig"], []
    checks = {
        "read-only root": hc["ReadonlyRootfs"] is True,
        "cap_drop ALL": hc["CapDrop"] == ["ALL"],
        f"cap_add {sorted(entry.cap_add)}": sorted(hc["CapAdd"] or []) == sorted(entry.cap_add),
        "no-new-privileges": "no-new-privileges:true" in (hc["SecurityOpt"] or []),
        "not privileged": not hc["Privileged"] and not hc["Devices"],
        f"memory {limits.memory}": hc["Memory"] == _bytes(limits.memory),
        f"cpus {limits.cpus}": hc["NanoCpus"] == int(limits.cpus * 1e9),
        f"pids {limits.pids}": hc["PidsLimit"] == limits.pids,
        f"tmpfs {sorted(entry.tmpfs)}": sorted(hc.get("Tmpfs") or {}) == sorted(entry.tmpfs),
    }
    if entry.user is not None:
        checks[f"user {entry.user}"] = info["Config"]["User"] == entry.user
    return [what for what, ok in checks.items() if not ok]


def _target_health(host, prometheus: str) -> dict[str, str]:
    """``{scrape target's host name: health}`` of Prometheus's active targets (its /api/v1/targets)."""
    out = host.run("docker exec %s wget -qO- http://127.0.0.1:%s/api/v1/targets?state=active",
                   prometheus, str(SERVICE_PORTS["prometheus"]))
    assert out.rc == 0, out.stderr
    return {urlsplit(t["scrapeUrl"]).hostname: t["health"] for t in json.loads(out.stdout)["data"]["activeTargets"]}


def _process(host, info: dict) -> dict[str, str]:
    """``Uid``, ``CapEff``, ``NoNewPrivs`` of the container's main process (from the host's /proc)."""
    status = host.file(f"/proc/{info['State']['Pid']}/status").content_string
    return dict(re.findall(r"^(Uid|CapEff|NoNewPrivs):\s+(\S+)", status, re.M))


def test_daemon_settings_in_force(app_host, settings):
    info = json.loads(app_host.run("docker info --format '{{json .}}'").stdout)
    assert info["LiveRestoreEnabled"] is True
    conf = json.loads(app_host.file("/etc/docker/daemon.json").content_string)
    assert conf["icc"] is False and conf["no-new-privileges"] is True
    assert conf["userland-proxy"] is settings.docker_userland_proxy
    bridge = json.loads(app_host.run("docker network inspect bridge").stdout)[0]
    assert bridge["Options"].get("com.docker.network.bridge.enable_icc") == "false"


def test_containers_hardened_and_healthy(app_host, settings):
    containers = compose_containers(app_host, settings.compose_project)
    assert {c["Service"] for c in containers} == set(SERVICE_HARDENING)
    assert container_problems(containers) == []
    for c in containers:
        service = c["Service"]
        info = _inspect(app_host, c["ID"])
        assert _hardening_problems(info, SERVICE_HARDENING[service], settings.service_limits[service]) == [], service
        assert _process(app_host, info)["NoNewPrivs"] == "1", service
        published = {k: v for k, v in (info["HostConfig"]["PortBindings"] or {}).items() if v}
        assert (service == "nginx") == bool(published), f"{service} publishes {published}"


def test_monitoring_containers_hardened_and_healthy(monitoring_host, settings):
    _monitoring_project_checks(monitoring_host, settings)


def test_monitoring_agent_on_app_hosts_monitored_from_their_own_host(app_host, settings):
    """The app host's part when the monitoring stack lives on a host of its own: exporters + Alloy."""
    if settings.monitoring_part != "agent":
        pytest.skip("this app host is not monitored from a monitoring host of its own")
    _monitoring_project_checks(app_host, settings)


def _monitoring_project_checks(host, settings) -> None:
    """This host's part of the monitoring project: exactly its services, healthy, hardened, and
    published only where the part says (loopback services on 127.0.0.1; a split stack's exporters
    and Loki push port on the host's own address, which the firewall opens to the other side only)."""
    m = settings.monitoring
    part = settings.monitoring_part
    services = PART_SERVICES[part]
    containers = compose_containers(host, m.compose_project)
    assert {c["Service"] for c in containers} == set(services)
    no_probe = tuple(s for s in NO_PROBE_SERVICES if s in services)
    assert container_problems(containers, without_probe=no_probe) == []
    if "prometheus" in services:
        # the services without a healthcheck are healthy by Prometheus: their scrape target is up
        prometheus = next(c["Name"] for c in containers if c["Service"] == "prometheus")

        def down() -> list[str]:
            health = _target_health(host, prometheus)
            return [f"{s}: {health.get(s, 'no target')}" for s in no_probe if health.get(s) != "up"]

        assert wait_until(lambda: not down(), 60), down()
    for c in containers:
        service = c["Service"]
        entry = MONITORING_HARDENING[service]
        info = _inspect(host, c["ID"])
        assert _hardening_problems(info, entry, m.service_limits[service]) == [], service
        # the process itself: the table's uid, only the added capabilities in effect, no_new_privs
        proc = _process(host, info)
        assert proc["Uid"] == entry.user.split(":")[0], f"{service} runs as uid {proc['Uid']}"
        assert int(proc["CapEff"], 16) == sum(1 << CAPABILITY_BITS[cap] for cap in entry.cap_add), service
        assert proc["NoNewPrivs"] == "1", service
        # the host's namespaces: only node-exporter shares one (its PID namespace, documented)
        hc = info["HostConfig"]
        assert (hc["PidMode"] == "host") == (service == "node-exporter"), service
        assert hc["NetworkMode"] != "host" and hc["IpcMode"] != "host", service
        published = {k: v for k, v in (hc["PortBindings"] or {}).items() if v}
        assert published == _expected_bindings(settings, service), f"{service} publishes {published}"


def _expected_bindings(settings, service: str) -> dict[str, list[dict[str, str]]]:
    """Docker's ``PortBindings`` a monitoring service should have on this host."""
    m, part = settings.monitoring, settings.monitoring_part
    port = f"{SERVICE_PORTS[service]}/tcp"
    bindings = []
    if service in LOOPBACK_SERVICES and part != "agent":
        bindings.append({"HostIp": "127.0.0.1", "HostPort": str(m.loopback_ports[service])})
    if (part == "agent" and service in AGENT_PUBLISHED) or (part == "server" and service == "loki"):
        host_port = LOKI_PUSH_PORT if service == "loki" else SERVICE_PORTS[service]
        bindings.append({"HostIp": settings.monitoring_address, "HostPort": str(host_port)})
    return {port: bindings} if bindings else {}