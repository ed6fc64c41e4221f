"""Role ``order_stack``: the Compose project of the order service, PostgreSQL, Redis and nginx.

Files on the host (``stack_dir``, default ``/opt/orderops``)::

    compose.yaml            rendered from templates/order_stack/compose.yaml.j2
    .env                    secrets for interpolation, mode 0600 (never printed or diffed)
    nginx/orderops.conf     the vhost; nginx/ is nginx's conf.d (read-only), so a replaced file is seen
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
from deploys.operations import nginx as nginx_ops
from deploys.operations import images as image_ops
from inventories.schema import HostSettings
from templates import render

__all__ = [
    "order_stack", "compose_text", "nginx_text", "env_text", "dotenv_quote", "api_environment", "SERVICE_IMAGES", "effective_settings",
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


def compose_text(settings: HostSettings) -> str:
    """The rendered ``compose.yaml``."""
    return render(
        "order_stack/compose.yaml.j2",
        project=settings.compose_project,
        images=settings.images.refs(),
        api_environment={k: _yaml_str(v) for k, v in api_environment(settings).items()},
    )


#: Methods the order API serves (FastAPI routes + CORS preflight); nginx refuses others with 405.
API_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: HSTS max-age in seconds: two years (Mozilla's generator; hstspreload.org asks for >= 1 year).
HSTS_MAX_AGE = 63072000
#: Where nginx (in its container) finds the certificate and key (the stack's ``tls/`` mount).
NGINX_CERTIFICATE = "/etc/nginx/tls/fullchain.pem"
NGINX_CERTIFICATE_KEY = "/etc/nginx/tls/privkey.pem"


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
    )


def dotenv_quote(value: str) -> str:
    r"""``value`` as a double-quoted ``.env`` value that Compose reads back unchanged.

    Compose's dotenv parser (compose-go) unescapes ``\\`` ``\"`` ``\$`` (and ``\n`` etc.) inside
    double quotes and interpolates a bare ``$``; escaping backslash first, then ``"`` and ``$``
    leaves every other printable character literal (checked with ``docker compose config``
    2.26 in tests/unit/templates). Single quotes cannot hold a ``'`` at all.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def env_text(settings: HostSettings) -> str:
    """The rendered ``.env`` (contains secrets: never log it)."""
    secrets = {k: dotenv_quote(v.get_secret_value()) for k, v in settings.secrets}
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
    # checked by `nginx -t` in the nginx image before it replaces the live file (which stays on failure)
    vhost = nginx_ops.checked_config(
        name="nginx vhost (checked with nginx -t)",
        dest=f"{root}/nginx/orderops.conf",
        content=nginx_text(settings),
        image=settings.images.nginx,
        config_path="/etc/nginx/conf.d/orderops.conf",
        mounts={tls_dir: "/etc/nginx/tls"},
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
