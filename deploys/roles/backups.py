"""Role ``backups``: the backup program, its configuration and timer on the database host.

Runs on ``app`` hosts (they run PostgreSQL in the order stack). What lands on the host (paths: :mod:`deploys.contract.backups`)::

    /opt/orderops-backup/lib/orderops_backup/   the program (deploys/backup_tool/, stdlib + boto3)
    /usr/local/sbin/orderops-backup             its command line (`orderops-backup now`, `list`, ...)
    /etc/orderops-backup/config.json            configuration (root, 0600; schema in backup_tool/config.py)
    /etc/orderops-backup/s3-credentials.json    S3 keys (root, 0600), only with backup_s3_bucket
    <backup_dir>                                local backups (root, 0700)
    orderops-backup.service / .timer            the run and its schedule (backup_schedule, Persistent)
    orderops-backup-notify@.service             OnFailure: POST to runbook_webhook_url

Packages: ``age`` and ``zstd`` (the pipe), ``python3-boto3`` (offsite copy). The age *public*
keys come from ``backup_age_recipients``; no private key is ever uploaded.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt

from deploys.contract.backups import (
    BACKUP_COMMAND, CONFIG_DIR, CONFIG_FILE, CREDENTIALS_FILE, KEY_TABLES, LIB_DIR, NOTIFY_UNIT, SERVICE, TIMER,
)
from deploys.contract.compose import compose_argv
from deploys.contract.services import ATTACHMENTS_VOLUME, DB_NAME, DB_USER, volume_name
from deploys.operations import secret_files
from deploys.operations.prefetched import files, systemd
from inventories.schema import HostSettings
from templates import render

__all__ = ["backups", "config_data", "unit_texts", "db_exec"]

_SOURCE = Path(__file__).resolve().parents[1] / "backup_tool"


def db_exec(settings: HostSettings) -> list[str]:
    """argv prefix running a PostgreSQL client tool inside the stack's database container."""
    return compose_argv(settings.compose_project, settings.stack_dir, "exec", "-T", "postgres")


def config_data(settings: HostSettings) -> dict:
    """The program's ``config.json`` (no secret in it: the S3 keys live in their own file)."""
    s3 = None
    if settings.backup_s3_bucket:
        s3 = {
            "bucket": settings.backup_s3_bucket,
            "prefix": settings.backup_s3_prefix if settings.backup_s3_prefix is not None else f"{settings.host}/",
            "endpoint_url": settings.backup_s3_endpoint_url, "region": settings.backup_s3_region,
            "sse": settings.backup_s3_sse, "multipart_threshold": settings.backup_s3_multipart_threshold,
            "multipart_chunksize": settings.backup_s3_multipart_threshold, "credentials_file": CREDENTIALS_FILE,
        }
    return {
        "host": settings.host, "db_exec": db_exec(settings), "db_user": DB_USER, "db_name": DB_NAME,
        "attachments_volume": volume_name(settings.compose_project, ATTACHMENTS_VOLUME), "attachments_dir": None,
        "backup_dir": settings.backup_dir, "recipients": list(settings.backup_age_recipients),
        "compression": settings.backup_compression, "zstd_level": settings.backup_zstd_level,
        "keep": {"daily": settings.backup_keep_daily, "weekly": settings.backup_keep_weekly, "monthly": settings.backup_keep_monthly},
        "key_tables": list(KEY_TABLES), "textfile_dir": settings.runbook_textfile_dir,
        "webhook_url": settings.runbook_webhook_url, "s3": s3,
    }


def unit_texts(settings: HostSettings) -> dict[str, str]:
    """``{unit file name: text}`` of the service, its timer and the failure hook."""
    common = {"lib_dir": LIB_DIR, "config": CONFIG_FILE}
    return {
        SERVICE: render("backups/orderops-backup.service.j2", timeout=6 * 3600, **common),
        TIMER: render("backups/orderops-backup.timer.j2", calendar=settings.backup_schedule, jitter=300),
        NOTIFY_UNIT: render("backups/orderops-backup-notify@.service.j2", **common),
    }


@deploy("backups")
def backups(settings: HostSettings, upload_dir: str) -> None:
    """Install the backup program, its configuration and timer (see the module docstring)."""
    if not settings.backup_enabled:
        host.noop("backups disabled (backup_enabled: false)")
        return
    if not settings.backup_age_recipients:
        host.noop("no backup_age_recipients (allowed only for environment 'local')")
        return
    packages = ["age", "zstd", "python3"] + (["python3-boto3"] if settings.backup_s3_bucket else [])
    apt.packages(name="Backup tools (age, zstd, boto3)", packages=packages, update=True, cache_time=24 * 3600, no_recommends=True)
    files.directory(name="Backup program directory", path=f"{LIB_DIR}/orderops_backup", mode="755")
    changed = []
    for src in sorted(_SOURCE.glob("*.py")):
        changed.append(files.put(name=f"Backup program {src.name}", src=str(src), dest=f"{LIB_DIR}/orderops_backup/{src.name}", mode="644"))
    files.put(name="orderops-backup command", src=StringIO(render("backups/orderops-backup.sh.j2", lib_dir=LIB_DIR, config=CONFIG_FILE)),
              dest=BACKUP_COMMAND, mode="755")
    files.directory(name="Backup configuration directory", path=CONFIG_DIR, user="root", group="root", mode="700")
    files.put(name="Backup configuration", src=StringIO(json.dumps(config_data(settings), indent=2, sort_keys=True) + "\n"),
              dest=CONFIG_FILE, user="root", group="root", mode="600")
    if settings.backup_s3_credentials_file:
        creds = json.loads(Path(settings.backup_s3_credentials_file).expanduser().read_text())
        secret_files.present(
            name="Backup S3 credentials (root, 0600)", dest=CREDENTIALS_FILE, upload_dir=upload_dir,
            content=json.dumps({k: creds[k] for k in ("aws_access_key_id", "aws_secret_access_key")}, sort_keys=True),
        )
    else:
        files.file(name="No S3 credentials without a bucket", path=CREDENTIALS_FILE, present=False)
    files.directory(name="Backup directory", path=settings.backup_dir, user="root", group="root", mode="700")
    files.directory(name="Textfile collector directory (backup metrics)", path=settings.runbook_textfile_dir, mode="755")
    units = [files.put(name=f"Unit {name}", src=StringIO(text), dest=f"/etc/systemd/system/{name}", mode="644")
             for name, text in unit_texts(settings).items()]

    def units_changed() -> bool:
        return any(op.did_change() for op in units)

    systemd.daemon_reload(name="systemd reloads changed backup units", _if=units_changed)
    systemd.service(name="Backup timer", service=TIMER, running=True, enabled=True)
    systemd.service(name="Restart the backup timer for a new schedule", service=TIMER, restarted=True, _if=units_changed)
