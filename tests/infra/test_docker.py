"""Docker engine on the app hosts: service, Compose v2, json-file log rotation."""

from __future__ import annotations

import json
import re

from deploys.contract.services import API_LOG_TAG
from infra_checks import compose_containers


def test_docker_service_is_active_and_enabled(app_host):
    docker = app_host.service("docker")
    assert docker.is_running, "docker.service is not running"
    assert docker.is_enabled, "docker.service is not enabled at boot"


def test_compose_v2_plugin(app_host):
    result = app_host.run("docker compose version --short")
    assert result.rc == 0, f"`docker compose` is missing: {result.stderr.strip()}"
    version = result.stdout.strip()
    assert re.match(r"^v?2\.\d+", version), f"Compose v2 expected, got {version!r}"


def test_daemon_json_rotates_json_file_logs(app_host, settings):
    daemon_json = app_host.file("/etc/docker/daemon.json")
    assert daemon_json.is_file, "/etc/docker/daemon.json is missing"
    config = json.loads(daemon_json.content_string)

    assert config.get("log-driver") == "json-file"
    # dockerd only accepts strings in log-opts.
    assert config.get("log-opts", {}).get("max-size") == settings.docker_log_max_size
    assert config.get("log-opts", {}).get("max-file") == str(settings.docker_log_max_file)

    # ... and the running daemon uses it.
    assert app_host.check_output("docker info --format '{{.LoggingDriver}}'") == "json-file"


def test_stack_containers_rotate_their_logs(app_host, settings):
    """json-file with the inventory's rotation, except the order service: it logs to the journal,
    tagged, for fail2ban's API jail (deploys/roles/order_stack.py), where journald rotates it."""
    containers = compose_containers(app_host, settings.compose_project)
    assert containers, f"no containers in compose project {settings.compose_project!r}"
    for container in containers:
        inspect = "docker inspect --format '{{json .HostConfig.LogConfig}}' %s"
        log_config = json.loads(app_host.check_output(inspect, container["ID"]))
        options = log_config.get("Config") or {}
        if container.get("Service") == "api":
            assert (log_config.get("Type"), options.get("tag")) == ("journald", API_LOG_TAG), (
                f"container {container.get('Name')} does not log to the journal with fail2ban's tag")
            continue
        assert (log_config.get("Type"), options.get("max-size"), options.get("max-file")) == (
            "json-file",
            settings.docker_log_max_size,
            str(settings.docker_log_max_file),
        ), f"container {container.get('Name')} logs without the configured rotation"
