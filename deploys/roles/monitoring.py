"""Role ``monitoring``: Prometheus, Alertmanager, exporters, Loki, Alloy and Grafana as their own
Compose project on hosts of inventory group ``monitoring`` (so far: an app host, single layout).

Files on the host (``monitoring.dir``, default ``/opt/orderops-monitoring``)::

    compose.yaml                       the project as data (compose_project), yaml.safe_dump
    .env                               secrets (0600): Grafana admin, pg_monitor role, Redis
    config/prometheus/prometheus.yml   scrape jobs        (promtool check config)
    config/prometheus/rules/orderops.yml  alert rules     (promtool check rules)
    config/alertmanager/alertmanager.yml                  (amtool check-config)
    config/blackbox.yml                                    (blackbox_exporter --config.check)
    config/loki.yaml                                       (loki -verify-config)
    config/config.alloy                                    (alloy validate)
    config/grafana/{provisioning,dashboards}/              datasources, dashboard provider, dashboards
    bin/                               helper scripts (pg_monitor role, Grafana admin password)

Every container is hardened as the order stack's are (:mod:`deploys.roles.compose_hardening`,
:data:`SERVICE_HARDENING`, limits from ``monitoring.service_limits``).

Every config file is validated with the pinned images before it replaces the running one
(:mod:`deploys.operations.validated_config`); ``docker compose config`` checks the project.
Prometheus and Alertmanager reload through ``POST /-/reload`` when only their files changed; Loki,
Alloy, blackbox and Grafana are restarted when theirs did. The Grafana admin password from the
secrets is applied even on an existing Grafana volume (Grafana ignores GF_SECURITY_ADMIN_PASSWORD
there): ``grafana cli admin reset-admin-password --password-from-stdin`` when the inventory password
does not log in.
"""

from __future__ import annotations

import posixpath
from io import StringIO
from typing import Any

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from deploys.contract.compose import compose_command
from deploys.contract.monitoring import (
    AGENT_PUBLISHED, GRAFANA_PUBLIC_PATH, LOKI_PUSH_PORT, METRICS_PORT, PART_SERVICES, PG_MONITOR_USER, SERVICE_IMAGES,
    SERVICE_PORTS, STUB_STATUS_PORT, MonitoringLayout, url_host,
)
from deploys.contract.services import DB_NAME, DB_PORT, DB_USER, REDIS_PORT
from deploys.facts.monitoring import GrafanaLogin, PostgresRoleExists
from deploys.operations import compose, secret_files, validated_config
from deploys.operations import images as image_ops
from deploys.operations.prefetched import files
from deploys.roles.compose_hardening import Hardening, harden
from deploys.contract.dotenv import dotenv_quote, dotenv_read_command
from inventories.schema import HostSettings
from templates import render
from templates.monitoring.grafana.dashboards import DASHBOARDS, dashboard_json

__all__ = ["monitoring", "config_files", "compose_project", "compose_text", "env_text", "checks", "grafana_root_url",
           "RELOAD", "RESTART", "SERVICE_HARDENING", "NOBODY", "ROOT_SERVICES"]

#: config path prefix -> service reloaded through its HTTP endpoint
RELOAD = {"prometheus/": ("prometheus", SERVICE_PORTS["prometheus"]),
          "alertmanager/": ("alertmanager", SERVICE_PORTS["alertmanager"])}
#: config path prefix -> service restarted (no reload endpoint that re-reads everything)
RESTART = {"blackbox.yml": "blackbox-exporter", "loki.yaml": "loki", "config.alloy": "alloy", "grafana/": "grafana"}


def _scrape_jobs(settings: HostSettings) -> list[dict]:
    """Scrape jobs: ``{"name", "groups": [{"targets": ["host:port"], "host": label}], "path"}``.

    The project's own services on its network (labelled with this host), and on a ``server``
    the exporters and nginx's ``/metrics`` listener of every app host at its address
    (``monitoring.app_hosts``, labelled with the app host's name).
    """
    server = settings.monitoring_part == "server"
    own = _services(settings)

    def here(*targets: str) -> list[dict]:
        return [{"targets": list(targets), "host": settings.host}]

    def at(service: str) -> list[dict]:
        groups = _remote(settings, SERVICE_PORTS[service]) if server and service in AGENT_PUBLISHED else []
        return groups + (here(f"{service}:{SERVICE_PORTS[service]}") if service in own else [])

    jobs = [
        {"name": "prometheus", "groups": here(f"localhost:{SERVICE_PORTS['prometheus']}"), "path": None},
        {"name": "alertmanager", "groups": at("alertmanager"), "path": None},
        {"name": "order-service", "path": "/metrics",
         "groups": _remote(settings, METRICS_PORT) if server else here("api:8000")},
    ]
    for name, service in (("node", "node-exporter"), ("cadvisor", "cadvisor"), ("postgres", "postgres-exporter"),
                          ("redis", "redis-exporter"), ("nginx", "nginx-exporter"), ("loki", "loki"),
                          ("alloy", "alloy"), ("grafana", "grafana")):
        jobs.append({"name": name, "groups": at(service), "path": None})
    return jobs


def _host_port(address: str, port: int) -> str:
    """``address:port`` for a URL or a scrape target (IPv6 in brackets)."""
    return f"{url_host(address)}:{port}"


def _remote(settings: HostSettings, port: int) -> list[dict]:
    """One scrape group per app host of a ``server``: its address and ``port``, labelled with its name."""
    return [{"targets": [_host_port(address, port)], "host": name}
            for name, address in sorted(settings.monitoring.app_hosts.items())]


def _probes(settings: HostSettings) -> list[dict]:
    """Blackbox probes of the public readiness endpoint: nginx on the compose network, or each app host's address."""
    if settings.monitoring_part == "server":
        return [{"url": f"https://{url_host(address)}/api/health", "host": name}
                for name, address in sorted(settings.monitoring.app_hosts.items())]
    return [{"url": "https://nginx/api/health", "host": settings.host}]


def _loki_push_url(settings: HostSettings) -> str:
    """Where Alloy pushes: Loki on the project network, or on an ``agent`` the first monitoring host's address."""
    if settings.monitoring_part == "agent":
        address = next(iter(settings.monitoring.monitoring_hosts.values()))
        return f"http://{_host_port(address, LOKI_PUSH_PORT)}/loki/api/v1/push"
    return f"http://loki:{SERVICE_PORTS['loki']}/loki/api/v1/push"


#: config file (relative to config/) -> the service that reads it
_CONFIG_SERVICE = {"prometheus/": "prometheus", "alertmanager/": "alertmanager", "blackbox.yml": "blackbox-exporter",
                   "loki.yaml": "loki", "config.alloy": "alloy", "grafana/": "grafana"}


def config_files(settings: HostSettings) -> dict[str, str]:
    """``{path relative to <dir>/config: text}`` of every monitoring configuration file (no secrets)."""
    m = settings.monitoring
    ctx = {"m": m, "host": settings.host, "environment": settings.environment, "domain": settings.domain}
    out = {
        "prometheus/prometheus.yml": render("monitoring/prometheus.yml.j2", jobs=_scrape_jobs(settings),
                                            probes=_probes(settings), **ctx),
        "prometheus/rules/orderops.yml": render("monitoring/rules.yml.j2", **ctx),
        "alertmanager/alertmanager.yml": render("monitoring/alertmanager.yml.j2", **ctx),
        "blackbox.yml": render("monitoring/blackbox.yml.j2", **ctx),
        "loki.yaml": render("monitoring/loki.yaml.j2", **ctx),
        "config.alloy": render("monitoring/config.alloy.j2", loki_push_url=_loki_push_url(settings), **ctx),
        "grafana/provisioning/datasources/orderops.yaml": render("monitoring/grafana/datasources.yaml.j2"),
        "grafana/provisioning/dashboards/orderops.yaml": render("monitoring/grafana/dashboards.yaml.j2"),
    }
    for uid in DASHBOARDS:
        out[f"grafana/dashboards/{uid}.json"] = dashboard_json(uid)
    return {path: text for path, text in out.items() if _reader(path) in _services(settings)}


def _reader(path: str) -> str:
    """The service that reads config file ``path`` (relative to config/)."""
    return next(service for prefix, service in _CONFIG_SERVICE.items() if path.startswith(prefix))


def _services(settings: HostSettings) -> tuple[str, ...]:
    """The compose services of this host's part of the project (``all`` when it is no monitoring host)."""
    return PART_SERVICES[settings.monitoring_part or "all"]


def _health(port: int, path: str) -> dict[str, Any]:
    """A wget healthcheck on ``127.0.0.1:<port><path>``: the official prom/*, postgres-exporter,
    cAdvisor and Grafana images carry busybox or Alpine's wget, Loki's distroless ``:debug`` base
    has busybox on its PATH (grafana/loki cmd/loki/Dockerfile); Alloy has none (:func:`_alloy_health`)
    and the ``FROM scratch`` exporters nothing at all (``NO_PROBE_SERVICES``: no healthcheck)."""
    return {"test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"],
            "interval": "10s", "timeout": "3s", "retries": 30, "start_period": "10s"}


#: ``uid:gid`` of ``nobody``: the user of the official prom/prometheus, prom/alertmanager,
#: prom/node-exporter and postgres-exporter images, and of every Debian-built local image
#: (images/monitoring-{prometheus,alertmanager,exporters}).
NOBODY = "65534:65534"

#: Services that run as uid 0 (documented exceptions below); every other one runs unprivileged.
ROOT_SERVICES = ("cadvisor", "alloy")

#: What each monitoring service needs beyond the baseline of :mod:`deploys.roles.compose_hardening`
#: (``cap_drop: [ALL]``, read-only root, no-new-privileges, limits from ``monitoring.service_limits``).
#: ``user`` is the official image's own user wherever the service writes a volume, so the volume's
#: files (created by that image) stay its own; stateless exporters run as ``nobody`` whatever their
#: image says (they write nothing). No service adds a capability back. Only Grafana needs a
#: tmpfs: every other service writes only its volume (Prometheus /prometheus, Alertmanager
#: /alertmanager, Loki /loki, Alloy /var/lib/alloy/data) or nothing at all.
#:
#: Exceptions, each for a reason:
#:
#: - node-exporter: ``pid: host`` and the host's ``/`` mounted read-only at ``/host`` (CIS 5.5,
#:   5.15): it reports the host, not its container (mounted filesystems, the host's /proc, the
#:   runbooks' textfile directory). As nobody with no capability it reads only what any user may.
#: - cadvisor: uid 0 (CIS 4.1) with the Docker socket, ``/sys`` and ``/var/lib/docker`` mounted
#:   read-only (5.5, 5.31): it reads every container's cgroup and layer data, and
#:   ``/var/lib/docker`` is root's (0710) and the socket root:docker 0660, so uid 0 owns both
#:   and needs no capability. Not added: DAC_READ_SEARCH, so a layer directory of another owner
#:   closed to others (rare in images) is left out of that container's disk usage; and cAdvisor's
#:   README's ``--privileged`` with ``/dev/kmsg`` (no OOM events from the kernel log, no
#:   ``--enable_metrics=process``). The local stand-in reads the Docker API only; the setting is
#:   the official image's.
#: - alloy: uid 0 with the Docker socket (5.31): ``loki.source.docker`` reads container logs
#:   through the Docker API (root:docker 0660; the docker group's gid is the host's and not known
#:   when compose.yaml is first written, and grafana/alloy's Dockerfile calls its non-root mode
#:   experimental). The socket is root on the host whatever the uid, hence the exception. Group 473
#:   (the image's ``alloy`` group) owns its storage ``/var/lib/alloy/data`` 0770 in the official
#:   image, so uid 0 writes it through the group, without DAC_OVERRIDE. The stand-in's directory
#:   is root's.
#: - blackbox-exporter: no NET_RAW, as its only module is HTTP (templates/monitoring/blackbox.yml.j2);
#:   an ``icmp`` module would need it.
#: - grafana: uid 472, gid 0, the official image's (it owns /var/lib/grafana as 472:0, as the
#:   stand-in does); /tmp as tmpfs for SQLite's temporary files and plugin downloads. The official
#:   run.sh logs to the console (``cfg:default.log.mode=console``), nothing to /var/log/grafana.
#: - loki: uid 10001, the official image's owner of /loki (the stand-in's too).
#: - redis-exporter (official image: 59000:59000), nginx-exporter (1001:1001) and
#:   blackbox-exporter (6170:0) run as nobody: they write nothing, so the uid only has to be
#:   unprivileged.
SERVICE_HARDENING: dict[str, Hardening] = {
    "prometheus": Hardening(user=NOBODY),
    "alertmanager": Hardening(user=NOBODY),
    "node-exporter": Hardening(user=NOBODY),
    "cadvisor": Hardening(user="0:0"),
    "postgres-exporter": Hardening(user=NOBODY),
    "redis-exporter": Hardening(user=NOBODY),
    "nginx-exporter": Hardening(user=NOBODY),
    "blackbox-exporter": Hardening(user=NOBODY),
    "loki": Hardening(user="10001:10001"),
    "alloy": Hardening(user="0:473"),
    "grafana": Hardening(user="472:0", tmpfs=("/tmp",)),
}


def _alloy_health(port: int) -> dict[str, Any]:
    """Alloy's ``/-/ready`` through bash's ``/dev/tcp``: the official grafana/alloy image (Ubuntu)
    has bash, head and grep but no wget (the stand-in has all of them)."""
    probe = (f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /-/ready HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3"
             " && head -n 1 <&3 | grep -q ' 200 '")
    return {**_health(port, "/-/ready"), "test": ["CMD", "bash", "-c", probe]}


def grafana_root_url(settings: HostSettings) -> str:
    """Grafana's ``GF_SERVER_ROOT_URL``: ``https://<domain>/grafana/`` when nginx serves it, else the tunnel URL."""
    m = settings.monitoring
    if m.grafana_public:
        return f"https://{settings.domain}{GRAFANA_PUBLIC_PATH}"
    return f"http://127.0.0.1:{m.loopback_ports['grafana']}/"


def _grafana_local_url(settings: HostSettings) -> str:
    """Grafana's API on the monitoring host's loopback (with the sub-path when nginx serves it)."""
    m = settings.monitoring
    return f"http://127.0.0.1:{m.loopback_ports['grafana']}" + (GRAFANA_PUBLIC_PATH.rstrip("/") if m.grafana_public else "")


def compose_project(settings: HostSettings) -> dict[str, Any]:
    """The monitoring Compose project as data (compose-spec.io): services, networks, volumes.

    Prometheus and the exporters join the order stack's networks (``<order project>_backend`` /
    ``_frontend``, compose's ``<project>_<network>`` naming) to scrape it; nothing is published
    except :data:`~deploys.contract.monitoring.LOOPBACK_SERVICES` on 127.0.0.1. Grafana joins the
    order stack's frontend network only when nginx serves it (``monitoring.grafana_public``).
    Secrets are ``${VAR}`` references compose interpolates from ``.env`` (no ``env_file:``,
    docker/compose#14001). Raises ``ValueError`` when ``monitoring.images`` is unset.
    """
    m = settings.monitoring
    if m.images is None:
        raise ValueError("monitoring.images is not set")
    refs = m.images.refs()
    layout = MonitoringLayout(m.dir)
    cfg = layout.here(layout.config_dir)
    port = SERVICE_PORTS
    always = {"restart": "unless-stopped"}
    backend, frontend = "order_backend", "order_frontend"
    part = settings.monitoring_part or "all"
    app = part != "server"  # the order stack's networks exist here
    address = settings.monitoring_address

    def svc(name: str, **spec: Any) -> dict[str, Any]:
        return {"image": refs[SERVICE_IMAGES[name]], **always, **spec}

    def loopback(name: str, *published: str) -> dict[str, Any]:
        return {"ports": [f"127.0.0.1:{m.loopback_ports[name]}:{port[name]}", *published]}

    def at_address(name: str, host_port: int | None = None) -> dict[str, Any]:
        """Published on this host's address for the other side of a split stack (firewalled to its addresses)."""
        return {"ports": [f"{url_host(address)}:{host_port or port[name]}:{port[name]}"]}

    def published(name: str) -> dict[str, Any]:
        return at_address(name) if part == "agent" and name in AGENT_PUBLISHED else {}

    services = {
        "prometheus": svc(
            "prometheus",
            command=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                     f"--storage.tsdb.retention.time={m.retention_time}",
                     f"--storage.tsdb.retention.size={m.retention_size}",
                     "--web.enable-lifecycle", f"--rules.alert.resend-delay={m.resend_delay_s}s"],
            volumes=[f"{cfg}/prometheus:/etc/prometheus:ro", "promdata:/prometheus"],
            **loopback("prometheus"), healthcheck=_health(port["prometheus"], "/-/ready"),
            networks=["monitoring", backend, frontend] if app else ["monitoring"]),
        "alertmanager": svc(
            "alertmanager",
            command=["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager",
                     "--cluster.listen-address="],
            volumes=[f"{cfg}/alertmanager:/etc/alertmanager:ro", "amdata:/alertmanager"],
            **loopback("alertmanager"), healthcheck=_health(port["alertmanager"], "/-/ready"),
            networks=["monitoring"]),
        "node-exporter": svc(
            "node-exporter", entrypoint=["/bin/node_exporter"],
            command=["--path.rootfs=/host", f"--collector.textfile.directory=/host{settings.runbook_textfile_dir}"],
            pid="host", volumes=["/:/host:ro"], healthcheck=_health(port["node-exporter"], "/metrics"),
            **published("node-exporter"), networks=["monitoring"]),
        "cadvisor": svc(
            "cadvisor",
            command=["--docker_only=true", "--housekeeping_interval=10s", "--store_container_labels=true"],
            volumes=["/var/run/docker.sock:/var/run/docker.sock:ro", "/sys:/sys:ro", "/var/lib/docker:/var/lib/docker:ro"],
            healthcheck=_health(port["cadvisor"], "/healthz"), **published("cadvisor"), networks=["monitoring"]),
        "postgres-exporter": svc(
            "postgres-exporter", entrypoint=["/bin/postgres_exporter"],
            environment={"DATA_SOURCE_NAME": (
                f"postgresql://{PG_MONITOR_USER}:${{PG_MONITOR_PASSWORD:?PG_MONITOR_PASSWORD missing from .env}}"
                f"@postgres:{DB_PORT}/{DB_NAME}?sslmode=disable")},
            healthcheck=_health(port["postgres-exporter"], "/metrics"), **published("postgres-exporter"),
            networks=["monitoring", backend]),
        "redis-exporter": svc(
            "redis-exporter", entrypoint=["/redis_exporter"],
            environment={"REDIS_ADDR": f"redis://redis:{REDIS_PORT}",
                         "REDIS_PASSWORD": "${REDIS_PASSWORD:?REDIS_PASSWORD missing from .env}"},
            **published("redis-exporter"), networks=["monitoring", backend]),  # no healthcheck: NO_PROBE_SERVICES
        "nginx-exporter": svc(
            "nginx-exporter", entrypoint=["/usr/bin/nginx-prometheus-exporter"],
            command=[f"--nginx.scrape-uri=http://nginx:{STUB_STATUS_PORT}/stub_status"],
            **published("nginx-exporter"), networks=["monitoring", frontend]),  # no healthcheck: NO_PROBE_SERVICES
        "blackbox-exporter": svc(
            "blackbox-exporter", entrypoint=["/bin/blackbox_exporter"],
            command=["--config.file=/etc/blackbox_exporter/config.yml"],
            volumes=[f"{cfg}/blackbox.yml:/etc/blackbox_exporter/config.yml:ro"],
            healthcheck=_health(port["blackbox-exporter"], "/-/healthy"),
            networks=["monitoring", frontend] if app else ["monitoring"]),
        "loki": svc(
            "loki", command=["-config.file=/etc/loki/loki.yaml"],
            volumes=[f"{cfg}/loki.yaml:/etc/loki/loki.yaml:ro", "lokidata:/loki"],
            **loopback("loki", *(at_address("loki", LOKI_PUSH_PORT)["ports"] if part == "server" else [])),
            healthcheck=_health(port["loki"], "/ready"), networks=["monitoring"]),
        "alloy": svc(
            "alloy",
            command=["run", "/etc/alloy/config.alloy", "--storage.path=/var/lib/alloy/data",
                     f"--server.http.listen-addr=0.0.0.0:{port['alloy']}"],
            volumes=[f"{cfg}/config.alloy:/etc/alloy/config.alloy:ro", "/var/run/docker.sock:/var/run/docker.sock:ro",
                     "alloydata:/var/lib/alloy/data"],
            healthcheck=_alloy_health(port["alloy"]),
            # on an agent Loki is on the monitoring host: Alloy retries its pushes until it answers
            **({} if part == "agent" else {"depends_on": {"loki": {"condition": "service_healthy"}}}),
            networks=["monitoring"]),
        "grafana": svc(
            "grafana",
            environment={
                # applied by Grafana only when its database is new; the deploy resets it on an existing one
                "GF_SECURITY_ADMIN_USER": "admin",
                "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?GRAFANA_ADMIN_PASSWORD missing from .env}",
                "GF_AUTH_ANONYMOUS_ENABLED": "false",
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_ANALYTICS_REPORTING_ENABLED": "false",
                "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
                "GF_SERVER_ROOT_URL": grafana_root_url(settings),
                "GF_SERVER_SERVE_FROM_SUB_PATH": "true" if m.grafana_public else "false",
            },
            volumes=[f"{cfg}/grafana/provisioning:/etc/grafana/provisioning:ro",
                     f"{cfg}/grafana/dashboards:/var/lib/grafana-dashboards:ro", "grafanadata:/var/lib/grafana"],
            **loopback("grafana"),
            # with serve_from_sub_path Grafana answers under the sub-path only
            healthcheck=_health(port["grafana"], (GRAFANA_PUBLIC_PATH.rstrip("/") if m.grafana_public else "") + "/api/health"),
            networks=["monitoring", frontend] if m.grafana_public else ["monitoring"]),
    }
    services = {name: spec for name, spec in services.items() if name in PART_SERVICES[part]}
    networks: dict[str, Any] = {"monitoring": {}}
    if app:
        networks[backend] = {"external": True, "name": f"{settings.compose_project}_backend"}
        networks[frontend] = {"external": True, "name": f"{settings.compose_project}_frontend"}
    volumes = {"promdata": "prometheus", "amdata": "alertmanager", "lokidata": "loki", "alloydata": "alloy",
               "grafanadata": "grafana"}
    return {
        "name": m.compose_project,
        # the one mechanism both projects share (deploys/roles/compose_hardening.py)
        "services": harden(services, SERVICE_HARDENING, m.service_limits),
        "networks": networks,
        "volumes": {v: {} for v, service in volumes.items() if service in services},
    }


def compose_text(settings: HostSettings) -> str:
    """``compose.yaml``: :func:`compose_project` written by ``yaml.safe_dump`` under a header comment."""
    header = ("# Managed by orderops (deploys/roles/monitoring.py). Its own Compose project beside the order stack;\n"
              "# nothing is published except on 127.0.0.1 (SSH tunnel targets). Secrets come from .env (0600).\n")
    if settings.monitoring_part in ("server", "agent"):
        header = (f"# Managed by orderops (deploys/roles/monitoring.py). Part '{settings.monitoring_part}' of the monitoring\n"
                  "# stack split over hosts: published on 127.0.0.1 and on this host's address, which the firewall\n"
                  "# opens to the other side's addresses only. Secrets come from .env (0600).\n")
    return header + yaml.safe_dump(compose_project(settings), sort_keys=False, default_flow_style=False, width=1000)


def env_text(settings: HostSettings) -> str:
    """The rendered ``.env`` (secrets: never log it)."""
    s = settings.secrets
    services = _services(settings)
    grafana = dotenv_quote(s.grafana_admin_password.get_secret_value()) if "grafana" in services else None
    postgres = "postgres-exporter" in services
    return render("monitoring/env.j2", grafana_admin_password=grafana,
                  pg_monitor_password=dotenv_quote(s.pg_monitor_password.get_secret_value()) if postgres else None,
                  redis_password=dotenv_quote(s.redis_password.get_secret_value()) if postgres else None)


def checks(settings: HostSettings) -> list[str]:
    """Shell commands validating a staging copy of ``<dir>/config`` (``{dir}``) with the pinned images."""
    images = settings.monitoring.images.refs()
    run = "docker run --rm --network none --user 0"
    readers = ("prometheus", "prometheus", "alertmanager", "blackbox-exporter", "loki", "alloy")
    services = _services(settings)
    return [check for check, reader in zip([
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
    ], readers, strict=True) if reader in services]


def _changed_prefixes(changed: list[str], table: dict) -> set:
    return {table[p] for p in table for c in changed if c.startswith(p)}


@deploy("monitoring")
def monitoring(settings: HostSettings, upload_dir: str) -> None:
    """Upload, validate and converge this host's part of the monitoring project (``monitoring_part``:
    every service, the ``server``'s or the ``agent``'s); reload or restart what changed."""
    m = settings.monitoring
    layout = MonitoringLayout(m.dir)
    root = layout.root
    dc = compose_command(m.compose_project, root)
    services = _services(settings)
    refs = m.images.refs()
    files.directory(name="Monitoring directory", path=root, mode="755")
    files.directory(name="Monitoring scripts", path=layout.bin_dir, mode="755")
    files.directory(name="Runbook textfile directory", path=settings.runbook_textfile_dir, mode="755")
    env = secret_files.present(name="Monitoring secrets (.env, 0600)", dest=layout.env_file,
                               content=env_text(settings), upload_dir=upload_dir)

    if "postgres-exporter" in services:
        _pg_monitor_role(settings, layout, env)

    image_ops.present(name=f"Monitoring images ({settings.image_transport})",
                      refs=sorted({refs[SERVICE_IMAGES[service]] for service in services}),
                      transport=settings.image_transport, upload_dir=upload_dir)

    if "alertmanager" in services and m.smtp is not None and m.smtp.username:
        # read by Alertmanager (user nobody) through smtp_auth_password_file
        files.directory(name="Alertmanager secrets directory", path=posixpath.dirname(layout.smtp_password_file), mode="755")
        secret_files.present(name="SMTP password (0400, nobody)", dest=layout.smtp_password_file,
                             content=settings.secrets.smtp_password.get_secret_value(), upload_dir=upload_dir,
                             user="nobody", group="nogroup", mode="0400")

    # Configuration: validated against a staging copy before it replaces the running files.
    wanted = config_files(settings)
    changed = validated_config.changed_files(wanted, validated_config.current_hashes(layout.config_dir, wanted))
    config = validated_config.tree(name="Monitoring configuration (validated)", dest=layout.config_dir,
                                   files=wanted, checks=checks(settings))

    compose_file = validated_config.tree(
        name="Monitoring compose.yaml (docker compose config)", dest=root, files={"compose.yaml": compose_text(settings)},
        checks=[compose_command(m.compose_project, root, "--env-file", layout.env_file) + " -f {dir}/compose.yaml config -q"])

    images = {service: refs[SERVICE_IMAGES[service]] for service in services}
    up = compose.up(name="Monitoring stack converged and healthy", project=m.compose_project, project_dir=root,
                    images=images, wait_timeout=settings.health_timeout)

    for service, port in sorted(_changed_prefixes(changed, RELOAD)):
        server.shell(
            name=f"Reload {service} (POST /-/reload)",
            commands=[f"{dc} exec -T {service} wget -q -O /dev/null --post-data= http://127.0.0.1:{port}/-/reload"],
            _if=config.did_change)
    # `restart` returns before the service's healthcheck passes: wait for health as `up` does, so
    # the deploy ends healthy and an immediate next converge finds nothing to wait for (0 changes)
    for service in sorted(_changed_prefixes(changed, RESTART)):
        server.shell(name=f"Restart {service} for its new configuration",
                     commands=[f"{dc} restart {service}",
                               compose.up_command(m.compose_project, root, settings.health_timeout)],
                     _if=config.did_change)

    if "grafana" in services:
        _grafana_admin_password(settings, layout, env, up, compose_file)


def _pg_monitor_role(settings: HostSettings, layout: MonitoringLayout, env) -> None:
    """The pg_monitor role postgres-exporter logs in with; password read from .env on the host."""
    pg_script = files.put(
        name="pg_monitor role script", src=StringIO(render(
            "monitoring/apply-pg-monitor.sh.j2",
            order_compose=compose_command(settings.compose_project, settings.stack_dir), env_file=layout.env_file, user=PG_MONITOR_USER,
            db_user=DB_USER, db_name=DB_NAME,
            read_password=dotenv_read_command(layout.env_file, "PG_MONITOR_PASSWORD"))),
        dest=layout.pg_monitor_script, mode="755")
    role_exists = host.get_fact(PostgresRoleExists, project=settings.compose_project,
                                project_dir=settings.stack_dir, role=PG_MONITOR_USER)
    server.shell(name="pg_monitor role for postgres-exporter", commands=[layout.pg_monitor_script],
                 _if=lambda: not role_exists or env.did_change() or pg_script.did_change())


def _grafana_admin_password(settings: HostSettings, layout: MonitoringLayout, env, up, compose_file) -> None:
    """Grafana's admin password: applied even when the volume already holds a database."""
    dc = compose_command(settings.monitoring.compose_project, layout.root)
    files.put(name="Grafana admin password script", src=StringIO(render(
        "monitoring/grafana-admin-password.sh.j2", compose=dc, env_file=layout.env_file,
        read_password=dotenv_read_command(layout.env_file, "GRAFANA_ADMIN_PASSWORD"),
        url=_grafana_local_url(settings))), dest=layout.grafana_password_script, mode="755")
    login = host.get_fact(GrafanaLogin, env_file=layout.env_file, url=_grafana_local_url(settings))
    server.shell(name="Grafana admin password from the secrets",
                 commands=[layout.grafana_password_script],
                 _if=lambda: login != "ok" or env.did_change() or up.did_change() or compose_file.did_change())
