"""One backup run: database, attachments, manifest, rename, retention, offsite, metrics.

:func:`run_backup` is what ``orderops-backup.service`` runs (``python3 -m orderops_backup run``):

1. take ``<backup_dir>/.lock`` (``flock``; a second run at once fails at once);
2. open a snapshot session, record server version and alembic revision, and start the row
   counts, which the server computes in that session while the dump runs;
3. ``pg_dump -Fc`` (``-Z0`` piped to ``zstd``, or ``-Z1``) with that snapshot, checked by
   ``pg_restore --list`` on the plaintext stream's head (header + TOC), encrypted with ``age`` to the recipients;
4. the attachments directory as ``tar`` (checked by ``tar -t``), ``zstd``, ``age``;
5. ``manifest.json``; the directory ``<id>.partial`` is renamed to ``<id>`` (fsynced);
6. only then: local retention, the offsite copy and its retention, the success metrics.

Any failure before 5 removes the partial directory, updates only the failure metrics and
raises :class:`~.errors.BackupError`; nothing is pruned. A failure of the offsite copy leaves the
local backup (valid) in place, skips the offsite retention and fails the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import metrics
from .config import Config
from .database import SnapshotSession
from .errors import BackupError
from .manifest import MANIFEST, SCHEMA, backup_id, list_local
from .pipeline import _TOC_LINE, TOC_PREFIX, encrypt_stream
from .retention import plan

__all__ = ["run_backup", "prune_local", "backup_lock", "attachments_dir", "db_file_name"]

ATTACHMENTS_FILE = "attachments.tar.zst.age"


def db_file_name(compression: str) -> str:
    """``db.dump.zst.age`` (zstd in the pipe) or ``db.dump.age`` (pg_dump's own gzip)."""
    return "db.dump.zst.age" if compression == "zstd" else "db.dump.age"


@contextmanager
def backup_lock(backup_dir: Path):
    """Exclusive ``flock`` on ``<backup_dir>/.lock`` for the block; ``BackupError`` when held."""
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(backup_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup or restore holds {backup_dir}/.lock") from None
        yield
    finally:
        os.close(fd)


def attachments_dir(cfg: Config) -> Path | None:
    """Host directory of the attachments (``attachments_dir``, or the volume's mountpoint)."""
    if cfg.attachments_dir:
        return Path(cfg.attachments_dir)
    if not cfg.attachments_volume:
        return None
    proc = subprocess.run(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", cfg.attachments_volume],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"attachments volume {cfg.attachments_volume}: {proc.stderr.strip()[-300:]}")
    return Path(proc.stdout.strip())


def _dump_argv(cfg: Config, snapshot: str) -> list[str]:
    level = "-Z0" if cfg.compression == "zstd" else "-Z1"
    return [*cfg.db_exec, "pg_dump", "-U", cfg.db_user, "-d", cfg.db_name, "-Fc", level, f"--snapshot={snapshot}"]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_backup(cfg: Config, now: datetime | None = None, log: Callable[[str], None] = print) -> tuple[Path, dict, dict]:
    """Steps 2-5 (no lock, no retention): returns ``(path, manifest, kinds)`` where ``kinds`` is
    ``{kind: {"time", "duration", "bytes"}}`` for the metrics. Raises :class:`BackupError`."""
    root = Path(cfg.backup_dir)
    started = time.time()
    ident = backup_id(now or datetime.fromtimestamp(started, timezone.utc))
    final = root / ident
    partial = root / f"{ident}.partial"
    if final.exists() or partial.exists():
        raise BackupError(f"backup {ident} exists already (two runs in the same second?)")
    partial.mkdir(mode=0o700)
    kinds: dict[str, dict] = {}
    try:
        t0 = time.monotonic()
        with SnapshotSession(cfg.db_exec, cfg.db_user, cfg.db_name) as snap:
            info, counts = snap.describe(cfg.key_tables)  # the server counts while the dump runs
            compressor = ["zstd", "-q", f"-{cfg.zstd_level}", "-T2", "-c"] if cfg.compression == "zstd" else None
            db_name = db_file_name(cfg.compression)
            db = encrypt_stream(
                _dump_argv(cfg, snap.snapshot), partial / db_name, cfg.recipients, what="db",
                check=[*cfg.db_exec, "pg_restore", "--list"], compressor=compressor, check_line=_TOC_LINE,
                check_bytes=TOC_PREFIX,
            )
            info["row_counts"] = counts()
        kinds["db"] = {"time": time.time(), "duration": time.monotonic() - t0, "bytes": db.bytes}
        log(f"db: {db.plain_bytes} bytes dumped, {db.bytes} stored, {db.check_lines} TOC entries")
        files = {"db": {"name": db_name, "bytes": db.bytes, "sha256": db.sha256, "plain_bytes": db.plain_bytes,
                        "toc_entries": db.check_lines}}
        adir = attachments_dir(cfg)
        if adir is not None:
            if not adir.is_dir():
                raise BackupError(f"attachments directory {adir} does not exist")
            t1 = time.monotonic()
            att = encrypt_stream(
                ["tar", "-C", str(adir), "--numeric-owner", "-cf", "-", "."], partial / ATTACHMENTS_FILE, cfg.recipients,
                what="attachments", check=["tar", "-tf", "-"], compressor=["zstd", "-q", "-3", "-c"],
            )
            files["attachments"] = {"name": ATTACHMENTS_FILE, "bytes": att.bytes, "sha256": att.sha256,
                                    "plain_bytes": att.plain_bytes, "entries": att.check_lines}
            kinds["attachments"] = {"time": time.time(), "duration": time.monotonic() - t1, "bytes": att.bytes}
            log(f"attachments: {att.check_lines} tar entries, {att.bytes} bytes stored")
        finished = time.time()
        manifest = {
            "schema": SCHEMA, "id": ident, "host": cfg.host,
            "started_at": _iso(started), "finished_at": _iso(finished), "duration_seconds": round(finished - started, 3),
            "postgres": {"server_version": info["server_version"], "database": cfg.db_name},
            "alembic_revision": info["alembic_revision"], "row_counts": info["row_counts"],
            "compression": cfg.compression,
            "encryption": {"tool": "age", "recipients": list(cfg.recipients)},
            "files": files,
        }
        mtmp = partial / f".{MANIFEST}.tmp"
        try:
            with open(mtmp, "w") as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.rename(mtmp, partial / MANIFEST)
            _fsync_dir(partial)
            os.rename(partial, final)
            _fsync_dir(root)
        except OSError as e:
            raise BackupError(f"writing the manifest failed: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final, manifest, kinds


def prune_local(cfg: Config, log: Callable[[str], None] = print) -> int:
    """Apply retention to the local directory; returns the number of valid backups kept."""
    root = Path(cfg.backup_dir)
    found = list_local(root)
    decision = plan(found, cfg.keep)
    for b, reason in decision.delete:
        log(f"prune local {Path(b.where).name}: {reason}")
        shutil.rmtree(b.where)
    return len(decision.keep)


def run_backup(cfg: Config, now: datetime | None = None, log: Callable[[str], None] = print) -> dict:
    """The whole run (see the module docstring); returns the manifest. Raises :class:`BackupError`."""
    root = Path(cfg.backup_dir)
    try:
        with backup_lock(root):
            offsite = None
            if cfg.s3:
                from .offsite import Offsite

                offsite = Offsite(cfg.s3)  # credentials are checked before the dump
                offsite.check_access()
            path, manifest, kinds = create_backup(cfg, now, log)
            log(f"backup {manifest['id']} written to {path}")
            valid = {"local": prune_local(cfg, log)}
            if offsite is not None:
                t0 = time.monotonic()
                aborted = offsite.abort_incomplete()
                for key in aborted:
                    log(f"aborted an unfinished multipart upload of {key}")
                sent = offsite.upload(path, manifest)
                kinds["offsite"] = {"time": time.time(), "duration": time.monotonic() - t0, "bytes": sent}
                log(f"offsite: {sent} bytes uploaded to s3://{cfg.s3.bucket}/{cfg.s3.prefix}{manifest['id']}/")
                remote = plan(offsite.list(), cfg.keep)
                for b, reason in remote.delete:
                    log(f"prune offsite {b.id}: {reason}")
                offsite.delete([b for b, _ in remote.delete])
                valid["s3"] = len(remote.keep)
            metrics.record_success(cfg.textfile_dir, root, kinds, valid)
            return manifest
    except BackupError:
        metrics.record_failure(cfg.textfile_dir, root)
        raise
