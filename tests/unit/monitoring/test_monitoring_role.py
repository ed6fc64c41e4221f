"""The monitoring role's rendered project: exposure, images, hardening, validation commands, change detection."""

import hashlib

import yaml

from deploys.operations.validated_config import changed_files
from deploys.contract.monitoring import NO_PROBE_SERVICES, SERVICE_IMAGES
from deploys.roles.monitoring import RELOAD, RESTART, _changed_prefixes, checks, compose_text, env_text


def test_nothing_published_beyond_loopback(monitoring_settings):
    services = yaml.safe_load(compose_text(monitoring_settings()))["services"]
    assert set(services) == set(SERVICE_IMAGES)
    published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
    assert published == {"prometheus": ["127.0.0.1:9090:9090"], "alertmanager": ["127.0.0.1:9093:9093"],
                         "grafana": ["127.0.0.1:3000:3000"], "loki": ["127.0.0.1:3100:3100"]}
    for name, svc in services.items():
        assert svc["image"] == monitoring_settings().monitoring.images.refs()[SERVICE_IMAGES[name]]
        assert "env_file" not in svc  # docker/compose#14001


def test_grafana_hardening_and_secrets_by_interpolation(monitoring_settings):
    s = monitoring_settings()
    grafana = yaml.safe_load(compose_text(s))["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert s.secrets.grafana_admin_password.get_secret_value() not in compose_text(s)
    assert s.secrets.grafana_admin_password.get_secret_value() in env_text(s)


def test_every_config_file_has_a_validator(monitoring_settings):
    joined = "\n".join(checks(monitoring_settings()))
    for needle in ("/bin/promtool", "check config /etc/prometheus", "check rules /etc/prometheus", "/bin/amtool", "check-config", "--config.check",
                   "-verify-config", "validate /etc/alloy/config.alloy"):
        assert needle in joined


def test_changed_files_and_what_reloads():
    files = {"prometheus/prometheus.yml": "a", "loki.yaml": "b", "grafana/dashboards/x.json": "c"}
    current = {"prometheus/prometheus.yml": hashlib.sha256(b"a").hexdigest(), "loki.yaml": None,
               "grafana/dashboards/x.json": "0" * 64}
    changed = changed_files(files, current)
    assert changed == ["loki.yaml", "grafana/dashboards/x.json"]
    assert _changed_prefixes(changed, RELOAD) == set()
    assert _changed_prefixes(changed, RESTART) == {"loki", "grafana"}
    assert _changed_prefixes(["prometheus/rules/orderops.yml"], RELOAD) == {("prometheus", 9090)}


def test_compose_file_is_the_data_dumped(monitoring_settings):
    from deploys.roles.monitoring import compose_project

    s = monitoring_settings()
    assert yaml.safe_load(compose_text(s)) == compose_project(s)
    networks = compose_project(s)["networks"]
    assert networks["order_backend"] == {"external": True, "name": f"{s.compose_project}_backend"}
    assert compose_project(s)["name"] == s.monitoring.compose_project


def test_bind_mounts_are_below_the_project_directory(monitoring_settings):
    from deploys.roles.monitoring import compose_project

    for name, svc in compose_project(monitoring_settings())["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith(("./config/", "/")) or source.isidentifier(), (name, volume)


def test_grafana_under_nginx_only_when_the_inventory_says_so(monitoring_settings):
    from deploys.roles.monitoring import compose_project
    from deploys.roles.order_stack import nginx_text

    private = monitoring_settings()
    grafana = compose_project(private)["services"]["grafana"]
    assert grafana["networks"] == ["monitoring"]
    assert grafana["environment"]["GF_SERVER_SERVE_FROM_SUB_PATH"] == "false"
    assert "/grafana/" not in nginx_text(private)

    public = monitoring_settings(grafana_public=True)
    grafana = compose_project(public)["services"]["grafana"]
    assert grafana["networks"] == ["monitoring", "order_frontend"]
    assert grafana["environment"]["GF_SERVER_ROOT_URL"] == f"https://{public.domain}/grafana/"
    assert grafana["environment"]["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    vhost = nginx_text(public)
    https = vhost[vhost.index("listen 443"):vhost.index("stub_status")]
    assert "location ^~ /grafana/" in https and "http://grafana:3000" in https
    port80 = vhost[:vhost.index("listen 443")]
    assert "grafana" not in port80  # HTTP only redirects


def test_grafana_public_is_refused_as_a_bad_type(monitoring_settings):
    import pytest

    from inventories.schema import InventoryError

    with pytest.raises((InventoryError, ValueError), match="grafana_public"):
        monitoring_settings(grafana_public="sometimes")


def test_every_service_is_hardened_with_the_inventory_limits(monitoring_settings):
    from deploys.contract.monitoring import SERVICES
    from deploys.roles.monitoring import ROOT_SERVICES, SERVICE_HARDENING, compose_project

    s = monitoring_settings(service_limits={"loki": {"memory": "2g", "cpus": 0.75, "pids": 300}})
    services = yaml.safe_load(compose_text(s))["services"]
    assert set(SERVICE_HARDENING) == set(services) == set(SERVICES)
    for name, svc in services.items():
        assert svc["security_opt"] == ["no-new-privileges:true"], name
        assert svc["cap_drop"] == ["ALL"] and svc["read_only"] is True, name
        assert svc.get("cap_add", []) == list(SERVICE_HARDENING[name].cap_add), name
        assert not svc.get("privileged") and "devices" not in svc and "network_mode" not in svc, name
        limits = s.monitoring.service_limits[name]
        assert (svc["mem_limit"], svc["cpus"], svc["pids_limit"]) == (limits.memory, limits.cpus, limits.pids), name
        # a healthcheck everywhere but in the FROM-scratch exporters, which have no program to run one
        assert ("healthcheck" in svc) == (name not in NO_PROBE_SERVICES), f"{name}: healthcheck {svc.get('healthcheck')}"
        uid = svc["user"].split(":")[0]
        assert (uid == "0") == (name in ROOT_SERVICES), f"{name} runs as {svc['user']}"
    assert (services["loki"]["mem_limit"], services["loki"]["cpus"], services["loki"]["pids_limit"]) == ("2g", 0.75, 300)
    assert services["prometheus"]["mem_limit"] == "1g"  # default kept for services the inventory leaves out
    # nothing is added back; only the documented exception shares a host namespace
    assert {n: svc["cap_add"] for n, svc in services.items() if "cap_add" in svc} == {}
    assert {n for n, svc in services.items() if "pid" in svc} == {"node-exporter"}
    # the users the official images' volumes belong to (grafana/grafana 472:0, grafana/loki 10001)
    assert services["grafana"]["user"] == "472:0" and services["loki"]["user"] == "10001:10001"
    assert services["grafana"]["tmpfs"] == ["/tmp"]
    assert compose_project(s) == yaml.safe_load(compose_text(s))


def test_docker_socket_only_where_documented(monitoring_settings):
    from deploys.roles.monitoring import ROOT_SERVICES

    services = yaml.safe_load(compose_text(monitoring_settings()))["services"]
    with_socket = {n for n, svc in services.items() if any("docker.sock" in v for v in svc.get("volumes", []))}
    assert with_socket == set(ROOT_SERVICES) == {"cadvisor", "alloy"}
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            if volume.split(":", 1)[0].startswith("/"):  # host paths: read-only, always
                assert volume.endswith(":ro"), (name, volume)


def test_alloy_health_probe_answers_only_when_ready(tmp_path):
    """The alloy healthcheck's bash probe against a real HTTP server: 200 passes, 503 fails."""
    import http.server
    import subprocess
    import threading

    from deploys.roles.monitoring import _alloy_health

    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status["code"] if self.path == "/-/ready" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        test = _alloy_health(server.server_address[1])["test"]
        assert test[:3] == ["CMD", "bash", "-c"]
        assert subprocess.run(test[1:], timeout=10, check=False).returncode == 0
        status["code"] = 503
        assert subprocess.run(test[1:], timeout=10, check=False).returncode != 0
    finally:
        server.shutdown()
