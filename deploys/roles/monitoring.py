"""Role ``monitoring``: Prometheus, Alertmanager, exporters, Loki, Alloy and Grafana as their own
Compose project on hosts of inventory group ``monitoring`` (so far: an app host, single layout).

Files on the host (``monitoring.dir``, default ``/opt/orderops-monitoring``)::

    compose.yaml                       templates/monitoring/compose.yaml.j2
    .env                               secrets (0600): Grafana admin, pg_monitor role, Redis
    config/prometheus/prometheus.yml   scrape jobs        (promtool check config)
    config/prometheus/rules/orderops.yml  alert rules     (promtool check rules)
    config/alertmanager/alertmanager.yml                  (amtool check-config)
    config/blackbox.yml                                    (blackbox_exporter --config.check)
    config/loki.yaml                                       (loki -verify-config)
    config/config.alloy                                    (alloy validate)
    config/grafana/{provisioning,dashboards}/              datasources, dashboard provider, dashboards
    bin/                               helper scripts (pg_monitor role, Grafana admin password)

Every config file is validated with the pinned images before it replaces the running one
(:mod:`deploys.operations.validated_config`); ``docker compose config`` checks the project.
Prometheus and Alertmanager reload through ``POST /-/reload`` when only their files changed; Loki,
Alloy, blackbox and Grafana are restarted when theirs did. The Grafana admin password from the
secrets is applied even on an existing Grafana volume (Grafana ignores GF_SECURITY_ADMIN_PASSWORD
there): ``grafana cli admin reset-admin-password --password-from-stdin`` when the inventory password
does not log in.
"""

from __future__ import annotations

from io import StringIO

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys.facts.monitoring import GrafanaLogin, PostgresRoleExists
from deploys.operations import compose, secret_files, validated_config
from deploys.operations import images as image_ops
from deploys.contract.dotenv import dotenv_quote, dotenv_read_command
from deploys.roles.order_stack import STUB_STATUS_PORT
from inventories.schema import HostSettings
from templates import render
from templates.monitoring.grafana.dashboards import DASHBOARDS, dashboard_json

__all__ = ["monitoring", "config_files", "compose_text", "env_text", "checks", "PG_MONITOR_USER", "STUB_STATUS_PORT",
           "SERVICE_IMAGES", "RELOAD", "RESTART"]

PG_MONITOR_USER = "orderops_monitor"
#: compose service -> monitoring image role
SERVICE_IMAGES = {
    "prometheus": "prometheus", "alertmanager": "alertmanager", "node-exporter": "node_exporter",
    "cadvisor": "cadvisor", "postgres-exporter": "postgres_exporter", "redis-exporter": "redis_exporter",
    "nginx-exporter": "nginx_exporter", "blackbox-exporter": "blackbox_exporter", "loki": "loki",
    "alloy": "alloy", "grafana": "grafana",
}
#: config path prefix -> service reloaded through its HTTP endpoint
RELOAD = {"prometheus/": ("prometheus", 9090), "alertmanager/": ("alertmanager", 9093)}
#: config path prefix -> service restarted (no reload endpoint that re-reads everything)
RESTART = {"blackbox.yml": "blackbox-exporter", "loki.yaml": "loki", "config.alloy": "alloy", "grafana/": "grafana"}


def _scrape_jobs() -> list[dict]:
    return [
        {"name": "prometheus", "targets": ["localhost:9090"], "path": None},
        {"name": "alertmanager", "targets": ["alertmanager:9093"], "path": None},
        {"name": "order-service", "targets": ["api:8000"], "path": "/metrics"},
        {"name": "node", "targets": ["node-exporter:9100"], "path": None},
        {"name": "cadvisor", "targets": ["cadvisor:8080"], "path": None},
        {"name": "postgres", "targets": ["postgres-exporter:9187"], "path": None},
        {"name": "redis", "targets": ["redis-exporter:9121"], "path": None},
        {"name": "nginx", "targets": ["nginx-exporter:9113"], "path": None},
        {"name": "loki", "targets": ["loki:3100"], "path": None},
        {"name": "alloy", "targets": ["alloy:12345"], "path": None},
        {"name": "grafana", "targets": ["grafana:3000"], "path": None},
    ]


def config_files(settings: HostSettings) -> dict[str, str]:
    """``{path relative to <dir>/config: text}`` of every monitoring configuration file (no secrets)."""
    m = settings.monitoring
    ctx = {"m": m, "host": settings.host, "environment": settings.environment, "domain": settings.domain}
    out = {
        "prometheus/prometheus.yml": render("monitoring/prometheus.yml.j2", jobs=_scrape_jobs(),
                                            probe_url="https://nginx/api/health", **ctx),
        "prometheus/rules/orderops.yml": render("monitoring/rules.yml.j2", **ctx),
        "alertmanager/alertmanager.yml": render("monitoring/alertmanager.yml.j2", **ctx),
        "blackbox.yml": render("monitoring/blackbox.yml.j2", **ctx),
        "loki.yaml": render("monitoring/loki.yaml.j2", **ctx),
        "config.alloy": render("monitoring/config.alloy.j2", **ctx),
        "grafana/provisioning/datasources/orderops.yaml": render("monitoring/grafana/datasources.yaml.j2"),
        "grafana/provisioning/dashboards/orderops.yaml": render("monitoring/grafana/dashboards.yaml.j2"),
    }
    for uid in DASHBOARDS:
        out[f"grafana/dashboards/{uid}.json"] = dashboard_json(uid)
    return out


def compose_text(settings: HostSettings) -> str:
    """The rendered ``compose.yaml`` of the monitoring project."""
    m = settings.monitoring
    if m.images is None:
        raise ValueError("monitoring.images is not set")
    return render("monitoring/compose.yaml.j2", project=m.compose_project, images=m.images.refs(), m=m,
                  textfile_dir=settings.runbook_textfile_dir, pg_monitor_user=PG_MONITOR_USER,
                  stub_status_port=STUB_STATUS_PORT, order_project=settings.compose_project)


def env_text(settings: HostSettings) -> str:
    """The rendered ``.env`` (secrets: never log it)."""
    s = settings.secrets
    return render("monitoring/env.j2", grafana_admin_password=dotenv_quote(s.grafana_admin_password.get_secret_value()),
                  pg_monitor_password=dotenv_quote(s.pg_monitor_password.get_secret_value()),
                  redis_password=dotenv_quote(s.redis_password.get_secret_value()))


def checks(settings: HostSettings) -> list[str]:
    """Shell commands validating a staging copy of ``<dir>/config`` (``{dir}``) with the pinned images."""
    images = settings.monitoring.images.refs()
    run = "docker run --rm --network none --user 0"
    return [
        f"{run} -v {{dir}}/prometheus:/etc/prometheus:ro --entrypoint /bin/promtool {images['prometheus']} "
        "check config /etc/prometheus/prometheus.yml",
        f"{run} -v {{dir}}/prometheus:/etc/prometheus:ro --entrypoint /bin/promtool {images['prometheus']} "
        "check rules /etc/prometheus/rules/orderops.yml",
        f"{run} -v {{dir}}/alertmanager:/etc/alertmanager:ro --entrypoint /bin/amtool {images['alertmanager']} "
        "check-config /etc/alertmanager/alertmanager.yml",
        f"{run} -v {{dir}}/blackbox.yml:/etc/blackbox_exporter/config.yml:ro --entrypoint /bin/blackbox_exporter "
        f"{images['blackbox_exporter']} --config.check --config.file=/etc/blackbox_exporter/config.yml",
        f"{run} -v {{dir}}/loki.yaml:/etc/loki/loki.yaml:ro {images['loki']} -config.file=/etc/loki/loki.yaml -verify-config",
        f"{run} -v {{dir}}/config.alloy:/etc/alloy/config.alloy:ro {images['alloy']} validate /etc/alloy/config.alloy",
    ]


def _changed_prefixes(changed: list[str], table: dict) -> set:
    return {table[p] for p in table for c in changed if c.startswith(p)}


@deploy("monitoring")
def monitoring(settings: HostSettings, upload_dir: str) -> None:
    """Upload, validate and converge the monitoring project; reload or restart what changed."""
    m = settings.monitoring
    root = m.dir
    dc = f"docker compose -p {m.compose_project} --project-directory {root}"
    files.directory(name="Monitoring directory", path=root, mode="755")
    files.directory(name="Monitoring scripts", path=f"{root}/bin", mode="755")
    files.directory(name="Runbook textfile directory", path=settings.runbook_textfile_dir, mode="755")
    env = secret_files.present(name="Monitoring secrets (.env, 0600)", dest=f"{root}/.env",
                               content=env_text(settings), upload_dir=upload_dir)

    # The pg_monitor role postgres-exporter logs in with; password read from .env on the host.
    pg_script = files.put(
        name="pg_monitor role script", src=StringIO(render(
            "monitoring/apply-pg-monitor.sh.j2", order_project=settings.compose_project,
            order_dir=settings.stack_dir, env_file=f"{root}/.env", user=PG_MONITOR_USER,
            read_password=dotenv_read_command(f"{root}/.env", "PG_MONITOR_PASSWORD"))),
        dest=f"{root}/bin/apply-pg-monitor.sh", mode="755")
    role_exists = host.get_fact(PostgresRoleExists, project=settings.compose_project,
                                project_dir=settings.stack_dir, role=PG_MONITOR_USER)
    server.shell(name="pg_monitor role for postgres-exporter", commands=[f"{root}/bin/apply-pg-monitor.sh"],
                 _if=lambda: not role_exists or env.did_change() or pg_script.did_change())

    image_ops.present(name=f"Monitoring images ({settings.image_transport})",
                      refs=sorted(set(m.images.refs().values())), transport=settings.image_transport,
                      upload_dir=upload_dir)

    if m.smtp is not None and m.smtp.username:
        # read by Alertmanager (user nobody) through smtp_auth_password_file
        files.directory(name="Alertmanager secrets directory", path=f"{root}/config/alertmanager/secrets", mode="755")
        secret_files.present(name="SMTP password (0400, nobody)", dest=f"{root}/config/alertmanager/secrets/smtp_password",
                             content=settings.secrets.smtp_password.get_secret_value(), upload_dir=upload_dir,
                             user="nobody", group="nogroup", mode="0400")

    # Configuration: validated against a staging copy before it replaces the running files.
    wanted = config_files(settings)
    changed = validated_config.changed_files(wanted, validated_config.current_hashes(f"{root}/config", wanted))
    config = validated_config.tree(name="Monitoring configuration (validated)", dest=f"{root}/config",
                                   files=wanted, checks=checks(settings))

    compose_file = validated_config.tree(
        name="Monitoring compose.yaml (docker compose config)", dest=root, files={"compose.yaml": compose_text(settings)},
        checks=[f"docker compose -p {m.compose_project} --project-directory {root} --env-file {root}/.env "
                "-f {dir}/compose.yaml config -q"])

    images = {service: m.images.refs()[role] for service, role in SERVICE_IMAGES.items()}
    up = compose.up(name="Monitoring stack converged and healthy", project=m.compose_project, project_dir=root,
                    images=images, wait_timeout=settings.health_timeout)

    for service, port in sorted(_changed_prefixes(changed, RELOAD)):
        server.shell(
            name=f"Reload {service} (POST /-/reload)",
            commands=[f"{dc} exec -T {service} wget -q -O /dev/null --post-data= http://127.0.0.1:{port}/-/reload"],
            _if=config.did_change)
    for service in sorted(_changed_prefixes(changed, RESTART)):
        server.shell(name=f"Restart {service} for its new configuration",
                     commands=[f"{dc} restart {service}"],
                     _if=config.did_change)

    # Grafana's admin password: applied even when the volume already holds a database.
    files.put(name="Grafana admin password script", src=StringIO(render(
        "monitoring/grafana-admin-password.sh.j2", compose=dc, env_file=f"{root}/.env",
        read_password=dotenv_read_command(f"{root}/.env", "GRAFANA_ADMIN_PASSWORD"),
        port=m.loopback_ports["grafana"])), dest=f"{root}/bin/grafana-admin-password.sh", mode="755")
    login = host.get_fact(GrafanaLogin, env_file=f"{root}/.env", port=m.loopback_ports["grafana"])
    server.shell(name="Grafana admin password from the secrets",
                 commands=[f"{root}/bin/grafana-admin-password.sh"],
                 _if=lambda: login != "ok" or env.did_change() or up.did_change() or compose_file.did_change())
