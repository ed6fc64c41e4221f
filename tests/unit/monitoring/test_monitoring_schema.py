"""Monitoring host data and secrets: one clear error naming the field, before any host is touched."""

import json
import os

import pytest

from inventories.schema import InventoryError, build_settings
from tests.unit.conftest import STRONG_SECRETS
from tests.unit.monitoring.conftest import IMAGES, SMTP


def test_defaults_and_overrides(monitoring_settings):
    s = monitoring_settings(retention_time="30d", thresholds={"cert_days": 21})
    assert s.monitoring.retention_time == "30d" and s.monitoring.thresholds.cert_days == 21
    assert s.monitoring.retention_size == "5GB" and s.monitoring.alert_for_s == 300
    assert s.redis_maxmemory_policy == "volatile-lru"


@pytest.mark.parametrize("override,field", [
    ({"images": None}, "monitoring.images"),
    ({"images": {**IMAGES, "loki": "grafana/loki:3.4.2"}}, "monitoring.images.loki"),
    ({"images": {**IMAGES, "grafana": "grafana/grafana:latest"}}, "monitoring.images.grafana"),
    ({"retention_size": "5G"}, "monitoring.retention_size"),
    ({"retention_time": "forever"}, "monitoring.retention_time"),
    ({"webhook_url": "ftp://x"}, "monitoring.webhook_url"),
    ({"smtp": {**SMTP, "smarthost": "mail"}}, "monitoring.smtp.smarthost"),
    ({"smtp": None, "webhook_url": None}, "monitoring.smtp"),
    ({"allow_sources": ["10.0.0.300/8"]}, "monitoring.allow_sources"),
    ({"thresholds": {"error_ratio": 2}}, "monitoring.thresholds.error_ratio"),
])
def test_bad_monitoring_data_names_the_field(monitoring_settings, override, field):
    with pytest.raises(InventoryError) as err:
        monitoring_settings(**override)
    assert err.value.field == field, str(err.value)


@pytest.mark.parametrize("name", ["grafana_admin_password", "pg_monitor_password"])
def test_monitoring_secrets_required_on_monitoring_hosts(tmp_path, name):
    secrets = {k: v for k, v in STRONG_SECRETS.items() if k != name}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(secrets))
    os.chmod(path, 0o600)
    data = {"environment": "production", "domain": "orders.example.com", "secrets_file": str(path),
            "images": {"order_service": "r.example.com/o:1", "postgres": "postgres:15", "redis": "redis:7", "nginx": "nginx:1"},
            "monitoring": {"images": IMAGES, "webhook_url": "https://h.example.com/a"},
            "backup_age_recipients": ["age1j8aws9357ynzr6uy0p83fxk2q784axu2zkustzkxwutx6wjcsseqc4qt90"]}
    with pytest.raises(InventoryError) as err:
        build_settings("m-1", data, ("app", "monitoring"))
    assert err.value.field == f"secrets.{name}"
    assert getattr(build_settings("a-1", data, ("app",)).secrets, name) is None  # not needed elsewhere


def test_smtp_password_required_with_an_smtp_username(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({k: v for k, v in STRONG_SECRETS.items() if k != "smtp_password"}))
    os.chmod(path, 0o600)
    data = {"environment": "production", "domain": "orders.example.com", "secrets_file": str(path),
            "images": {"order_service": "r.example.com/o:1", "postgres": "postgres:15", "redis": "redis:7", "nginx": "nginx:1"},
            "monitoring": {"images": IMAGES, "smtp": {**SMTP, "username": "am"}}}
    with pytest.raises(InventoryError) as err:
        build_settings("m-1", data, ("app", "monitoring"))
    assert err.value.field == "secrets.smtp_password"


def test_monitoring_host_of_its_own_needs_the_app_hosts_addresses(make_settings):
    with pytest.raises(InventoryError) as err:
        make_settings(groups=("controller", "monitoring"), monitoring={"images": IMAGES, "smtp": SMTP})
    assert err.value.field == "monitoring.app_hosts"


def test_weak_monitoring_secret_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**STRONG_SECRETS, "grafana_admin_password": "admin"}))
    os.chmod(path, 0o600)
    data = {"environment": "production", "domain": "orders.example.com", "secrets_file": str(path),
            "images": {"order_service": "r.example.com/o:1", "postgres": "postgres:15", "redis": "redis:7", "nginx": "nginx:1"}}
    with pytest.raises(InventoryError) as err:
        build_settings("a-1", data, ("app",))
    assert err.value.field == "secrets.grafana_admin_password" and "admin" not in err.value.message.replace("default", "")


@pytest.mark.parametrize("bad", ["pw@host-0123456789abcdefXYZ", "a/b-0123456789abcdefXYZ", "a'b-0123456789abcdefXYZ"])
def test_pg_monitor_password_is_url_safe(bad, tmp_path):
    """The documented exception: it is part of postgres-exporter's DATA_SOURCE_NAME URL."""
    from pydantic import ValidationError

    from inventories.schema import Secrets

    base = {"postgres_password": "p", "redis_password": "r", "secret_key": "s", "admin_password": "a"}
    with pytest.raises(ValidationError, match="pg_monitor_password"):
        Secrets.model_validate({**base, "pg_monitor_password": bad})
    Secrets.model_validate({**base, "pg_monitor_password": "Ok-0123456789_abc.def~XYZ"})


@pytest.mark.parametrize("override,field", [
    ({"service_limits": {"grafana": {"memory": "lots", "cpus": 0.5, "pids": 64}}}, "monitoring.service_limits.grafana.memory"),
    ({"service_limits": {"loki": {"memory": "1g", "cpus": 0, "pids": 64}}}, "monitoring.service_limits.loki.cpus"),
    ({"service_limits": {"alloy": {"memory": "1g", "cpus": 0.5, "pids": 4}}}, "monitoring.service_limits.alloy.pids"),
    ({"service_limits": {"lokii": {"memory": "1g", "cpus": 0.5, "pids": 64}}}, "monitoring.service_limits.lokii"),
])
def test_bad_monitoring_limits_name_the_field(monitoring_settings, override, field):
    with pytest.raises(InventoryError) as err:
        monitoring_settings(**override)
    assert err.value.field.startswith(field), str(err.value)


def test_limits_default_per_service_and_merge(monitoring_settings):
    from deploys.contract.monitoring import SERVICES
    from inventories.monitoring import default_limits

    s = monitoring_settings(service_limits={"grafana": {"memory": "1g", "cpus": 1, "pids": 512}})
    assert set(s.monitoring.service_limits) == set(SERVICES) == set(default_limits())
    assert s.monitoring.service_limits["grafana"].memory == "1g"
    assert s.monitoring.service_limits["loki"] == default_limits()["loki"]
    assert all(lim.cpus <= 1 for lim in default_limits().values())  # Docker refuses more CPUs than the host has
