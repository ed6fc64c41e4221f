"""The monitoring role's rendered project: exposure, images, validation commands, change detection."""

import hashlib

import yaml

from deploys.operations.validated_config import changed_files
from deploys.contract.monitoring import SERVICE_IMAGES
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
