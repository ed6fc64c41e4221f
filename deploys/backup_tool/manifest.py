"""The manifest of one backup and the states a backup can be in.

A backup is a directory ``<backup_dir>/<id>/`` (``id`` = UTC start time ``YYYYmmddTHHMMSSZ``)
built as ``<id>.partial/`` and renamed only when every file and the manifest are written, so a
final name never holds a half-written backup. ``manifest.json`` (schema
``orderops-backup-manifest/1``)::

    {
      "schema": "orderops-backup-manifest/1",
      "id": "20261203T023000Z",
      "host": "app-1.example.com",
      "started_at": "2026-12-03T02:30:00Z", "finished_at": "2026-12-03T02:31:12Z",
      "duration_seconds": 72.4,
      "postgres": {"server_version": "15.10", "database": "orders"},
      "alembic_revision": "0002",                  # alembic_version.version_num ("" when none)
      "row_counts": {"orders": 10000, ...},        # exact, in the dump's own snapshot
      "compression": "zstd" | "gzip",
      "encryption": {"tool": "age", "recipients": ["age1..."]},
      "files": {
        "db":          {"name": "db.dump.zst.age", "bytes": 123, "sha256": "<hex>",
                        "plain_bytes": 456, "toc_entries": 42},
        "attachments": {"name": "attachments.tar.zst.age", "bytes": 78, "sha256": "<hex>",
                        "plain_bytes": 10240, "entries": 3}
      }
    }

``bytes`` and ``sha256`` are of the encrypted file as stored (and uploaded); ``plain_bytes`` of
the stream before compression; ``toc_entries`` is the number of entries ``pg_restore --list``
found in the plaintext dump.

States (:func:`inspect_local`): ``valid`` (manifest parses, every file present with its size),
``partial`` (a ``.partial`` directory: the run failed or died), ``no-manifest``, ``bad-manifest``,
``truncated`` (a file missing or of another size), ``corrupt`` (SHA-256 differs; deep check only).
Only ``valid`` backups count for retention and restores.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA", "MANIFEST", "BackupInfo", "backup_id", "id_time", "inspect_local", "list_local",
    "validate_manifest", "sha256_file", "ID_PATTERN",
]

SCHEMA = "orderops-backup-manifest/1"
MANIFEST = "manifest.json"
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
_FILE_KEYS = {"name": str, "bytes": int, "sha256": str}


def backup_id(when: datetime) -> str:
    """The id of a backup started at ``when`` (aware datetime): ``YYYYmmddTHHMMSSZ`` in UTC."""
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def id_time(ident: str) -> datetime:
    """The UTC start time encoded in a backup id; ``ValueError`` for a malformed id."""
    return datetime.strptime(ident, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class BackupInfo:
    """One backup as found: ``id``, start ``time`` (UTC), ``state`` (see module doc), the
    manifest (``None`` unless it parsed), ``where`` (a path or an S3 prefix) and, for a bad
    state, ``problem`` (one line)."""

    id: str
    time: datetime
    state: str
    manifest: dict[str, Any] | None = None
    where: str = ""
    problem: str = ""

    @property
    def valid(self) -> bool:
        """Counts for retention and restore."""
        return self.state == "valid"


def validate_manifest(data: Any, ident: str) -> str:
    """``""`` when ``data`` is a well-formed manifest of backup ``ident``, else the problem."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return f"not a {SCHEMA} manifest"
    if data.get("id") != ident:
        return f"manifest id {data.get('id')!r} does not match {ident!r}"
    files = data.get("files")
    if not isinstance(files, dict) or "db" not in files:
        return "manifest lists no db file"
    for kind, entry in files.items():
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in _FILE_KEYS.items()):
            return f"manifest entry {kind!r} lacks name/bytes/sha256"
        if "/" in entry["name"] or entry["name"].startswith("."):
            return f"manifest entry {kind!r} has a bad file name"
    if not isinstance(data.get("row_counts"), dict):
        return "manifest has no row_counts"
    return ""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def inspect_local(path: Path, deep: bool = False) -> BackupInfo | None:
    """The :class:`BackupInfo` of directory ``path`` (``None`` when the name is no backup id).

    ``deep=True`` also compares every file's SHA-256 with the manifest (reads everything).
    """
    name = path.name
    partial = name.endswith(".partial")
    ident = name[: -len(".partial")] if partial else name
    if not ID_PATTERN.match(ident) or not path.is_dir():
        return None
    when = id_time(ident)
    if partial:
        return BackupInfo(ident, when, "partial", where=str(path), problem="run did not finish")
    try:
        data = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return BackupInfo(ident, when, "no-manifest", where=str(path), problem="manifest.json missing")
    except (OSError, ValueError) as e:
        return BackupInfo(ident, when, "bad-manifest", where=str(path), problem=f"manifest unreadable ({type(e).__name__})")
    problem = validate_manifest(data, ident)
    if problem:
        return BackupInfo(ident, when, "bad-manifest", where=str(path), problem=problem)
    for kind, entry in data["files"].items():
        f = path / entry["name"]
        try:
            size = f.stat().st_size
        except FileNotFoundError:
            return BackupInfo(ident, when, "truncated", data, str(path), f"{entry['name']} missing")
        if size != entry["bytes"]:
            return BackupInfo(ident, when, "truncated", data, str(path),
                              f"{entry['name']} has {size} bytes, manifest says {entry['bytes']}")
        if deep and sha256_file(f) != entry["sha256"]:
            return BackupInfo(ident, when, "corrupt", data, str(path), f"{entry['name']}: SHA-256 differs from the manifest")
    return BackupInfo(ident, when, "valid", data, str(path))


def list_local(backup_dir: Path, deep: bool = False) -> list[BackupInfo]:
    """Every backup (any state) below ``backup_dir``, oldest first."""
    if not backup_dir.is_dir():
        return []
    found = [inspect_local(p, deep) for p in backup_dir.iterdir()]
    return sorted((b for b in found if b is not None), key=lambda b: (b.time, b.state != "partial"))
