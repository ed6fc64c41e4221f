"""Role ``order_stack``: the Compose project of the order service, PostgreSQL, Redis and nginx.

Files on the host (``stack_dir``, default ``/opt/orderops``)::

    compose.yaml            rendered from templates/order_stack/compose.yaml.j2
    .env                    secrets for interpolation, mode 0600 (never printed or diffed)
    nginx/orderops.conf     the vhost, bind-mounted read-only into nginx
    tls/                    certificate and key (role ``tls``)
    acme/                   ACME http-01 webroot (certbot, later)

The stack is converged by :func:`deploys.operations.compose.up`, which runs ``up`` only when the
project differs from what runs, and fails naming the unhealthy service when health does not come.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys.operations import compose, secret_files
from deploys.operations import images as image_ops
from inventories.schema import HostSettings
from templates import render

__all__ = [
    "order_stack", "compose_text", "nginx_text", "env_text", "api_environment", "SERVICE_IMAGES", "effective_settings",
]

#: compose service -> Images field
SERVICE_IMAGES = {"api": "order_service", "postgres": "postgres", "redis": "redis", "nginx": "nginx"}


def effective_settings(settings: HostSettings, release: dict | None) -> HostSettings:
    """``settings`` with the host's running release applied (see :mod:`deploys.facts.release`).

    The recorded ``order_service`` ref replaces the inventory's while the inventory still names
    the ref it named when the release was recorded (``inventory_ref``); a changed inventory ref is
    a new release and wins. An invalid recorded ref is ignored.
    """
    if not release or release.get("inventory_ref") != settings.images.order_service:
        return settings
    try:
        images = settings.images.model_validate({**settings.images.refs(), "order_service": release["order_service"]})
    except Exception:  # noqa: BLE001 - a broken record must not break the deploy
        return settings
    return settings.model_copy(update={"images": images})


def api_environment(settings: HostSettings) -> dict[str, str]:
    """The order service's environment in compose syntax; secrets stay ``${VAR}`` references."""
    return {
        "ENVIRONMENT": settings.environment,
        "POSTGRES_HOST": "postgres",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "orderops",
        "POSTGRES_DB": "orders",
        "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD missing from .env}",
        "REDIS_HOST": "redis",
        "REDIS_PORT": "6379",
        "REDIS_PASSWORD": "${REDIS_PASSWORD:?REDIS_PASSWORD missing from .env}",
        "SECRET_KEY": "${SECRET_KEY:?SECRET_KEY missing from .env}",
        "WORKERS": str(settings.service_workers),
        "FORWARDED_ALLOW_IPS": "*",
        # first admin, created by the service at start when missing (the password from the secrets)
        "ADMIN_EMAIL": f"admin@{settings.domain}",
        "ADMIN_PASSWORD": "${ADMIN_PASSWORD:?ADMIN_PASSWORD missing from .env}",
        "CORS_ORIGINS": f"https://{settings.domain}",
        "RATE_LIMIT_USER": "600",
        "RATE_LIMIT_IP": "1200",
        "RATE_LIMIT_WINDOW_SECONDS": "60",
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


#: What each service needs beyond ``cap_drop: [ALL]`` and a read-only root filesystem.
#: Exceptions, each for a reason:
#:
#: - postgres, redis: their entrypoints start as root to own the data volume (CHOWN, FOWNER,
#:   DAC_OVERRIDE to read a 0700 data dir of another uid) and then drop to the service user with
#:   ``setpriv`` (SETUID, SETGID); the servers themselves run as postgres / redis.
#: - nginx: the master runs as root to read the TLS key and switches workers to ``nginx``
#:   (SETUID, SETGID, CHOWN for its temp dirs); it listens on 80/443 inside the container
#:   (NET_BIND_SERVICE) because the vhost (templates/nginx/) binds those ports.
#: - api: runs as the image's ``orderops`` user with no capability at all.
#: tmpfs: the paths each service writes outside its volumes.
SERVICE_HARDENING = {
    "postgres": {"cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"],
                 "tmpfs": ["/tmp", "/var/run/postgresql"]},
    "redis": {"cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"], "tmpfs": ["/tmp"]},
    "api": {"cap_add": [], "tmpfs": ["/tmp"]},
    "nginx": {"cap_add": ["CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"],
              "tmpfs": ["/tmp", "/run", "/var/cache/nginx", "/var/lib/nginx", "/var/log/nginx"]},
}


def container_hardening(settings: HostSettings) -> dict[str, dict]:
    """Per service: ``cap_add``, ``tmpfs`` (:data:`SERVICE_HARDENING`) and the limits from the
    inventory's ``service_limits`` (``memory``, ``cpus``, ``pids``)."""
    out = {}
    for service, fixed in SERVICE_HARDENING.items():
        limits = settings.service_limits[service]
        out[service] = {**fixed, "memory": limits.memory, "cpus": limits.cpus, "pids": limits.pids}
    return out


def compose_text(settings: HostSettings) -> str:
    """The rendered ``compose.yaml``."""
    return render(
        "order_stack/compose.yaml.j2",
        hardening=container_hardening(settings),
        project=settings.compose_project,
        images=settings.images.refs(),
        api_environment={k: _yaml_str(v) for k, v in api_environment(settings).items()},
    )


def nginx_text(settings: HostSettings) -> str:
    """The rendered nginx vhost."""
    return render(
        "nginx/orderops.conf.j2", domain=settings.domain, client_max_body_size=settings.nginx_client_max_body_size,
    )


def env_text(settings: HostSettings) -> str:
    """The rendered ``.env`` (contains secrets: never log it)."""
    secrets = {k: v.get_secret_value() for k, v in settings.secrets}
    return render("order_stack/env.j2", secrets=secrets)


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@deploy("order stack")
def order_stack(settings: HostSettings, upload_dir: str, tls_dir: str, certificate_op=None) -> None:
    """Upload the project files and converge the stack, waiting for health."""
    root = settings.stack_dir
    files.directory(name="Stack directory", path=root, mode="755")
    files.directory(name="nginx config directory", path=f"{root}/nginx", mode="755")
    files.directory(name="ACME webroot", path=f"{root}/acme", mode="755")
    secrets = secret_files.present(
        name="Stack secrets (.env, 0600)", dest=f"{root}/.env", content=env_text(settings), upload_dir=upload_dir,
    )
    files.directory(name="Stack scripts directory", path=f"{root}/bin", mode="755")
    files.put(
        name="Database password rotation script",
        src=StringIO(render("order_stack/apply-db-password.sh.j2", project=settings.compose_project)),
        dest=f"{root}/bin/apply-db-password.sh",
        mode="755",
    )
    # A changed postgres_password must reach the running database before the api uses it.
    server.shell(
        name="Apply a changed database password to the running database",
        commands=[f"{root}/bin/apply-db-password.sh"],
        _if=secrets.did_change,
    )
    files.put(name="compose.yaml", src=StringIO(compose_text(settings)), dest=f"{root}/compose.yaml", mode="644")
    vhost = files.put(
        name="nginx vhost", src=StringIO(nginx_text(settings)), dest=f"{root}/nginx/orderops.conf", mode="644",
    )

    images = {service: getattr(settings.images, field) for service, field in SERVICE_IMAGES.items()}
    compose.up(
        name="Order stack converged and healthy",
        project=settings.compose_project,
        project_dir=root,
        images=images,
        wait_timeout=settings.health_timeout,
    )

    # nginx reads its bind-mounted files at start: reload it when they changed (harmless when
    # compose just recreated it).
    changed = [vhost] + ([certificate_op] if certificate_op is not None else [])
    server.shell(
        name="Reload nginx for new vhost/certificate",
        commands=[f"docker compose -p {settings.compose_project} --project-directory {root} exec -T nginx nginx -s reload"],
        _if=lambda: any(op.did_change() for op in changed),
    )

    repo, _, tag = settings.images.order_service.rpartition(":")
    if "@" not in settings.images.order_service and repo:
        image_ops.prune(
            name="Prune old order-service versions",
            repository=repo,
            wanted_tag=tag,
            keep=settings.images_keep,
        )
