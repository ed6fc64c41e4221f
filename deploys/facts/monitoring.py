"""Facts of the monitoring stack: does the inventory's Grafana admin password log in, does the
postgres-exporter's role exist. Both commands never fail (an absent stack is an answer, not an error).
"""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from deploys.contract.dotenv import dotenv_read_command

__all__ = ["GrafanaLogin", "PostgresRoleExists", "parse_http_code"]


def parse_http_code(output: str) -> str:
    """``ok`` for HTTP 200, ``refused`` for 401/403, ``down`` for anything else (no Grafana answering)."""
    code = output.strip()[-3:]
    return "ok" if code == "200" else "refused" if code in ("401", "403") else "down"


class GrafanaLogin(FactBase):
    """``ok`` | ``refused`` | ``down``: ``GET /api/user`` on 127.0.0.1:<port> as admin with the password
    in ``env_file`` (``GRAFANA_ADMIN_PASSWORD``), passed to curl on stdin, never on a command line."""

    def command(self, env_file: str, port: int) -> str:
        # the value read without a shell evaluating it; curl's config syntax escapes \ and " inside "..."
        script = (f"{dotenv_read_command(env_file, 'GRAFANA_ADMIN_PASSWORD')} "
                  "| sed -e 's/\\\\/\\\\\\\\/g' -e 's/\"/\\\\\"/g' "
                  "| { IFS= read -r pw || true; printf 'user = \"admin:%s\"\\n' \"$pw\"; } | "
                  f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 -K - http://127.0.0.1:{int(port)}/api/user")
        return f"sh -c {shlex.quote(script)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return parse_http_code("".join(output))


class PostgresRoleExists(FactBase):
    """Whether ``role`` exists in the order stack's PostgreSQL (``False`` when the stack is not running)."""

    def command(self, project: str, project_dir: str, role: str) -> str:
        sql = f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"
        return (f"docker compose -p {shlex.quote(project)} --project-directory {shlex.quote(project_dir)} exec -T "
                f"postgres psql -U orderops -d orders -tAc {shlex.quote(sql)} 2>/dev/null || true")

    def process(self, output: list[str]) -> bool:
        return "".join(output).strip() == "1"
