"""Idempotent Docker Compose.

pyinfra's ``docker.compose`` runs ``up`` on every deploy and so always reports a change. The
operation here asks the host first: it compares the hash Compose computes for each service of
the project files (``docker compose config --hash '*'``) with the running containers'
``com.docker.compose.config-hash`` labels, and the containers' image IDs with the IDs of the
wanted image references (the config hash does not cover the image content behind a tag). It
runs ``docker compose up -d --wait`` only when something differs, or when a container is not
healthy yet; otherwise it calls ``host.noop``.

The project's files must not use ``env_file:`` (docker/compose#14001: with the Compose 2.26
plugin such services get a hash that never matches their label); pass secrets by
``environment:`` interpolation from the project's ``.env`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation

from deploys.contract.compose import Container, compose_command
from deploys.facts.cache import cached_fact
from deploys.facts.compose import ComposeProject
from deploys.facts.images import DockerImageIds

__all__ = ["up", "compose_differences", "restarted_services", "unhealthy_services"]


def compose_differences(
    project: Mapping[str, Any],
    images: Mapping[str, str],
    image_ids: Mapping[str, str | None],
) -> list[str]:
    """Reasons why ``docker compose up`` would change the project; empty when converged.

    + project: the :class:`~deploys.facts.compose.ComposeProject` fact
    + images: ``{service: wanted image ref}`` for services whose image content must match
    + image_ids: the :class:`~deploys.facts.images.DockerImageIds` fact for those refs

    Returns human-readable reasons, one per service and cause, in service order.
    """
    reasons: list[str] = []
    hashes: Mapping[str, str] = project.get("hashes", {})
    by_service: dict[str, list[Container]] = {}
    for container in project.get("containers", []):
        by_service.setdefault(container.service, []).append(container)

    if not hashes:
        reasons.append("project files define no services (not uploaded yet?)")
    for service, wanted_hash in hashes.items():
        containers = by_service.get(service, [])
        if not containers:
            reasons.append(f"{service}: no container")
            continue
        for c in containers:
            if c.config_hash != wanted_hash:
                reasons.append(f"{service}: configuration changed")
            if c.status != "running":
                reasons.append(f"{service}: container {c.status}")
            ref = images.get(service)
            if ref is not None:
                wanted_id = image_ids.get(ref)
                if wanted_id is None:
                    reasons.append(f"{service}: image {ref} missing on host")
                elif c.image_id != wanted_id:
                    reasons.append(f"{service}: image changed to {ref}")
    for service in by_service:
        if hashes and service not in hashes:
            reasons.append(f"{service}: orphan container")
    return reasons


def restarted_services(project: Mapping[str, Any], reasons: list[str]) -> list[str]:
    """Services with a running container that ``up`` recreates (their configuration or image
    changed), i.e. that the deploy restarts: ``postgres`` after a changed server command, say."""
    running = {c.service for c in project.get("containers", []) if c.status == "running"}
    return sorted({r.split(":", 1)[0] for r in reasons if r.endswith(("configuration changed",)) or ": image changed to " in r} & running)


def unhealthy_services(project: Mapping[str, Any]) -> list[str]:
    """Services whose container is not running and healthy (the contract's rule,
    :func:`deploys.contract.services.is_up`), e.g. still ``starting``."""
    return sorted({c.service for c in project.get("containers", []) if not c.up})


def _compose(project: str, project_dir: str, *args: str) -> StringCommand:
    return StringCommand(compose_command(project, project_dir, *args))


def up_command(project: str, project_dir: str, wait_timeout: int, log_lines: int = 30) -> StringCommand:
    """``up -d --wait``; on failure prints each unhealthy service's name and last log lines.

    The diagnostics go to stderr, which pyinfra shows with the failed operation.
    """
    ps = _compose(project, project_dir, "ps", "-a", "--format", "{{.Service}} {{.State}} {{.Health}}")
    logs = _compose(project, project_dir, "logs", "--no-color", "--tail", str(log_lines))
    # `--wait-timeout` does not bound `up` itself, which blocks on `depends_on: service_healthy`
    # while creating dependants: `timeout` bounds the whole command.
    return StringCommand(
        "timeout", "--kill-after=10", str(wait_timeout + 15),
        _compose(project, project_dir, "up", "-d", "--wait", "--wait-timeout", str(wait_timeout),
                 "--remove-orphans", "--quiet-pull"),
        "|| { rc=$?;",
        ps, "| while read -r svc state health; do",
        'if [ "$state" != running ] || { [ -n "$health" ] && [ "$health" != healthy ]; }; then',
        'echo "orderops: service $svc is $state${health:+ ($health)}; last log lines:" >&2;',
        logs, '"$svc" >&2;',
        "fi; done; exit $rc; }",
    )


@operation()
def up(
    project: str,
    project_dir: str,
    images: Mapping[str, str] | None = None,
    wait_timeout: int = 180,
):
    """
    Bring a Compose project up only when it differs from the project files, then wait for health.

    + project: compose project name
    + project_dir: directory on the host with ``compose.yaml`` (and ``.env``)
    + images: ``{service: image ref}`` whose image IDs must match the running containers
    + wait_timeout: seconds to wait for every service to be running and healthy

    Fails, naming the unhealthy service and showing its last log lines, when the stack does
    not become healthy within ``wait_timeout``.

    **Example:**

    .. code:: python

        compose.up(
            name="Converge the order stack",
            project="shop",
            project_dir="/srv/shop",
            images={"api": "example/shop:1.4.2"},
        )
    """
    images = dict(images or {})
    state = host.get_fact(ComposeProject, project=project, project_dir=project_dir)
    image_ids = cached_fact(host, DockerImageIds, refs=sorted(set(images.values()))) if images else {}

    reasons = compose_differences(state, images, image_ids)
    waiting = unhealthy_services(state)
    if reasons:
        for reason in reasons:
            host.log(f"compose {project}: {reason}")
        for service in restarted_services(state, reasons):
            host.log(f"compose {project}: {service} runs and is recreated: the deploy restarts it")
        yield up_command(project, project_dir, wait_timeout)
    elif waiting:
        host.log(f"compose {project}: waiting for {', '.join(waiting)} to become healthy")
        yield up_command(project, project_dir, wait_timeout)
    else:
        host.noop(f"compose project {project} is up to date and healthy")
