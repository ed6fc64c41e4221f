"""Facts about the stack's PostgreSQL database, read through ``docker compose exec`` (local socket)."""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys.contract.compose import compose_command
from deploys.contract.services import DB_NAME, DB_USER

__all__ = ["PostgresExtensions", "UNREACHABLE"]

#: Printed instead of the list when the database does not answer (no container yet, not ready).
UNREACHABLE = "#orderops:unreachable"


class PostgresExtensions(FactBase):
    """Names of the extensions installed in ``DB_NAME`` (``pg_extension.extname``), sorted; ``None``
    when the postgres service does not answer (stack not up yet).

    + project: compose project name
    + project_dir: the stack directory (``compose.yaml``)
    """

    @staticmethod
    def default() -> None:
        return None

    def command(self, project: str, project_dir: str) -> str:
        psql = compose_command(project, project_dir, "exec", "-T", "postgres", "psql", "-U", DB_USER, "-d", DB_NAME,
                               "-v", "ON_ERROR_STOP=1", "-tA", "-c", "SELECT extname FROM pg_extension ORDER BY 1")
        return f"{psql} 2>/dev/null || echo {UNREACHABLE}"

    def process(self, output: list[str]) -> list[str] | None:
        names = [line.strip() for line in output if line.strip()]
        return None if UNREACHABLE in names else sorted(names)
