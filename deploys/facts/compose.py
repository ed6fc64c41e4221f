"""Facts about Docker Compose projects on a host.

``ComposeProject`` reads two things in one round trip:

* the hash Compose computes for each service of the project files now on the host
  (``docker compose config --hash '*'``; one ``<service> <hash>`` line per service), and
* the project's existing containers with their ``com.docker.compose.config-hash`` label,
  state, health and image ID (``docker inspect``).

Together with :class:`deploys.facts.images.DockerImageIds` this is what
:func:`deploys.operations.compose.up` needs to decide, without changing anything, whether
``docker compose up`` would change the running stack.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

__all__ = ["ComposeProject", "parse_compose_project"]

_HASH_MARK = "#orderops:hash"
_CONTAINER_MARK = "#orderops:containers"
_INSPECT_FORMAT = (
    '{{index .Config.Labels "com.docker.compose.service"}} '
    '{{index .Config.Labels "com.docker.compose.config-hash"}} '
    "{{.State.Status}} "
    "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} "
    "{{.Image}} {{.Name}}"
)


def parse_compose_project(lines: list[str]) -> dict[str, Any]:
    """Parse the output of :class:`ComposeProject`'s command.

    Returns ``{"hashes": {service: hash}, "containers": [{"service", "config_hash", "state",
    "health", "image_id", "name"}]}``; ``health`` is ``none`` for services without a healthcheck.
    Lines outside the two marked sections (warnings) are ignored.
    """
    hashes: dict[str, str] = {}
    containers: list[dict[str, str]] = []
    section = None
    for line in lines:
        line = line.strip()
        if line in (_HASH_MARK, _CONTAINER_MARK):
            section = line
            continue
        parts = line.split()
        if section == _HASH_MARK and len(parts) == 2:
            hashes[parts[0]] = parts[1]
        elif section == _CONTAINER_MARK and len(parts) == 6:
            service, config_hash, state, health, image_id, name = parts
            containers.append(
                {
                    "service": service,
                    "config_hash": config_hash,
                    "state": state,
                    "health": health,
                    "image_id": image_id,
                    "name": name.lstrip("/"),
                },
            )
    return {"hashes": hashes, "containers": containers}


class ComposeProject(FactBase):
    """State of a Compose project: wanted service hashes and existing containers.

    + project: compose project name (``-p``)
    + project_dir: directory holding ``compose.yaml`` and ``.env`` on the host

    Returns the dict documented in :func:`parse_compose_project`; with no project files on
    the host, ``hashes`` is empty.
    """

    requires_command = "docker"

    @staticmethod
    def default() -> dict[str, Any]:
        return {"hashes": {}, "containers": []}

    def command(self, project: str, project_dir: str) -> StringCommand:
        compose = StringCommand(
            "docker", "compose", "-p", QuoteString(project), "--project-directory", QuoteString(project_dir),
        )
        return StringCommand(
            "echo", QuoteString(_HASH_MARK), ";",
            "if [ -f", QuoteString(f"{project_dir}/compose.yaml"), "]; then",
            compose, "config", "--hash", "'*'", "2>/dev/null;",
            "fi;",
            "echo", QuoteString(_CONTAINER_MARK), ";",
            "docker", "ps", "-aq", "--filter", QuoteString(f"label=com.docker.compose.project={project}"),
            "| xargs -r docker inspect --format", QuoteString(_INSPECT_FORMAT),
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_compose_project(output)
