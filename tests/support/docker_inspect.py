"""``docker inspect --format '{{json .}}'`` lines for unit tests: a stand-in with the fields of the
Docker Engine API's ``ContainerInspect`` document (docs.docker.com/reference/api/engine, v1.44)
that orderops reads; the real output carries many more keys, which the parser ignores."""

from __future__ import annotations

import json

from deploys.contract.compose import COMPOSE_PROJECT, CONFIG_HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL

__all__ = ["container_line"]


def container_line(service: str, status: str = "running", health: str | None = "healthy", *, config_hash: str = "h",
                   image: str = "img:1", image_id: str = "sha256:aaa", restarts: int = 0, project: str = COMPOSE_PROJECT) -> str:
    """One inspect line; ``health=None`` is a container without a healthcheck (no ``State.Health``)."""
    state = {"Status": status, "Running": status == "running", "ExitCode": 0, "Pid": 0}
    if health is not None:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    doc = {
        "Id": "0" * 64, "Name": f"/{project}-{service}-1", "RestartCount": restarts, "Image": image_id, "State": state,
        "Config": {"Image": image, "Labels": {
            PROJECT_LABEL: project, SERVICE_LABEL: service, CONFIG_HASH_LABEL: config_hash,
        }},
    }
    return json.dumps(doc)
