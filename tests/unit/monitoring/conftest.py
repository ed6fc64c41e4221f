"""Settings of a monitoring host, and the rendered configuration in a directory."""

import sys
from pathlib import Path

import pytest

from deploys.roles.monitoring import config_files

REPO = Path(__file__).resolve().parents[3]
# the stand-ins' package (images/monitoring-standins/standins), imported by the checks below
sys.path.insert(0, str(REPO / "images" / "monitoring-standins"))

IMAGES = {role: f"example.org/{role}:1.0@sha256:{'a' * 64}" for role in (
    "prometheus", "alertmanager", "node_exporter", "postgres_exporter", "redis_exporter", "nginx_exporter",
    "blackbox_exporter", "grafana", "loki", "alloy", "cadvisor")}
SMTP = {"smarthost": "mail.example.com:587", "sender": "am@example.com", "to": ["ops@example.com"]}


@pytest.fixture
def monitoring_settings(make_settings):
    """``monitoring_settings(**monitoring overrides) -> HostSettings`` of an app + monitoring host."""

    def make(**overrides):
        data = {"images": IMAGES, "webhook_url": "https://hooks.example.com/alerts", "smtp": SMTP, **overrides}
        return make_settings(groups=("app", "monitoring"), monitoring=data)

    return make


@pytest.fixture
def rendered(tmp_path, monitoring_settings):
    """``rendered(settings=None) -> Path`` of a directory holding config_files(settings)."""

    def write(settings=None):
        root = tmp_path / "config"
        for rel, text in config_files(settings or monitoring_settings()).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return write
