"""The compose project command line and the containers' state, read as JSON.

Every ``docker compose`` call against the order stack names the project and its directory
explicitly (:func:`compose_command`), so it works from any working directory and never picks up
another project. Container state comes from ``docker inspect --format '{{json .}}'``: one JSON
object per line (the Docker Engine API's ``ContainerInspect`` shape), parsed by
:func:`parse_containers`; a line that is not such an object is an error, never silently dropped.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from deploys.contract.services import NO_HEALTHCHECK, is_up

__all__ = [
    "COMPOSE_PROJECT", "PROJECT_LABEL", "SERVICE_LABEL", "CONFIG_HASH_LABEL", "compose_argv", "compose_command",
    "containers_command", "parse_containers", "Container",
]

#: Default compose project name of the order stack (inventory ``compose_project``).
COMPOSE_PROJECT = "orderops"

#: Labels Compose puts on the containers it creates (compose-spec, ``api/labels.go`` of docker/compose).
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"


def compose_argv(project: str, project_dir: str, *args: str) -> list[str]:
    """``["docker", "compose", "-p", project, "--project-directory", project_dir, *args]``."""
    return ["docker", "compose", "-p", project, "--project-directory", project_dir, *args]


def compose_command(project: str, project_dir: str, *args: str) -> str:
    """:func:`compose_argv` as one shell-quoted command line."""
    return shlex.join(compose_argv(project, project_dir, *args))


def containers_command(project: str) -> str:
    """Shell command printing one JSON object per container of ``project`` (none: no output, exit 0)."""
    label = shlex.quote(f"label={PROJECT_LABEL}={project}")
    return f"docker ps -aq --filter {label} | xargs -r docker inspect --format '{{{{json .}}}}'"


@dataclass(frozen=True)
class Container:
    """One container of the project, from its inspect document.

    + service: compose service (label), ``""`` when unlabelled
    + config_hash: the config-hash label compose set when it created the container
    + status: ``State.Status`` (``running``, ``exited``, ``created``, ...)
    + health: ``State.Health.Status``, or ``none`` without a healthcheck
    + restarts: ``RestartCount``
    + image: ``Config.Image``, the reference it was created from
    + image_id: ``Image``, the ``sha256:`` ID it runs
    + name: container name without the leading ``/``
    """

    service: str
    config_hash: str
    status: str
    health: str
    restarts: int
    image: str
    image_id: str
    name: str

    @property
    def up(self) -> bool:
        """Running and healthy (:func:`deploys.contract.services.is_up`)."""
        return is_up(self.status, self.health)


def parse_containers(lines: list[str]) -> list[Container]:
    """Containers from :func:`containers_command` output lines (blank lines ignored).

    Raises ``ValueError`` naming the line for anything that is not an inspect JSON object.
    """
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
            labels = doc["Config"].get("Labels") or {}
            health = (doc["State"].get("Health") or {}).get("Status") or NO_HEALTHCHECK
            out.append(Container(
                service=labels.get(SERVICE_LABEL, ""), config_hash=labels.get(CONFIG_HASH_LABEL, ""),
                status=doc["State"]["Status"], health=health, restarts=int(doc.get("RestartCount", 0)),
                image=doc["Config"].get("Image", ""), image_id=doc.get("Image", ""), name=doc.get("Name", "").lstrip("/"),
            ))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            raise ValueError(f"not a docker inspect JSON object: {line[:120]!r}") from None
    return out
