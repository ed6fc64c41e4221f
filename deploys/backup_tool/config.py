"""Configuration of the backup program: ``/etc/orderops-backup/config.json`` (root, 0600).

Written by ``deploys/roles/backups.py`` from the inventory; read by every subcommand. Schema
(JSON object; all keys required unless marked optional)::

    {
      "host": "app-1.example.com",                  # inventory host name, recorded in manifests
      "db_exec": ["docker", "compose", "-p", "orderops", "--project-directory", "/opt/orderops",
                  "exec", "-T", "postgres"],        # argv prefix that runs a client tool next to
                                                    # the server (client version = server version)
      "db_user": "orderops", "db_name": "orders",
      "attachments_volume": "orderops_attachments", # Docker volume archived alongside (optional)
      "attachments_dir": null,                      # or a directory (optional; tests, benchmark)
      "backup_dir": "/var/backups/orderops",
      "recipients": ["age1..."],                    # age public keys; the private key is never here
      "compression": "zstd" | "gzip",               # zstd: pg_dump -Z0 | zstd; gzip: pg_dump -Z1
      "zstd_level": 1,
      "keep": {"daily": 7, "weekly": 4, "monthly": 6},
      "key_tables": ["users", "orders", ...],       # row counts recorded in the manifest
      "textfile_dir": "/var/lib/prometheus/node-exporter",
      "webhook_url": null,                          # optional: a failed run POSTs here
      "s3": null | {                                # optional offsite copy
        "bucket": "...", "prefix": "orderops/app-1/", "endpoint_url": null, "region": "eu-central-1",
        "sse": "AES256" | "aws:kms", "multipart_threshold": 67108864, "multipart_chunksize": 67108864,
        "credentials_file": "/etc/orderops-backup/s3-credentials.json"
      }
    }

The S3 credentials file (root, 0600) holds ``{"aws_access_key_id": ..., "aws_secret_access_key":
...}``; it is read by the program itself, so the timer works with an empty environment.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackupError

__all__ = ["Config", "S3Config", "load_config", "read_credentials", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = "/etc/orderops-backup/config.json"


@dataclass(frozen=True)
class S3Config:
    """Where the offsite copy goes (see the module docstring); sizes in bytes."""

    bucket: str
    credentials_file: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    sse: str = "AES256"
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    """The backup program's configuration (see the module docstring)."""

    host: str
    db_exec: tuple[str, ...]
    backup_dir: str
    recipients: tuple[str, ...]
    db_user: str = "orderops"
    db_name: str = "orders"
    attachments_volume: str | None = None
    attachments_dir: str | None = None
    compression: str = "zstd"
    zstd_level: int = 1
    keep: dict[str, int] = field(default_factory=lambda: {"daily": 7, "weekly": 4, "monthly": 6})
    key_tables: tuple[str, ...] = ("users", "orders", "order_lines", "order_transitions", "attachments")
    textfile_dir: str | None = None
    webhook_url: str | None = None
    s3: S3Config | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from the JSON object; raises :class:`BackupError` naming the bad key."""
        try:
            s3 = S3Config(**data["s3"]) if data.get("s3") else None
            cfg = cls(
                **{k: v for k, v in data.items() if k not in ("s3", "db_exec", "recipients", "key_tables")},
                db_exec=tuple(data["db_exec"]), recipients=tuple(data["recipients"]),
                key_tables=tuple(data.get("key_tables", cls.key_tables)), s3=s3,
            )
        except (KeyError, TypeError) as e:
            raise BackupError(f"configuration: {e}") from None
        if cfg.compression not in ("zstd", "gzip"):
            raise BackupError(f"configuration: compression must be zstd or gzip, not {cfg.compression!r}")
        if not cfg.recipients:
            raise BackupError("configuration: recipients: at least one age public key is needed")
        if set(cfg.keep) != {"daily", "weekly", "monthly"}:
            raise BackupError("configuration: keep needs daily, weekly and monthly")
        return cfg


def load_config(path: str | os.PathLike = DEFAULT_CONFIG) -> Config:
    """Read and validate the configuration file; raises :class:`BackupError`."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BackupError(f"configuration file {path} is missing (deploy the backups role)") from None
    except (OSError, ValueError) as e:
        raise BackupError(f"cannot read configuration {path}: {type(e).__name__}") from None
    return Config.from_dict(data)


def read_credentials(path: str) -> dict[str, str]:
    """``{"aws_access_key_id", "aws_secret_access_key"}`` from a root-only file.

    Raises :class:`BackupError` when the file is missing, readable by others than its owner,
    not JSON, or lacks a key. Values are never put in a message.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise BackupError(f"S3 credentials file {path} is missing") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise BackupError(f"S3 credentials file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0600")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise BackupError(f"S3 credentials file {path} is unreadable or not JSON ({type(e).__name__})") from None
    missing = [k for k in ("aws_access_key_id", "aws_secret_access_key") if not isinstance(data, dict) or not data.get(k)]
    if missing:
        raise BackupError(f"S3 credentials file {path} lacks {', '.join(missing)}")
    return {k: str(data[k]) for k in ("aws_access_key_id", "aws_secret_access_key")}
