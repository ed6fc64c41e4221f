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

__all__ = ["order_stack", "compose_text", "nginx_text", "env_text", "api_environment", "SERVICE_IMAGES"]

#: compose service -> Images field
SERVICE_IMAGES = {"api": "order_service", "postgres": "postgres", "redis": "redis", "nginx": "nginx"}


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
    }


def compose_text(settings: HostSettings) -> str:
    """The rendered ``compose.yaml``."""
    return render(
        "order_stack/compose.yaml.j2",
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
    secret_files.present(
        name="Stack secrets (.env, 0600)", dest=f"{root}/.env", content=env_text(settings), upload_dir=upload_dir,
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
