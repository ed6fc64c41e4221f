"""Role ``order_stack``: the Compose project of the order service, PostgreSQL, Redis and nginx.

Files on the host (``stack_dir``; layout :class:`deploys.contract.paths.StackLayout`)::

    compose.yaml            the project as data (:func:`compose_project`), written with yaml.safe_dump
    .env                    secrets for interpolation, mode 0600 (never printed or diffed)
    nginx/orderops.conf     the vhost; nginx/ is nginx's conf.d (read-only), so a replaced file is seen
    tls/                    certificate and key (role ``tls``)
    acme/                   ACME http-01 webroot (certbot, tls_mode acme)
    web/                    front-end releases (deploys/operations/web.py), mounted read-only in nginx

The stack is converged by :func:`deploys.operations.compose.up`, which runs ``up`` only when the
project differs from what runs, and fails naming the unhealthy service when health does not come.
"""

from __future__ import annotations

import posixpath
from io import StringIO
from typing import Any

import yaml
from pyinfra.api import deploy
from pyinfra.operations import server

from deploys.contract.compose import compose_command
from deploys.contract.dotenv import dotenv_quote, dotenv_read_command
from deploys.contract.images import parse_image_ref
from deploys.contract.monitoring import GRAFANA_PUBLIC_PATH, METRICS_PORT, SERVICE_PORTS, STUB_STATUS_PORT, url_host
from deploys.contract.paths import NGINX_WEB_ROOT, WEB_CSP_CONF, StackLayout
from deploys.contract.release import ReleaseRecord, RunningVersion, running_version
from deploys.contract.tls import LETSENCRYPT_DIR
from deploys.contract.services import API_LOG_TAG, ATTACHMENTS_VOLUME, DB_NAME, DB_PORT, DB_PRELOAD_EXTENSIONS, DB_USER, REDIS_PORT, SERVICE_IMAGES
from deploys.operations import compose, postgres, secret_files, web
from deploys.operations.prefetched import files
from deploys.roles.compose_hardening import Hardening, harden
from deploys.operations import nginx as nginx_ops
from deploys.operations import images as image_ops
from inventories.schema import HostSettings
from templates import TEMPLATE_DIR, render

__all__ = [
    "order_stack", "compose_project", "SERVICE_HARDENING", "compose_text", "service_images", "nginx_text", "env_text", "dotenv_quote", "dotenv_read_command",
    "api_environment", "nginx_reload_command", "effective_settings",
]

#: Paths inside the nginx container: the stack's ``nginx/`` directory is its ``conf.d`` (the
#: directory, not the file: a file bind mount keeps the old inode after an atomic replace),
#: ``tls/`` its certificate directory, ``acme/`` the http-01 webroot.
NGINX_CONF_DIR = "/etc/nginx/conf.d"
NGINX_TLS_DIR = "/etc/nginx/tls"
NGINX_ACME_DIR = "/var/www/acme"

def effective_settings(settings: HostSettings, release: ReleaseRecord | None) -> tuple[HostSettings, RunningVersion]:
    """``settings`` with the host's running version applied, and which source won.

    The rule is the contract's (:func:`deploys.contract.release.running_version`): the recorded
    ``order_service`` ref while the inventory still names the ref it named when it was recorded.
    """
    version = running_version(settings.images.order_service, release)
    if version.ref == settings.images.order_service:
        return settings, version
    images = settings.images.model_validate({**settings.images.refs(), "order_service": version.ref})
    return settings.model_copy(update={"images": images}), version


def api_environment(settings: HostSettings) -> dict[str, str]:
    """The order service's environment in compose syntax; secrets stay ``${VAR}`` references."""
    return {
        "ENVIRONMENT": settings.environment,
        "POSTGRES_HOST": "postgres",
        "POSTGRES_PORT": str(DB_PORT),
        "POSTGRES_USER": DB_USER,
        "POSTGRES_DB": DB_NAME,
        "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD missing from .env}",
        "REDIS_HOST": "redis",
        "REDIS_PORT": str(REDIS_PORT),
        "REDIS_PASSWORD": "${REDIS_PASSWORD:?REDIS_PASSWORD missing from .env}",
        "SECRET_KEY": "${SECRET_KEY:?SECRET_KEY missing from .env}",
        "WORKERS": str(settings.service_workers),
        "FORWARDED_ALLOW_IPS": "*",
        # first admin, created by the service at start when missing (the password from the secrets)
        "ADMIN_EMAIL": f"admin@{settings.domain}",
        "ADMIN_PASSWORD": "${ADMIN_PASSWORD:?ADMIN_PASSWORD missing from .env}",
        "CORS_ORIGINS": f"https://{settings.domain}",
        "RATE_LIMIT_USER": str(settings.service_rate_limit_user),
        "RATE_LIMIT_IP": str(settings.service_rate_limit_ip),
        "RATE_LIMIT_WINDOW_SECONDS": str(settings.service_rate_limit_window),
        # attachments on the `attachments` volume (no S3 bucket configured); uploads must fit
        # through nginx's client_max_body_size, minus room for the multipart envelope
        "STORAGE_DIR": "/data/attachments",
        "ATTACHMENT_MAX_BYTES": str(_attachment_limit(settings.nginx_client_max_body_size)),
    }


def _attachment_limit(client_max_body_size: str) -> int:
    """Largest attachment (bytes) that fits in nginx's ``client_max_body_size`` (``512k``, ``1m``, ``1g``)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = client_max_body_size.strip().lower()
    size = int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
    return max(1024, size - 16 * 1024)


def service_images(settings: HostSettings) -> dict[str, str]:
    """``{compose service: image ref}`` of the stack (:data:`deploys.contract.services.SERVICE_IMAGES`)."""
    return {service: getattr(settings.images, field) for service, field in SERVICE_IMAGES.items()}


def _healthcheck(test: list[str], start_period: str) -> dict[str, Any]:
    return {"test": test, "interval": "5s", "timeout": "3s", "retries": 30, "start_period": start_period}


def _metrics_ports(settings: HostSettings) -> list[str]:
    """nginx's ``/metrics`` listener published on this host's address when a monitoring host of its own
    scrapes it (``monitoring_part`` ``agent``; the firewall allows it from the monitoring hosts only), else none."""
    if settings.monitoring_part != "agent":
        return []
    return [f"{url_host(settings.monitoring_address)}:{METRICS_PORT}:{METRICS_PORT}"]


def compose_project(settings: HostSettings) -> dict[str, Any]:
    """The Compose project of the order stack as data (compose-spec.io): services, networks, volumes.

    Secrets are ``${VAR}`` references compose interpolates from ``.env``; ``env_file:`` is avoided
    on purpose (docker/compose#14001: with Compose 2.26 its config hash never matches the
    container label, so nothing converges). ``$$`` is compose's escape for a literal ``$``.
    """
    images = service_images(settings)
    layout = StackLayout(settings.stack_dir)

    def here(path: str) -> str:  # bind mounts relative to the project directory
        return "./" + posixpath.relpath(path, layout.root)

    always = {"restart": "unless-stopped"}
    project = {
        "name": settings.compose_project,
        "services": {
            "postgres": {
                "image": images["postgres"], **always,
                "environment": {
                    "POSTGRES_USER": DB_USER, "POSTGRES_DB": DB_NAME,
                    "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD missing from .env}",
                },
                "volumes": ["pgdata:/var/lib/postgresql/data"],
                # the official image's entrypoint passes `-c` flags to the server (the stand-in too).
                # track_utility off: utility statements (ALTER ROLE ... PASSWORD '...') are kept
                # verbatim, never normalised, and pg_monitor members read the texts
                "command": ["postgres", "-c", f"shared_preload_libraries={','.join(DB_PRELOAD_EXTENSIONS)}",
                            "-c", "pg_stat_statements.track_utility=off"],
                # TCP, not the socket: proves the server accepts network connections.
                "healthcheck": _healthcheck(
                    ["CMD-SHELL", f"pg_isready -h 127.0.0.1 -p {DB_PORT} -U {DB_USER} -d {DB_NAME}"], "20s"),
                "networks": ["backend"],
            },
            "redis": {
                "image": images["redis"], **always,
                "environment": {"REDIS_PASSWORD": "${REDIS_PASSWORD:?REDIS_PASSWORD missing from .env}"},
                # The password stays in the environment, not in the compose file or the container's args.
                # maxmemory + eviction policy from the inventory (redis_maxmemory, redis_maxmemory_policy)
                "command": ["sh", "-c", "exec redis-server --appendonly yes"
                            f" --maxmemory {settings.redis_maxmemory}"
                            f" --maxmemory-policy {settings.redis_maxmemory_policy}"
                            ' --requirepass "$$REDIS_PASSWORD"'],
                "volumes": ["redisdata:/data"],
                "healthcheck": _healthcheck(
                    ["CMD-SHELL", 'REDISCLI_AUTH="$$REDIS_PASSWORD" redis-cli -h 127.0.0.1 ping | grep -q PONG'],
                    "5s"),
                "networks": ["backend"],
            },
            "api": {
                "image": images["api"], **always,
                "environment": api_environment(settings),
                # the journal, tagged: fail2ban's API jail reads refused logins there (deploys/roles/fail2ban.py);
                # `docker logs` and the Docker API still read it
                "logging": {"driver": "journald", "options": {"tag": API_LOG_TAG}},
                "volumes": [f"{ATTACHMENTS_VOLUME}:/data/attachments"],
                "depends_on": {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}},
                "healthcheck": _healthcheck(
                    ["CMD", "python3", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen("
                     "'http://127.0.0.1:8000/api/health', timeout=2).status == 200 else 1)"], "30s"),
                "networks": ["backend", "frontend"],
            },
            "nginx": {
                "image": images["nginx"], **always,
                "ports": ["80:80", "443:443", *_metrics_ports(settings)],
                "volumes": [
                    f"{here(layout.nginx_dir)}:{NGINX_CONF_DIR}:ro", f"{here(layout.tls_dir)}:{NGINX_TLS_DIR}:ro",
                    f"{here(layout.acme_dir)}:{NGINX_ACME_DIR}:ro", f"{here(layout.web_dir)}:{NGINX_WEB_ROOT}:ro",
                    # tls/ then holds symlinks into live/, which point into archive/: the whole tree, same path
                    *([f"{LETSENCRYPT_DIR}:{LETSENCRYPT_DIR}:ro"] if settings.tls_mode == "acme" else []),
                ],
                "depends_on": {"api": {"condition": "service_healthy"}},
                "healthcheck": _healthcheck(["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/443"], "5s"),
                "networks": ["frontend"],
            },
        },
        # PostgreSQL and Redis live on an internal network: no published ports, no route out.
        "networks": {"backend": {"internal": True}, "frontend": {}},
        "volumes": {"pgdata": {}, "redisdata": {}, ATTACHMENTS_VOLUME: {}},
    }
    # the one mechanism both projects share (deploys/roles/compose_hardening.py)
    project["services"] = harden(project["services"], SERVICE_HARDENING, settings.service_limits)
    return project


def compose_text(settings: HostSettings) -> str:
    """``compose.yaml``: :func:`compose_project` written by ``yaml.safe_dump`` under a header comment."""
    header = "# Managed by orderops (deploys/roles/order_stack.py). Secrets come from .env (mode 0600).\n"
    return header + yaml.safe_dump(compose_project(settings), sort_keys=False, default_flow_style=False, width=1000)
#: What each service needs beyond the baseline of :mod:`deploys.roles.compose_hardening`
#: (``cap_drop: [ALL]``, read-only root, no-new-privileges, limits from ``service_limits``).
#: Exceptions, each for a reason:
#:
#: - postgres, redis: their entrypoints start as root to own the data volume (CHOWN, FOWNER,
#:   DAC_OVERRIDE to read a 0700 data dir of another uid) and then drop to the service user with
#:   ``setpriv`` (SETUID, SETGID); the servers themselves run as postgres / redis.
#: - nginx: the master runs as root to read the TLS key and switches workers to ``nginx``
#:   (SETUID, SETGID, CHOWN for its temp dirs); it listens on 80/443 inside the container
#:   (NET_BIND_SERVICE) because the vhost (templates/nginx/) binds those ports.
#: - api: runs as the image's ``orderops`` user with no capability at all.
#: tmpfs: the paths each service writes outside its volumes. No ``user``: postgres, redis and
#: nginx must start as root (above), the api image's USER is already unprivileged.
SERVICE_HARDENING: dict[str, Hardening] = {
    "postgres": Hardening(cap_add=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"),
                          tmpfs=("/tmp", "/var/run/postgresql")),
    "redis": Hardening(cap_add=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"), tmpfs=("/tmp",)),
    "api": Hardening(tmpfs=("/tmp",)),
    "nginx": Hardening(cap_add=("CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"),
                       tmpfs=("/tmp", "/run", "/var/cache/nginx", "/var/lib/nginx", "/var/log/nginx")),
}


def grafana_upstream(settings: HostSettings) -> str | None:
    """``http://grafana:3000`` when nginx serves Grafana under ``/grafana/`` (a monitoring host with
    ``monitoring.grafana_public``; Grafana then joins the frontend network), else ``None``."""
    if "monitoring" in settings.groups and settings.monitoring.grafana_public:
        return f"http://grafana:{SERVICE_PORTS['grafana']}"
    return None


#: Methods the order API serves (FastAPI routes + CORS preflight); nginx refuses others with 405.
API_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: HSTS max-age in seconds: two years (Mozilla's generator; hstspreload.org asks for >= 1 year).
HSTS_MAX_AGE = 63072000
#: Where nginx (in its container) finds the certificate and key (the stack's ``tls/`` mount).
NGINX_CERTIFICATE = f"{NGINX_TLS_DIR}/fullchain.pem"
NGINX_CERTIFICATE_KEY = f"{NGINX_TLS_DIR}/privkey.pem"


def https_port_suffix(port: int) -> str:
    """``""`` for 443, else ``":<port>"``: the port part of an ``https://`` URL."""
    return "" if port == 443 else f":{port}"


def nginx_text(settings: HostSettings, certificate: str = NGINX_CERTIFICATE, certificate_key: str = NGINX_CERTIFICATE_KEY) -> str:
    """The rendered nginx vhost (rate limits, timeouts and body size from ``settings``).

    + certificate, certificate_key: paths inside the nginx container
    """
    limits = {
        "login_rate": settings.nginx_login_rate,
        "login_burst": settings.nginx_login_burst,
        "api_rate": settings.nginx_api_rate,
        "api_burst": settings.nginx_api_burst,
        "client_max_body_size": settings.nginx_client_max_body_size,
        "client_header_timeout": settings.nginx_client_header_timeout,
        "client_body_timeout": settings.nginx_client_body_timeout,
        "send_timeout": settings.nginx_send_timeout,
        "keepalive_timeout": settings.nginx_keepalive_timeout,
        "proxy_connect_timeout": settings.nginx_proxy_connect_timeout,
        "proxy_send_timeout": settings.nginx_proxy_send_timeout,
        "proxy_read_timeout": settings.nginx_proxy_read_timeout,
    }
    return render(
        "nginx/orderops.conf.j2",
        domain=settings.domain,
        limits=limits,
        allowed_methods=API_METHODS,
        hsts_max_age=HSTS_MAX_AGE,
        https_port_suffix=https_port_suffix(settings.https_public_port),
        certificate=certificate,
        certificate_key=certificate_key,
        stub_status_port=STUB_STATUS_PORT,
        metrics_port=METRICS_PORT if settings.monitoring_part == "agent" else None,
        acme_root=NGINX_ACME_DIR,
        grafana_upstream=grafana_upstream(settings),
        grafana_path=GRAFANA_PUBLIC_PATH,
        web_root=NGINX_WEB_ROOT,
        # a glob: no csp.conf yet (no release) is no config error
        web_csp_include=f"{NGINX_WEB_ROOT}/{WEB_CSP_CONF.removesuffix('.conf')}*.conf",
    )


def nginx_reload_command(settings: HostSettings) -> str:
    """Shell command (on the host) that reloads the stack's nginx and returns once the reloaded
    configuration answers: templates/order_stack/nginx-reload.sh run in the nginx container by
    ``docker compose exec``; exit status 1 when nginx refuses the configuration or does not take
    it over within 30 s."""
    lines = (TEMPLATE_DIR / "order_stack" / "nginx-reload.sh").read_text().splitlines()
    script = "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#")) + "\n"
    return compose_command(settings.compose_project, settings.stack_dir, "exec", "-T", "nginx", "sh", "-c", script)


def env_text(settings: HostSettings) -> str:
    """The rendered ``.env`` (contains secrets: never log it)."""
    secrets = {k: dotenv_quote(v.get_secret_value()) for k, v in settings.secrets if v is not None}
    return render("order_stack/env.j2", secrets=secrets)


@deploy("order stack")
def order_stack(settings: HostSettings, upload_dir: str, certificate_op=None) -> None:
    """Upload the project files and converge the stack, waiting for health."""
    root = settings.stack_dir
    layout = StackLayout(root)
    files.directory(name="Stack directory", path=root, mode="755")
    files.directory(name="nginx config directory", path=layout.nginx_dir, mode="755")
    files.directory(name="ACME webroot", path=layout.acme_dir, mode="755")
    files.directory(name="Front-end releases directory", path=layout.web_releases_dir, mode="755")
    secrets = secret_files.present(
        name="Stack secrets (.env, 0600)", dest=layout.env_file, content=env_text(settings), upload_dir=upload_dir,
    )
    files.directory(name="Stack scripts directory", path=layout.bin_dir, mode="755")
    files.put(
        name="Database password rotation script",
        src=StringIO(render(
            "order_stack/apply-db-password.sh.j2", compose=compose_command(settings.compose_project, root),
            db_user=DB_USER, db_name=DB_NAME,
        )),
        dest=layout.db_password_script,
        mode="755",
    )
    # A changed postgres_password must reach the running database before the api uses it.
    server.shell(
        name="Apply a changed database password to the running database",
        commands=[layout.db_password_script],
        _if=secrets.did_change,
    )
    files.put(name="compose.yaml", src=StringIO(compose_text(settings)), dest=layout.compose_file, mode="644")
    # checked by `nginx -t` in the nginx image before it replaces the live file (which stays on failure)
    vhost = nginx_ops.checked_config(
        name="nginx vhost (checked with nginx -t)",
        dest=layout.nginx_conf,
        content=nginx_text(settings),
        image=settings.images.nginx,
        config_path=f"{NGINX_CONF_DIR}/{posixpath.basename(layout.nginx_conf)}",
        mounts={layout.tls_dir: NGINX_TLS_DIR, **({LETSENCRYPT_DIR: LETSENCRYPT_DIR} if settings.tls_mode == "acme" else {})},
    )

    compose.up(
        name="Order stack converged and healthy",
        project=settings.compose_project,
        project_dir=root,
        images=service_images(settings),
        wait_timeout=settings.health_timeout,
    )
    for extension in DB_PRELOAD_EXTENSIONS:
        postgres.extension(name=f"PostgreSQL extension {extension} in {DB_NAME}", extname=extension,
                           project=settings.compose_project, project_dir=root)

    # After compose.up: nginx runs (on a first deploy with the strict default policy, the vhost's
    # CSP include matching nothing yet), so the operation can write the root's csp.conf for the
    # new release, reload nginx and only then switch `current` (deploys/operations/web.py).
    if settings.web_artifact is not None:
        web.release(
            name="Front end release shipped and current (its CSP in force first)",
            artifact=str(settings.web_artifact),
            root=layout.web_dir,
            reload_command=nginx_reload_command(settings),
            keep=settings.web_releases_keep,
        )

    # nginx reads its bind-mounted files at start: reload it when they changed (harmless when
    # compose just recreated it). A front-end release reloads nginx itself, before its switch.
    changed = [vhost] + ([certificate_op] if certificate_op is not None else [])
    server.shell(
        name="Reload nginx for new vhost/certificate",
        commands=[nginx_reload_command(settings)],
        _if=lambda: any(op.did_change() for op in changed),
    )

    ref = parse_image_ref(settings.images.order_service)
    if ref.tag and not ref.digest:
        image_ops.prune(
            name="Prune old order-service versions",
            repository=ref.repository,
            wanted_tag=ref.tag,
            keep=settings.images_keep,
        )
