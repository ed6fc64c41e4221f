"""The order stack's services: names, the image each runs, the health rule, the database identity."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SERVICE_IMAGES", "SERVICES", "DB_USER", "DB_NAME", "DB_PRELOAD_EXTENSIONS", "DB_PORT", "REDIS_PORT", "ATTACHMENTS_VOLUME", "volume_name", "is_up", "NO_HEALTHCHECK"]

#: compose service -> the ``images`` field (inventory) of the image it runs.
SERVICE_IMAGES: Mapping[str, str] = {"api": "order_service", "postgres": "postgres", "redis": "redis", "nginx": "nginx"}
#: The compose services of the order stack.
SERVICES: tuple[str, ...] = tuple(SERVICE_IMAGES)

#: PostgreSQL role and database of the order service.
DB_USER = "orderops"
DB_NAME = "orders"
#: Extensions PostgreSQL preloads (``shared_preload_libraries``) and the deploy creates in
#: ``DB_NAME``: ``pg_stat_statements`` (per-statement timings, read by the monthly runbook).
DB_PRELOAD_EXTENSIONS: tuple[str, ...] = ("pg_stat_statements",)
#: The compose volume holding the order service's uploaded files (``/data/attachments`` in ``api``).
ATTACHMENTS_VOLUME = "attachments"
#: Ports on the stack's internal network.
DB_PORT = 5432
REDIS_PORT = 6379

#: The health value of a container without a healthcheck.
NO_HEALTHCHECK = "none"


def volume_name(project: str, volume: str) -> str:
    """The Docker volume compose creates for ``volume`` of ``project`` (``<project>_<volume>``, compose-spec)."""
    return f"{project}_{volume}"


def is_up(status: str | None, health: str | None) -> bool:
    """The "running and healthy" rule: the container runs, and its healthcheck (if any) says ``healthy``.

    + status: docker's ``State.Status`` (``running``, ``exited``, ...), ``None`` when there is no container
    + health: ``State.Health.Status`` (``healthy``, ``starting``, ``unhealthy``) or :data:`NO_HEALTHCHECK`
    """
    return status == "running" and health in ("healthy", NO_HEALTHCHECK)

#: journald tag (``CONTAINER_TAG``/``SYSLOG_IDENTIFIER``) of the order service's container log
#: (Docker's journald log driver): fail2ban's API jail matches it.
API_LOG_TAG = "orderops-api"
