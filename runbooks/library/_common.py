"""Shell snippets and parsers shared by the runbooks, built on the host contract (:mod:`deploys.contract`)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from deploys.contract.compose import Container, compose_command, containers_command, parse_containers
from deploys.contract.services import DB_NAME, DB_USER
from runbooks.engine.model import StepContext

__all__ = ["compose", "container_states", "parse_states", "psql", "strip_ansi", "json_lines"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|^\[2K")


def strip_ansi(line: str) -> str:
    """``line`` without terminal escape sequences (Compose prefixes log lines with erase-line codes)."""
    return _ANSI.sub("", line)


def compose(ctx: StepContext, *args: str) -> str:
    """``docker compose -p PROJECT --project-directory DIR args...`` for this host's stack.

    ``args`` are shell text: quote values yourself (``shlex.quote``).
    """
    s = ctx.host.settings
    return " ".join([compose_command(s.compose_project, s.stack_dir), *args])


def container_states(ctx: StepContext) -> str:
    """Command printing one ``docker inspect`` JSON document per container of this host's project."""
    return containers_command(ctx.host.settings.compose_project)


def parse_states(stdout: str) -> dict[str, Container]:
    """``{service: Container}`` from :func:`container_states` output; raises ``ValueError`` on a
    line that is not an inspect document (:func:`deploys.contract.compose.parse_containers`)."""
    return {c.service: c for c in parse_containers(stdout.splitlines())}


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects of ``--format '{{json .}}'`` output, one a line (blank lines skipped).

    A line holding a JSON array of objects counts as its objects (Compose before 2.21 printed
    ``ps --format json`` that way). Raises ``ValueError`` naming a line that is neither: nothing
    is dropped silently.
    """
    out = []
    for line in filter(None, (line.strip() for line in stdout.splitlines())):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            doc = None
        docs = doc if isinstance(doc, list) else [doc]
        if not all(isinstance(d, dict) for d in docs):
            raise ValueError(f"not a JSON object: {line[:120]!r}")
        out.extend(docs)
    return out


def psql(ctx: StepContext, sql: str, fmt: str = "-tA") -> str:
    """Run ``sql`` with psql inside the postgres container (local socket, no password on the command line)."""
    return compose(ctx, "exec", "-T", "postgres", "psql", "-U", DB_USER, "-d", DB_NAME, "-v", "ON_ERROR_STOP=1", fmt,
                   "-c", shlex.quote(sql))
