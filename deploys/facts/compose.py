"""Facts about Docker Compose projects on a host.

``ComposeProject`` reads two things in one round trip:

* the hash Compose computes for each service of the project files now on the host
  (``docker compose config --hash '*'``; compose prints one ``<service> <hash>`` line per service), and
* the project's existing containers as ``docker inspect --format '{{json .}}'`` documents
  (:func:`deploys.contract.compose.parse_containers`: config-hash label, state, health, image ID).

Together with :class:`deploys.facts.images.DockerImageIds` this is what
:func:`deploys.operations.compose.up` needs to decide, without changing anything, whether
``docker compose up`` would change the running stack.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from deploys.contract.compose import compose_command, containers_command, parse_containers
from deploys.contract.paths import StackLayout

__all__ = ["ComposeProject", "parse_compose_project"]

_HASH_MARK = "#orderops:hash"
_CONTAINER_MARK = "#orderops:containers"


def parse_compose_project(lines: list[str]) -> dict[str, Any]:
    """Parse the output of :class:`ComposeProject`'s command.

    Returns ``{"hashes": {service: hash}, "containers": [Container, ...]}``
    (:class:`deploys.contract.compose.Container`). Lines before the first mark (warnings) are
    ignored; a line in the hash section that is not ``<service> <hash>``, or in the container
    section that is not an inspect JSON object, raises ``ValueError`` naming it.
    """
    hashes: dict[str, str] = {}
    container_lines: list[str] = []
    section = None
    for line in lines:
        line = line.strip()
        if line in (_HASH_MARK, _CONTAINER_MARK):
            section = line
        elif section == _HASH_MARK and line:
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"docker compose config --hash printed an unexpected line: {line[:120]!r}")
            hashes[parts[0]] = parts[1]
        elif section == _CONTAINER_MARK:
            container_lines.append(line)
    return {"hashes": hashes, "containers": parse_containers(container_lines)}


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
        return StringCommand(
            "echo", QuoteString(_HASH_MARK), ";",
            "if [ -f", QuoteString(StackLayout(project_dir).compose_file), "]; then",
            compose_command(project, project_dir, "config", "--hash", "*"), "2>/dev/null;",
            "fi;",
            "echo", QuoteString(_CONTAINER_MARK), ";",
            containers_command(project),
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_compose_project(output)
