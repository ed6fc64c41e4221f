"""The backup program's files and units on a database (app) host.

Installed by ``deploys/roles/backups.py``, driven by the backup runbooks (``runbooks/library``)::

    /opt/orderops-backup/lib/orderops_backup/   LIB_DIR: the program (deploys/backup_tool/, stdlib + boto3)
    /usr/local/sbin/orderops-backup             BACKUP_COMMAND: its command line (`now`, `list`, `verify`, ...)
    /etc/orderops-backup/config.json            CONFIG_FILE (root, 0600; schema in deploys/backup_tool/config.py)
    /etc/orderops-backup/s3-credentials.json    CREDENTIALS_FILE (root, 0600), only with an S3 bucket
    orderops-backup.service / .timer            SERVICE / TIMER: one run and its schedule
    orderops-backup-notify@.service             NOTIFY_UNIT: OnFailure hook of SERVICE
"""

from __future__ import annotations

import shlex
from pathlib import Path

__all__ = ["age_identity", "TOOL_DIR", "LIB_DIR", "CONFIG_DIR", "CONFIG_FILE", "CREDENTIALS_FILE", "BACKUP_COMMAND", "SERVICE", "TIMER",
           "NOTIFY_UNIT", "KEY_TABLES", "backup_command"]

TOOL_DIR = "/opt/orderops-backup"
#: ``PYTHONPATH`` of the program (package ``orderops_backup``)
LIB_DIR = f"{TOOL_DIR}/lib"
CONFIG_DIR = "/etc/orderops-backup"
CONFIG_FILE = f"{CONFIG_DIR}/config.json"
CREDENTIALS_FILE = f"{CONFIG_DIR}/s3-credentials.json"
BACKUP_COMMAND = "/usr/local/sbin/orderops-backup"
SERVICE = "orderops-backup.service"
TIMER = "orderops-backup.timer"
NOTIFY_UNIT = "orderops-backup-notify@.service"
#: Tables whose exact row counts each manifest records (order_service/models.py).
KEY_TABLES: tuple[str, ...] = ("users", "orders", "order_lines", "order_transitions", "attachments")


def backup_command(*args: str) -> str:
    """The host command line ``orderops-backup ARGS`` (shell-quoted; run it with sudo: its files are root's)."""
    return shlex.join([BACKUP_COMMAND, *args])


def age_identity(path: Path) -> bytes:
    """The bytes of the age identity file ``path`` on this machine; ``ValueError`` naming the file
    and the problem (unreadable, or no ``AGE-SECRET-KEY-`` line), never the key."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {path} ({e.strerror})") from None
    if b"AGE-SECRET-KEY-" not in data:
        raise ValueError(f"{path} holds no age private key")
    return data
