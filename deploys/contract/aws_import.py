"""The parameters of an import of a single-host backup into RDS, shared by ``orderops-aws
import-backup`` (deploys/aws/import_backup.py) and the ``aws-import-backup`` runbook, which runs
that command (:func:`import_argv`) on the machine running the runbook.

Validated before any AWS call; a bad value is one error naming the field (:func:`params_from`, or
the runbook engine's parameter validation, which reads the same model).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deploys.contract.backups import age_identity

__all__ = ["ImportParams", "params_from", "import_argv", "DB_IDENT"]

#: A database name the import may create: plain lower case, with room for the ``_import_<stamp>`` /
#: ``_pre_restore_<stamp>`` suffixes of the backup tooling within PostgreSQL's 63 characters.
DB_IDENT = r"^[a-z_][a-z0-9_]{0,40}$"


class ImportParams(BaseModel):
    """What to import and how to reach the database (validated before any AWS call).

    + backup: a backup directory ``<id>/`` (with ``manifest.json``) or a directory of backups (the newest valid one)
    + identity: the age private key file on this machine
    + database: a fresh database to import into (must not exist); default: the app's database
    + via: ``HOST:PORT`` to connect to instead of the RDS endpoint (a tunnel's local end)
    + pg_bin: directory of the PostgreSQL client tools to use (default: ``PATH``)
    """

    model_config = ConfigDict(extra="forbid")

    backup: Path = Field(description="backup directory <id>/ or a directory of backups")
    identity: Path = Field(description="age private key file on this machine")
    database: str | None = Field(None, pattern=DB_IDENT, description="fresh database name (default: the app's)")
    via: str | None = Field(None, description="HOST:PORT to connect to instead of the endpoint")
    pg_bin: Path | None = Field(None, description="directory holding pg_restore and psql")

    @field_validator("backup")
    @classmethod
    def _backup(cls, v: Path) -> Path:
        v = v.expanduser().absolute()
        if not v.is_dir():
            raise ValueError(f"{v} is not a directory (a backup <id>/ with manifest.json, or a directory of backups)")
        return v

    @field_validator("identity")
    @classmethod
    def _identity(cls, v: Path) -> Path:
        v = v.expanduser().absolute()
        age_identity(v)
        return v

    @field_validator("via")
    @classmethod
    def _via(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{v!r} is not HOST:PORT")
        return v

    @field_validator("pg_bin")
    @classmethod
    def _pg_bin(cls, v: Path | None) -> Path | None:
        if v is not None and not (v.expanduser() / "pg_restore").is_file():
            raise ValueError(f"{v} holds no pg_restore")
        return v.expanduser().absolute() if v else v


def params_from(**values: Any) -> ImportParams:
    """:class:`ImportParams` from keyword values (``None`` = not given); raises ``ValueError``
    ``"<field>: <message>"`` naming the first bad field (one line, no input echoed)."""
    try:
        return ImportParams(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "parameters"
        raise ValueError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None



def import_argv(inventory: str, params: ImportParams, mode: str, *, json_output: bool = True) -> list[str]:
    """argv of ``orderops-aws -i INVENTORY import-backup ...`` (this Python's) for ``params``;
    ``mode`` is ``--check`` or ``--yes``. The identity is passed as its path, never its content."""
    if mode not in ("--check", "--yes"):
        raise ValueError(f"mode must be --check or --yes, not {mode!r}")
    argv = [sys.executable, "-m", "deploys.aws.cli", "-i", inventory, "import-backup", str(params.backup),
            "--identity", str(params.identity)]
    for flag, value in (("--database", params.database), ("--via", params.via), ("--pg-bin", params.pg_bin)):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, *(["--json"] if json_output else []), mode]
