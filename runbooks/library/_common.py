"""Shell snippets and parsers shared by the runbooks (compose project commands, thresholds)."""

from __future__ import annotations

import re
import shlex

from runbooks.engine.model import StepContext

__all__ = ["compose", "container_states", "parse_states", "STATE_FORMAT", "psql", "SERVICES", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|^\[2K")


def strip_ansi(line: str) -> str:
    """``line`` without terminal escape sequences (Compose prefixes log lines with erase-line codes)."""
    return _ANSI.sub("", line)

#: The order stack's compose services (deploys/roles/order_stack.py SERVICE_IMAGES).
SERVICES = ("api", "postgres", "redis", "nginx")

STATE_FORMAT = (
    '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} '
    "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.Config.Image}}"
)


def compose(ctx: StepContext, *args: str) -> str:
    """``docker compose -p PROJECT --project-directory DIR args...`` for this host's stack."""
    s = ctx.host.settings
    return " ".join(["docker", "compose", "-p", shlex.quote(s.compose_project), "--project-directory", shlex.quote(s.stack_dir), *args])


def container_states(ctx: StepContext) -> str:
    """Command printing one ``service status health restarts image`` line per container of the project."""
    label = shlex.quote(f"label=com.docker.compose.project={ctx.host.settings.compose_project}")
    return f"ids=$(docker ps -aq --filter {label}); [ -z \"$ids\" ] || docker inspect --format '{STATE_FORMAT}' $ids"


def parse_states(stdout: str) -> dict[str, dict]:
    """``{service: {"status", "health", "restarts", "image"}}`` from :func:`container_states` output."""
    out: dict[str, dict] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[3].isdigit():
            out[parts[0]] = {"status": parts[1], "health": parts[2], "restarts": int(parts[3]), "image": parts[4]}
    return out


def psql(ctx: StepContext, sql: str, fmt: str = "-tA") -> str:
    """Run ``sql`` with psql inside the postgres container (local socket, no password on the command line)."""
    return compose(ctx, "exec", "-T", "postgres", "psql", "-U", "orderops", "-d", "orders", "-v", "ON_ERROR_STOP=1", fmt, "-c", shlex.quote(sql))
