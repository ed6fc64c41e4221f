"""Restores on the database host: into a fresh database, checked, then swapped in.

Nothing here ever drops the live database or empties a volume. A restore:

1. :func:`resolve` finds the backup (``latest`` = newest ``valid`` one; an id), fetching it from
   S3 first when it is not on the host;
2. :func:`verify` compares every file's SHA-256 with the manifest;
3. :func:`restore_db` creates a database that must not exist yet and restores into it with
   ``pg_restore --exit-on-error`` (``jobs`` > 1: the plaintext dump is staged as a seekable file
   next to the server first, as a parallel restore needs one), the age identity arriving on a
   pipe from the operator's machine;
4. :func:`count_rows` of the new database are compared with the manifest (:func:`compare_counts`);
5. :func:`swap_db` renames the live database to ``<db>_pre_restore_<stamp>`` and the restored one
   to the live name (the old one is kept until the caller's final check passes, then
   :func:`drop_db` removes it);
6. :func:`restore_attachments` / :func:`swap_attachments` do the same with a sibling directory
   of the attachments directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .backup import attachments_dir
from .config import Config
from .database import quote_ident, run_sql
from .errors import BackupError
from .manifest import ID_PATTERN, BackupInfo, inspect_local, list_local
from .pipeline import decrypt_stream

__all__ = [
    "resolve", "verify", "restore_db", "count_rows", "compare_counts", "swap_db", "drop_db",
    "restore_attachments", "swap_attachments", "old_names", "STAGE_PATH",
]

#: where a parallel restore stages the plaintext dump, as seen by the client tools (in the container)
STAGE_PATH = "/tmp/orderops-restore.dump"


def resolve(cfg: Config, ref: str, fetch: bool = True, log=print) -> BackupInfo:
    """The backup named ``ref`` (``latest`` or an id); raises :class:`BackupError` when there is
    no valid one. With ``fetch`` and an S3 configuration, a backup missing locally is downloaded."""
    root = Path(cfg.backup_dir)
    if ref == "latest":
        local = [b for b in list_local(root) if b.valid]
        remote_newest = None
        if cfg.s3 and fetch:
            from .offsite import Offsite

            remote = [b for b in Offsite(cfg.s3).list() if b.valid]
            remote_newest = remote[-1] if remote else None
        if remote_newest and (not local or remote_newest.time > local[-1].time):
            return _fetch(cfg, remote_newest.id, log)
        if not local:
            raise BackupError(f"no valid backup in {root}" + (" or on S3" if cfg.s3 else ""))
        return local[-1]
    if not ID_PATTERN.match(ref):
        raise BackupError(f"not a backup id: {ref!r} (want YYYYmmddTHHMMSSZ or latest)")
    info = inspect_local(root / ref)
    if info is not None and info.valid:
        return info
    if info is None and cfg.s3 and fetch:
        return _fetch(cfg, ref, log)
    raise BackupError(f"backup {ref} is not usable: {info.state + ': ' + info.problem if info else 'not found'}")


def _fetch(cfg: Config, ident: str, log) -> BackupInfo:
    from .offsite import Offsite

    off = Offsite(cfg.s3)
    found = {b.id: b for b in off.list()}
    b = found.get(ident)
    if b is None or not b.valid:
        raise BackupError(f"backup {ident} is not usable on S3: {b.state + ': ' + b.problem if b else 'not found'}")
    root = Path(cfg.backup_dir)
    partial = root / f"{ident}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    try:
        for entry in [*b.manifest["files"].values(), {"name": "manifest.json"}]:
            off.download(ident, entry["name"], partial / entry["name"])
        os.rename(partial, root / ident)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log(f"fetched {ident} from {b.where}")
    return verify(root / ident)


def verify(path: Path) -> BackupInfo:
    """Deep check (SHA-256 of every file against the manifest); raises :class:`BackupError`."""
    info = inspect_local(path, deep=True)
    if info is None:
        raise BackupError(f"{path} is not a backup directory")
    if not info.valid:
        raise BackupError(f"backup {info.id} is {info.state}: {info.problem}")
    return info


def _exists(cfg: Config, name: str) -> bool:
    return bool(run_sql(cfg.db_exec, cfg.db_user, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))


def restore_db(cfg: Config, info: BackupInfo, identity: bytes, target: str, jobs: int = 2) -> None:
    """Create ``target`` (must not exist) and restore the backup's dump into it.

    Raises :class:`BackupError` (wrong key: ``age -d`` fails; a broken archive: ``pg_restore``
    fails with ``--exit-on-error``); the half-restored ``target`` is dropped on failure.
    """
    qt = quote_ident(target)
    if target == cfg.db_name:
        raise BackupError(f"refusing to restore into the live database {target!r}: restores go into a fresh database")
    if _exists(cfg, target):
        raise BackupError(f"database {target} exists already (holds data?): drop it or choose another name")
    entry = info.manifest["files"]["db"]
    src = Path(info.where) / entry["name"]
    decompressor = ["zstd", "-q", "-d", "-c"] if info.manifest.get("compression") == "zstd" else None
    run_sql(cfg.db_exec, cfg.db_user, "postgres", f"CREATE DATABASE {qt}")
    try:
        restore = [*cfg.db_exec, "pg_restore", "-U", cfg.db_user, "-d", target, "--exit-on-error", "--no-password"]
        if jobs > 1:
            decrypt_stream(src, identity, [*cfg.db_exec, "sh", "-c", 'umask 077 && cat > "$0"', STAGE_PATH],
                           what="restore", decompressor=decompressor)
            try:
                _run([*restore, "-j", str(jobs), STAGE_PATH], "pg_restore")
            finally:
                subprocess.run([*cfg.db_exec, "rm", "-f", STAGE_PATH], capture_output=True, check=False)
        else:
            decrypt_stream(src, identity, restore, what="restore", decompressor=decompressor)
    except BaseException:
        run_sql(cfg.db_exec, cfg.db_user, "postgres", f"DROP DATABASE IF EXISTS {qt} WITH (FORCE)")
        raise


def _run(argv: list[str], what: str) -> None:
    with tempfile.TemporaryFile() as err:
        rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, check=False).returncode
        if rc != 0:
            err.seek(0)
            raise BackupError(f"{what} exited {rc}: {' '.join(err.read().decode(errors='replace').split())[-400:]}")


def count_rows(cfg: Config, database: str, tables) -> dict[str, int]:
    """Exact ``count(*)`` of each existing table in ``tables``."""
    present = set(run_sql(cfg.db_exec, cfg.db_user, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    names = [t for t in tables if t in present]
    if not names:
        return {}
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {quote_ident(t)}" for t in names)
    return {n: int(c) for n, _, c in (line.partition("|") for line in run_sql(cfg.db_exec, cfg.db_user, database, sql))}


def compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """One line per table whose count differs (or is missing) from the manifest's."""
    return [f"{t}: manifest {n}, database {actual.get(t, 'missing')}" for t, n in sorted(expected.items()) if actual.get(t) != n]


def swap_db(cfg: Config, restored: str, stamp: str) -> str:
    """Rename the live database to ``<db>_pre_restore_<stamp>`` and ``restored`` to the live
    name. Returns the old database's new name (``""`` when there was no live database).

    The writers are stopped by the caller, but readers (the postgres exporter, an operator's
    psql) reconnect at any moment, and ``ALTER DATABASE ... RENAME`` fails while any session
    is open. So both databases first refuse new connections (``ALLOW_CONNECTIONS false``), the
    open sessions are terminated and waited for (``pg_terminate_backend(pid, 5000)``, ms,
    PostgreSQL 14+), the renames run, and connections are allowed again on both, also when a
    rename fails. Raises :class:`BackupError` from psql.
    """
    old = f"{cfg.db_name}_pre_restore_{stamp.lower()}"
    live, new, oldq = quote_ident(cfg.db_name), quote_ident(restored), quote_ident(old)
    has_live = _exists(cfg, cfg.db_name)
    names = [live, new] if has_live else [new]

    def allow(flag: str, *idents: str) -> None:
        run_sql(cfg.db_exec, cfg.db_user, "postgres",
                "; ".join(f"ALTER DATABASE {i} WITH ALLOW_CONNECTIONS {flag}" for i in idents))

    allow("false", *names)
    try:
        kill = ("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                f"WHERE datname IN ('{cfg.db_name}', '{restored}') AND pid <> pg_backend_pid()")
        run_sql(cfg.db_exec, cfg.db_user, "postgres", kill)
        if has_live:
            run_sql(cfg.db_exec, cfg.db_user, "postgres", f"ALTER DATABASE {live} RENAME TO {oldq}")
        run_sql(cfg.db_exec, cfg.db_user, "postgres", f"ALTER DATABASE {new} RENAME TO {live}")
    finally:  # whichever names the renames reached, every database involved takes connections again
        present = run_sql(cfg.db_exec, cfg.db_user, "postgres", "SELECT datname FROM pg_database WHERE datname IN "
                          f"('{cfg.db_name}', '{restored}', '{old}')")
        allow("true", *(quote_ident(n) for n in present))
    return old if has_live else ""


def old_names(cfg: Config) -> list[str]:
    """Databases kept by earlier swaps (``<db>_pre_restore_<stamp>``)."""
    rows = run_sql(cfg.db_exec, cfg.db_user, "postgres", "SELECT datname FROM pg_database ORDER BY datname")
    return [r for r in rows if r.startswith(f"{cfg.db_name}_pre_restore_")]


def drop_db(cfg: Config, name: str, scratch_prefix: str = "") -> None:
    """Drop a database kept by a swap or a scratch database (``scratch_prefix``); never another."""
    allowed = name.startswith(f"{cfg.db_name}_pre_restore_") or (scratch_prefix and name.startswith(scratch_prefix))
    if not allowed or name == cfg.db_name:
        raise BackupError(f"refusing to drop {name!r}: only databases of earlier restores or scratch restores")
    run_sql(cfg.db_exec, cfg.db_user, "postgres", f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


def restore_attachments(cfg: Config, info: BackupInfo, identity: bytes) -> Path | None:
    """Extract the backup's attachments into ``<attachments dir>.restoring`` (emptied first);
    returns that directory, or ``None`` when the backup or the host has no attachments."""
    entry = info.manifest["files"].get("attachments")
    target = attachments_dir(cfg)
    if entry is None or target is None:
        return None
    staging = target.with_name(target.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o755)
    decrypt_stream(Path(info.where) / entry["name"], identity, ["tar", "-C", str(staging), "--numeric-owner", "-xpf", "-"],
                   what="attachments", decompressor=["zstd", "-q", "-d", "-c"])
    return staging


def swap_attachments(cfg: Config, stamp: str) -> str:
    """Move the attachments directory aside (``<dir>.pre-restore-<stamp>``) and the restored one
    in; returns the old directory's path. The writers must be stopped."""
    target = attachments_dir(cfg)
    staging = target.with_name(target.name + ".restoring")
    if not staging.is_dir():
        raise BackupError(f"no restored attachments at {staging}")
    old = target.with_name(f"{target.name}.pre-restore-{stamp}")
    os.rename(target, old)
    os.rename(staging, target)
    return str(old)
