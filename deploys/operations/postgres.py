"""The stack's PostgreSQL database: extensions created in ``DB_NAME`` (through ``docker compose exec``)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation

from deploys.contract.compose import compose_command
from deploys.contract.services import DB_NAME, DB_USER
from deploys.facts.postgres import PostgresExtensions

__all__ = ["extension"]


@operation()
def extension(extname: str, project: str, project_dir: str):
    """
    ``CREATE EXTENSION IF NOT EXISTS <extname>`` in the order database, only when the
    :class:`~deploys.facts.postgres.PostgresExtensions` fact says it is missing.

    + extname: extension name (letters, digits, ``_``)
    + project: compose project name
    + project_dir: the stack directory

    Runs after the stack is up (the database answers); when it does not answer the command runs
    anyway and fails with psql's message.
    """
    if not extname.replace("_", "").isalnum():
        raise OperationError(f"extension name must be letters, digits and _, got {extname!r}")
    have = host.get_fact(PostgresExtensions, project=project, project_dir=project_dir)
    if have is not None and extname in have:
        host.noop(f"extension {extname} exists in {DB_NAME}")
        return
    yield StringCommand(compose_command(project, project_dir, "exec", "-T", "postgres", "psql", "-U", DB_USER, "-d", DB_NAME,
                                        "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE EXTENSION IF NOT EXISTS {extname}"))
