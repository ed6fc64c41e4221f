"""Role ``order_stack``: the Compose project of the order service, PostgreSQL, Redis and nginx.

Files on the host (``stack_dir``, default ``/opt/orderops``)::

    compose.yaml            rendered from templates/order_stack/compose.yaml.j2
    .env                    secrets for interpolation, mode 0600 (never printed or diffed)
    nginx/orderops.conf     the vhost, bind-mounted read-only into nginx
    tls/                    certificate and key (role ``tls``)
    acme/                   ACME http-01 webroot (certbot, later)
    web/                    front-end releases (deploys/operations/web.py), mounted read-only in nginx

The stack is converged by :func:`deploys.operations.compose.up`, which runs ``up`` only when the
project differs from what runs, and fails naming the unhealthy service when health does not come.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys.operations import compose, secret_files, web
from deploys.operations import images as image_ops
from inventories.schema import HostSettings
from templates import render

__all__ = [
    "order_stack", "compose_text", "nginx_text", "env_text", "api_environment", "SERVICE_IMAGES", "effective_settings",
]

#: where nginx sees ``<stack_dir>/web`` (the front end's releases)
WEB_MOUNT = "/srv/web"

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


def compose_text(settings: HostSettings) -> str:
    """The rendered ``compose.yaml``."""
    return render(
        "order_stack/compose.yaml.j2",
        project=settings.compose_project,
        images=settings.images.refs(),
        web_mount=WEB_MOUNT,
        api_environment={k: _yaml_str(v) for k, v in api_environment(settings).items()},
    )


def nginx_text(settings: HostSettings) -> str:
    """The rendered nginx vhost."""
    return render(
        "nginx/orderops.conf.j2", domain=settings.domain, client_max_body_size=settings.nginx_client_max_body_size,
        web_mount=WEB_MOUNT,
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
    files.directory(name="Front-end releases directory", path=f"{root}/web/releases", mode="755")
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

    front_end = None
    if settings.web_artifact is not None:
        front_end = web.release(
            name="Front end release shipped and current",
            artifact=str(settings.web_artifact),
            root=f"{root}/web",
            keep=settings.web_releases_keep,
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
    # compose just recreated it); a new front-end release brings a new CSP include.
    changed = [vhost] + [op for op in (certificate_op, front_end) if op is not None]
    server.shell(
        name="Reload nginx for new vhost/certificate/front end",
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
