"""The stack's containers and dockerd: hardened as compose.yaml says, every service healthy."""

from __future__ import annotations

import json

from infra_checks import compose_containers, container_problems

from deploys.roles.order_stack import SERVICE_HARDENING


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
    assert container_problems(containers) == []
    for c in containers:
        service = c["Service"]
        hc = json.loads(app_host.run("docker inspect %s", c["ID"]).stdout)[0]["HostConfig"]
        limits = settings.service_limits[service]
        assert hc["ReadonlyRootfs"] is True, service
        assert hc["CapDrop"] == ["ALL"], service
        assert sorted(hc["CapAdd"] or []) == sorted(SERVICE_HARDENING[service]["cap_add"]), service
        assert "no-new-privileges:true" in (hc["SecurityOpt"] or []), service
        assert hc["Memory"] > 0 and hc["NanoCpus"] == int(limits.cpus * 1e9) and hc["PidsLimit"] == limits.pids, service
        assert not hc["Privileged"], service
        published = {k: v for k, v in (hc["PortBindings"] or {}).items() if v}
        assert (service == "nginx") == bool(published), f"{service} publishes {published}"
