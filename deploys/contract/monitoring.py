"""The monitoring stack's host contract: its directory layout, compose services and ports.

On a host of inventory group ``monitoring`` (``monitoring.dir``, default :data:`MONITORING_DIR`),
laid out as :class:`MonitoringLayout`::

    compose.yaml                          the project as data (deploys/roles/monitoring.py)
    .env                                  secrets compose interpolates (0600)
    config/                               validated configuration (prometheus/, alertmanager/, grafana/, ...)
    bin/                                  helper scripts (pg_monitor role, Grafana admin password)

On every host without the monitoring project (a controller host without Docker), Debian's
``prometheus-node-exporter`` package serves :data:`NODE_EXPORTER_PORT` with the runbooks'
textfile directory (:data:`NODE_EXPORTER_DEFAULTS` is the file the package's unit reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "MONITORING_DIR", "MONITORING_PROJECT", "MonitoringLayout", "SERVICE_IMAGES", "SERVICES", "SERVICE_PORTS",
    "LOOPBACK_SERVICES", "NO_PROBE_SERVICES", "PG_MONITOR_USER", "STUB_STATUS_PORT", "NODE_EXPORTER_PORT", "NODE_EXPORTER_PACKAGE",
    "NODE_EXPORTER_SERVICE", "NODE_EXPORTER_DEFAULTS", "GRAFANA_PUBLIC_PATH", "PARTS", "PART_SERVICES", "AGENT_PUBLISHED",
    "METRICS_PORT", "LOKI_PUSH_PORT", "url_host",
]

#: Default project directory (inventory ``monitoring.dir``).
MONITORING_DIR = "/opt/orderops-monitoring"
#: Default compose project name (inventory ``monitoring.compose_project``).
MONITORING_PROJECT = "orderops-monitoring"

#: compose service -> the ``monitoring.images`` field of the image it runs.
SERVICE_IMAGES: Mapping[str, str] = {
    "prometheus": "prometheus", "alertmanager": "alertmanager", "node-exporter": "node_exporter",
    "cadvisor": "cadvisor", "postgres-exporter": "postgres_exporter", "redis-exporter": "redis_exporter",
    "nginx-exporter": "nginx_exporter", "blackbox-exporter": "blackbox_exporter", "loki": "loki",
    "alloy": "alloy", "grafana": "grafana",
}
#: The compose services of the monitoring project.
SERVICES: tuple[str, ...] = tuple(SERVICE_IMAGES)
#: The port each service listens on inside the project network (the official images' defaults).
SERVICE_PORTS: Mapping[str, int] = {
    "prometheus": 9090, "alertmanager": 9093, "node-exporter": 9100, "cadvisor": 8080, "postgres-exporter": 9187,
    "redis-exporter": 9121, "nginx-exporter": 9113, "blackbox-exporter": 9115, "loki": 3100, "alloy": 12345,
    "grafana": 3000,
}
#: Services whose official image is ``FROM scratch``: the exporter's binary and CA certificates,
#: no shell, wget or probe program (oliver006/redis_exporter's Dockerfile, default ``scratch``
#: stage; nginx/nginx-prometheus-exporter's build/Dockerfile, ``FROM scratch AS base``). A Docker
#: healthcheck needs a program inside the image, so these two have none: their health is
#: Prometheus's ``up`` for their scrape target (the ``TargetDown`` alert), and a crash is
#: restarted by the restart policy. Every other image has wget or bash (see the role).
NO_PROBE_SERVICES: tuple[str, ...] = ("redis-exporter", "nginx-exporter")
#: Services published on the monitoring host's 127.0.0.1 (SSH tunnel targets; inventory ``loopback_ports``).
LOOPBACK_SERVICES: tuple[str, ...] = ("prometheus", "alertmanager", "grafana", "loki")

#: Which part of the project a host runs (``HostSettings.monitoring_part``): ``all`` on a monitoring
#: host that is also the app host (single layout: every service, the compose network only);
#: ``server`` on a monitoring host of its own (scrapes the app hosts over their addresses, Loki
#: takes their logs); ``agent`` on an app host monitored from a monitoring host of its own.
PARTS: tuple[str, ...] = ("all", "server", "agent")
#: part -> the compose services it runs.
PART_SERVICES: Mapping[str, tuple[str, ...]] = {
    "all": SERVICES,
    "server": ("prometheus", "alertmanager", "node-exporter", "cadvisor", "blackbox-exporter", "loki", "alloy", "grafana"),
    "agent": ("node-exporter", "cadvisor", "postgres-exporter", "redis-exporter", "nginx-exporter", "alloy"),
}
#: The agent's services published on the app host's own address (``monitoring.app_hosts``) for the
#: monitoring hosts' Prometheus, reachable only from the monitoring hosts' addresses (role firewall).
AGENT_PUBLISHED: tuple[str, ...] = ("node-exporter", "cadvisor", "postgres-exporter", "redis-exporter", "nginx-exporter")
#: nginx's listener for the order service's ``/metrics`` (proxied to the API, nothing else) on an
#: agent host, published on its address for the monitoring hosts only; absent in the single layout.
METRICS_PORT = 9180
#: Loki's push port on a ``server`` host, published on its address for the app hosts' Alloy only.
LOKI_PUSH_PORT = SERVICE_PORTS["loki"]



def url_host(address: str) -> str:
    """``address`` as the host part of a URL, a scrape target or a compose port binding: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


#: PostgreSQL login role of postgres-exporter (member of ``pg_monitor``).
PG_MONITOR_USER = "orderops_monitor"
#: nginx's ``stub_status`` listener for nginx-prometheus-exporter: compose network only, never published.
STUB_STATUS_PORT = 8081
#: The path nginx serves Grafana under when the inventory makes it public (``monitoring.grafana_public``).
GRAFANA_PUBLIC_PATH = "/grafana/"

#: node-exporter's port (the same for the container and Debian's package).
NODE_EXPORTER_PORT = 9100
#: Debian/Ubuntu package and systemd unit of node-exporter on hosts without the monitoring project.
NODE_EXPORTER_PACKAGE = "prometheus-node-exporter"
NODE_EXPORTER_SERVICE = "prometheus-node-exporter"
#: The package's defaults file (``ARGS="..."``, read by its systemd unit).
NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"


@dataclass(frozen=True)
class MonitoringLayout:
    """Files of the monitoring project below ``root`` (``monitoring.dir``), all absolute paths."""

    root: str

    @property
    def compose_file(self) -> str:
        return f"{self.root}/compose.yaml"

    @property
    def env_file(self) -> str:
        """``.env``: Grafana admin, pg_monitor and Redis passwords (0600)."""
        return f"{self.root}/.env"

    @property
    def config_dir(self) -> str:
        """Validated configuration (bind-mounted read-only into the services)."""
        return f"{self.root}/config"

    @property
    def bin_dir(self) -> str:
        return f"{self.root}/bin"

    @property
    def pg_monitor_script(self) -> str:
        return f"{self.bin_dir}/apply-pg-monitor.sh"

    @property
    def grafana_password_script(self) -> str:
        return f"{self.bin_dir}/grafana-admin-password.sh"

    @property
    def smtp_password_file(self) -> str:
        """Alertmanager's ``smtp_auth_password_file`` (0400, user nobody)."""
        return f"{self.config_dir}/alertmanager/secrets/smtp_password"

    def here(self, path: str) -> str:
        """``path`` (below :attr:`root`) relative to the project directory, as compose bind mounts write it."""
        if not path.startswith(self.root + "/"):
            raise ValueError(f"{path!r} is not below {self.root!r}")
        return "./" + path[len(self.root) + 1:]
