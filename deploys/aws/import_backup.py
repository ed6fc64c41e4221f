"""Import a single-host backup into the environment's RDS database: ``orderops-aws import-backup``.

The data step of moving from one host to AWS. The restore is the backup tooling's own
(:mod:`deploys.backup_tool`: :func:`~deploys.backup_tool.restore.verify`,
:func:`~deploys.backup_tool.restore.restore_db`, ``count_rows`` / ``compare_counts``, ``swap_db``),
pointed at RDS instead of ``docker compose exec postgres``; this module only finds the target and
checks what the tooling cannot know. Steps:

1. the backup (a backup directory ``<id>/`` with ``manifest.json`` as ``orderops-backup`` wrote it,
   copied from the host's ``backup_dir`` or the S3 offsite prefix; or a directory of such backups,
   then the newest valid one) is verified: every file's SHA-256 against its manifest;
2. the age identity (a file on this machine) is tried on the head of the encrypted dump
   (:func:`~deploys.backup_tool.pipeline.check_identity`): a wrong key fails before anything is written;
3. the PostgreSQL client tools here (``pg_restore``, ``psql``: ``PATH`` or ``pg_bin``) must be of the
   dump's major version or newer, and the RDS engine too (a dump does not load into an older major);
4. the target, read through boto3: the stack output ``DatabaseId`` -> ``DescribeDBInstances``
   (endpoint, port, engine version); the migrate task definition (the recorded release's, else the
   stack's ``MigrateTaskDefinition``) -> ``POSTGRES_USER`` / ``POSTGRES_DB`` and the secret its
   ``POSTGRES_PASSWORD`` references -> ``GetSecretValue`` (the master password; kept in memory);
5. the target database is looked at over TLS (``sslmode=require``; the parameter group forces TLS):
   when it holds any of the app's tables (the manifest's counted tables or ``alembic_version``) the
   import is refused, unless ``database`` names a fresh database (which must not exist);
6. with approval, under the environment lock: ``restore_db`` creates ``<db>_import_<stamp>`` and
   streams ``age -d`` (identity on a pipe) | ``zstd -d`` | ``pg_restore --exit-on-error`` into it
   (one job: nothing decrypted is staged on a disk); its exact row counts are compared with the
   manifest; then, for the app's database, ``swap_db`` renames it in (the empty database it
   replaces is dropped when it held no table at all, kept as ``<db>_pre_restore_<stamp>`` otherwise);
7. the counts are read again under the final name and reported with the elapsed time (the RTO
   figure: verification start to counts checked).

Check mode does steps 1-5 (reads only: local files, AWS describes, one read-only query) and says
what it would do. The master password reaches the client tools as ``PGPASSWORD`` in this process's
environment while the import runs (never on a command line, in a file or in a message); the
connection parameters (``PGHOST``/``PGPORT``/``PGSSLMODE``) are the ``env`` prefix the backup
tooling puts before every client tool (its ``db_exec``).

``via`` (``HOST:PORT``): connect there instead of the endpoint, e.g. the local end of an SSM port
forwarding session or an SSH tunnel to the instance (it is not publicly accessible); TLS is still
required end to end. The tests point it at a throw-away PostgreSQL (moto runs no database).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploys.aws.errors import AwsError
from deploys.aws.lock import environment_lock
from deploys.aws.release import read_record
from deploys.aws.session import AwsSession, call
from deploys.aws.stack import outputs
from deploys.backup_tool import restore
from deploys.backup_tool.config import Config
from deploys.backup_tool.database import quote_ident, run_sql
from deploys.backup_tool.errors import BackupError
from deploys.backup_tool.manifest import BackupInfo, inspect_local, list_local
from deploys.backup_tool.pipeline import check_identity, plain_magic
from deploys.contract.aws_import import ImportParams, import_argv, params_from
from deploys.contract.services import DB_NAME, DB_PORT, DB_USER

__all__ = ["ImportParams", "ImportFailed", "NotApproved", "Target", "ImportReport", "find_target", "client_version",
           "import_backup", "params_from", "import_argv", "APP_TABLES_EXTRA"]

#: Tables that mark a database as the app's besides the manifest's counted ones (Alembic's record).
APP_TABLES_EXTRA = ("alembic_version",)


class ImportFailed(AwsError):
    """The import stopped (a check failed or a step broke); the message says what and whether anything was written."""


class NotApproved(ImportFailed):
    """The operator did not approve the write (no ``--yes``, no ``y``)."""


@dataclass(frozen=True)
class Target:
    """The RDS database the import writes to, as AWS describes it.

    + instance / endpoint / port / engine_version: ``DescribeDBInstances``
    + user / database: ``POSTGRES_USER`` / ``POSTGRES_DB`` of the migrate task definition
    + secret: the secret ``POSTGRES_PASSWORD`` references (ARN or name); password: its value (never shown)
    + connect_host / connect_port: where the client connects (the endpoint, or ``via``)
    """

    instance: str
    endpoint: str
    port: int
    engine_version: str
    user: str
    database: str
    secret: str
    task_definition: str
    connect_host: str
    connect_port: int
    password: str = field(repr=False, default="")

    def describe(self) -> str:
        via = "" if (self.connect_host, self.connect_port) == (self.endpoint, self.port) else \
            f" via {self.connect_host}:{self.connect_port}"
        return (f"{self.instance} ({self.endpoint}:{self.port}{via}, PostgreSQL {self.engine_version}, "
                f"user {self.user}, sslmode=require)")


@dataclass
class ImportReport:
    """What an import did (or, in check mode, would do).

    + counts: ``[(table, manifest rows, imported rows or None)]``
    + actions: the steps done or planned, one line each
    + seconds: wall time from verification to counts checked (the RTO figure); 0 in check mode
    """

    backup: str
    target: Target
    database: str
    check: bool
    client: str
    actions: list[str]
    counts: list[tuple[str, int, int | None]] = field(default_factory=list)
    seconds: float = 0.0
    kept: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``; read by the ``aws-import-backup`` runbook). No secret in it."""
        t = self.target
        return {"backup": self.backup, "database": self.database, "check": self.check, "client": self.client,
                "target": {"instance": t.instance, "endpoint": t.endpoint, "port": t.port,
                           "engine_version": t.engine_version, "user": t.user,
                           "connect": f"{t.connect_host}:{t.connect_port}", "sslmode": "require"},
                "actions": self.actions, "counts": [list(c) for c in self.counts],
                "seconds": round(self.seconds, 3), "kept": self.kept}

    def render(self) -> str:
        lines = [f"backup {self.backup} -> database {self.database} on {self.target.describe()}",
                 f"client tools: PostgreSQL {self.client}",
                 *((("would: " if self.check else "") + a) for a in self.actions)]
        if self.counts:
            lines.append(f"{'table':20} {'manifest':>10} {'imported':>10}")
            lines += [f"{t:20} {n:>10} {'-' if got is None else got:>10}" for t, n, got in self.counts]
        if not self.check:
            lines.append(f"import took {self.seconds:.1f} s (RTO of the data step)")
        return "\n".join(lines)


def _major(version: str) -> int:
    m = re.match(r"(\d+)", version)
    if not m:
        raise ImportFailed(f"cannot read a PostgreSQL version from {version!r}")
    return int(m.group(1))


def client_version(pg_bin: Path | None = None) -> str:
    """The version of ``pg_restore`` here (``15.18``); raises :class:`ImportFailed` when it is missing."""
    exe = str(pg_bin / "pg_restore") if pg_bin else shutil.which("pg_restore")
    if not exe:
        raise ImportFailed("pg_restore is not installed on this machine (postgresql-client of the dump's "
                           "major version or newer; or --pg-bin DIR)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False, timeout=30).stdout
    m = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)", out)
    if not m:
        raise ImportFailed(f"cannot read the version of {exe}: {out.strip()[:120]!r}")
    return m.group(1)


def _select_backup(path: Path) -> BackupInfo:
    """The backup at ``path`` (a backup directory) or the newest valid one below it, deep-verified."""
    info = inspect_local(path)
    if info is None:
        found = [b for b in list_local(path) if b.valid]
        if not found:
            raise ImportFailed(f"backup: {path} is neither a backup directory (<id>/ with manifest.json) "
                               "nor holds a valid one")
        info = found[-1]
    try:
        return restore.verify(Path(info.where))
    except BackupError as e:
        raise ImportFailed(f"backup: {e}") from None


def _container_of(aws: AwsSession, task_definition: str) -> dict[str, Any]:
    ecs = aws.client("ecs")
    td = call("ecs", "DescribeTaskDefinition", ecs.describe_task_definition,
              taskDefinition=task_definition)["taskDefinition"]
    for c in td["containerDefinitions"]:
        if any(s["name"] == "POSTGRES_PASSWORD" for s in c.get("secrets", [])):
            return c
    raise ImportFailed(f"task definition {task_definition} references no POSTGRES_PASSWORD secret")


def _secret_value(aws: AwsSession, value_from: str) -> str:
    """The value ECS would put into the container for ``valueFrom``: the secret's ``SecretString``,
    or one key of it as JSON for ECS's ``<secret ARN>:<json-key>:<version-stage>:<version-id>`` form
    (Amazon ECS developer guide, "Pass Secrets Manager secrets through environment variables")."""
    parts = value_from.split(":")
    kwargs: dict[str, str] = {"SecretId": value_from}
    json_key = ""
    if value_from.startswith("arn:") and len(parts) > 7:
        json_key, stage, version = (parts[7:] + ["", "", ""])[:3]
        kwargs = {"SecretId": ":".join(parts[:7]), **({"VersionStage": stage} if stage else {}),
                  **({"VersionId": version} if version else {})}
    sm = aws.client("secretsmanager")
    value = call("secretsmanager", "GetSecretValue", sm.get_secret_value, **kwargs).get("SecretString") or ""
    if json_key:
        try:
            value = json.loads(value)[json_key]
        except (ValueError, KeyError, TypeError):
            raise ImportFailed(f"secret {kwargs['SecretId']} holds no JSON key {json_key!r}") from None
    if not isinstance(value, str) or not value:
        raise ImportFailed(f"secret {kwargs['SecretId']} holds no string value")
    return value


def find_target(aws: AwsSession, via: str | None = None) -> Target:
    """The RDS database of the environment and its master credentials (module docstring, step 4).

    Raises :class:`ImportFailed` (no stack, instance not available, no secret) or :class:`AwsCallError`.
    """
    s = aws.settings
    out = outputs(aws, s.stack_name)
    if "DatabaseId" not in out:
        raise ImportFailed(f"stack {s.stack_name} has no DatabaseId output: apply the environment first")
    rds = aws.client("rds")
    db = call("rds", "DescribeDBInstances", rds.describe_db_instances,
              DBInstanceIdentifier=out["DatabaseId"])["DBInstances"][0]
    if db.get("DBInstanceStatus") != "available" or not db.get("Endpoint"):
        raise ImportFailed(f"RDS instance {db['DBInstanceIdentifier']} is {db.get('DBInstanceStatus')}, not available")
    record = read_record(aws)
    task_definition = record.migrate_task_definition if record else out["MigrateTaskDefinition"]
    container = _container_of(aws, task_definition)
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    secret = next(x["valueFrom"] for x in container["secrets"] if x["name"] == "POSTGRES_PASSWORD")
    value = _secret_value(aws, secret)
    endpoint, port = db["Endpoint"]["Address"], int(db["Endpoint"].get("Port") or DB_PORT)
    host, connect_port = endpoint, port
    if via:
        h, _, p = via.rpartition(":")
        host, connect_port = h, int(p)
    return Target(db["DBInstanceIdentifier"], endpoint, port, db.get("EngineVersion", "?"),
                  env.get("POSTGRES_USER", DB_USER), env.get("POSTGRES_DB", DB_NAME), secret, task_definition,
                  host, connect_port, value)


def _tooling_config(target: Target, info: BackupInfo, pg_bin: Path | None) -> Config:
    """The backup tooling's configuration for RDS: ``db_exec`` is an ``env`` prefix with the
    connection parameters (never the password), ``db_name`` the app's database (the "live" one)."""
    prefix = ["env"]
    if pg_bin:
        prefix.append(f"PATH={pg_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    prefix += [f"PGHOST={target.connect_host}", f"PGPORT={target.connect_port}", "PGSSLMODE=require",
               "PGCONNECT_TIMEOUT=15", "PGAPPNAME=orderops-import-backup"]
    return Config(host=f"aws:{target.instance}", db_exec=tuple(prefix), backup_dir=str(Path(info.where).parent),
                  recipients=tuple(info.manifest.get("encryption", {}).get("recipients") or ("-",)),
                  db_user=target.user, db_name=target.database,
                  key_tables=tuple(sorted(info.manifest["row_counts"])), compression=info.manifest.get("compression", "zstd"))


@contextmanager
def _password(value: str) -> Iterator[None]:
    """``PGPASSWORD`` in this process's environment for the block (the client tools inherit it)."""
    saved = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = saved


def _tables(cfg: Config, database: str) -> list[str] | None:
    """Tables of ``database``'s public schema, or ``None`` when the database does not exist."""
    if not run_sql(cfg.db_exec, cfg.db_user, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
        return None
    return run_sql(cfg.db_exec, cfg.db_user, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")


def import_backup(aws: AwsSession, params: ImportParams, *, check: bool, approve: Callable[[str], bool],
                  log: Callable[[str], None] = print, stamp: str | None = None) -> ImportReport:
    """Import the backup (module docstring); returns the report. ``approve(text)`` is asked once
    before anything is written (not in check mode). Raises :class:`ImportFailed` (the message says
    whether anything was written), :class:`AwsCallError`, :class:`LockHeld`."""
    t0 = time.monotonic()
    stamp = (stamp or time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())).lower()
    info = _select_backup(params.backup)
    manifest = info.manifest
    log(f"backup {info.id}: every file's SHA-256 matches its manifest ({info.where})")
    identity = params.identity.read_bytes()
    db_file = Path(info.where) / manifest["files"]["db"]["name"]
    try:
        check_identity(db_file, identity, what="identity", magic=plain_magic(manifest.get("compression")))
    except BackupError as e:
        raise ImportFailed(f"{e}: wrong age identity for backup {info.id}? nothing was written") from None
    dump_version = manifest["postgres"]["server_version"]
    client = client_version(params.pg_bin)
    if _major(client) < _major(dump_version):
        raise ImportFailed(f"pg_restore here is PostgreSQL {client}, the dump is of {dump_version}: the client must "
                           f"be of major {_major(dump_version)} or newer (install postgresql-client-{_major(dump_version)} "
                           "or pass --pg-bin); nothing was written")
    log(f"client tools: PostgreSQL {client} >= dump's {dump_version}")
    target = find_target(aws, params.via)
    if _major(target.engine_version) < _major(dump_version):
        raise ImportFailed(f"RDS runs PostgreSQL {target.engine_version}, older than the dump's {dump_version}: "
                           "a dump does not load into an older major; nothing was written")
    cfg = _tooling_config(target, info, params.pg_bin)
    app_db = target.database
    into = params.database or app_db
    marks = set(manifest["row_counts"]) | set(APP_TABLES_EXTRA)
    with _password(target.password):
        try:
            present = _tables(cfg, into)
        except BackupError as e:
            raise ImportFailed(f"cannot reach {target.describe()}: {e}") from None
        if into != app_db and present is not None:
            raise ImportFailed(f"database: {into} exists already on {target.instance}: choose a fresh name; nothing was written")
        held = sorted(marks & set(present or ()))
        if held:
            raise ImportFailed(f"database {into} on {target.instance} already holds the app's tables ({', '.join(held)}): "
                               "refusing to import over them; pass --database <fresh name> to import beside them; "
                               "nothing was written")
        staging = f"{app_db}_import_{stamp}" if into == app_db else into
        quote_ident(staging)
        unzstd = "zstd -d | " if manifest.get("compression", "zstd") == "zstd" else ""
        actions = [f"restore {info.id} into a new database {staging} (age -d | {unzstd}pg_restore --exit-on-error, "
                   "streamed)",
                   f"compare its row counts with the manifest ({len(manifest['row_counts'])} tables)"]
        if into == app_db:
            actions.append(f"swap it in as {app_db} (" + ("empty database dropped" if present == [] else
                           "no database of that name yet" if present is None else
                           f"old one kept as {app_db}_pre_restore_{stamp}") + ")")
        attachments = manifest["files"].get("attachments")
        note = (f"leave the attachments archive ({attachments.get('entries', '?')} entries) alone: the AWS layout "
                "keeps attachments in its bucket" if attachments else "")
        report = ImportReport(info.id, target, into, check, client, [*actions, *([note] if note else [])],
                              [(t, n, None) for t, n in sorted(manifest["row_counts"].items())])
        if check:
            return report
        if not approve(f"import backup {info.id} into {into} on {target.describe()}"):
            raise NotApproved("not approved: nothing was written")
        with environment_lock(aws, f"import-backup {info.id}"):
            report.actions = []
            try:
                restore.restore_db(cfg, info, identity, staging, jobs=1)
            except BackupError as e:
                raise ImportFailed(f"restore into {staging} failed (it was dropped again): {e}") from None
            report.actions.append(f"restored {info.id} into {staging}")
            counts = restore.count_rows(cfg, staging, cfg.key_tables)
            wrong = restore.compare_counts(manifest["row_counts"], counts)
            if wrong:
                raise ImportFailed(f"row counts of {staging} differ from the manifest ({'; '.join(wrong)}); "
                                   f"{staging} is kept for inspection, {into} is untouched")
            if into == app_db:
                old = restore.swap_db(cfg, staging, stamp)
                if old and present == []:
                    restore.drop_db(cfg, old)
                    report.actions.append(f"swapped in as {app_db} (the empty database before it dropped)")
                else:
                    report.kept = old
                    report.actions.append(f"swapped in as {app_db}" + (f" (previous database kept as {old})" if old else ""))
            final = restore.count_rows(cfg, into, cfg.key_tables)
        report.counts = [(t, n, final.get(t)) for t, n in sorted(manifest["row_counts"].items())]
        if restore.compare_counts(manifest["row_counts"], final):
            raise ImportFailed(f"row counts of {into} differ from the manifest after the swap: {report.counts}")
        report.seconds = time.monotonic() - t0
        report.actions.append(f"row counts of {into} equal the manifest's")
        if note:
            report.actions.append(note.replace("leave", "left", 1))
    return report
