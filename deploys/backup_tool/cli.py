"""``orderops-backup`` (``python3 -m orderops_backup``): the backup program's commands.

=======================================  ====================================================
``run``                                  one backup run (what ``orderops-backup.service`` runs)
``now``                                  ``systemctl start orderops-backup.service`` (the same
                                         unit the timer starts), waits, prints the new manifest
``list [--s3] [--deep] [--json]``        backups and their states (local or on the bucket)
``show latest|ID``                       a valid backup's manifest (JSON)
``verify latest|ID``                     SHA-256 of every file against the manifest
``prune``                                retention, refused unless the newest backup is valid
``restore-db latest|ID --into DB``       restore into a fresh database; age identity on stdin
``counts DB``                            exact row counts of the key tables (JSON)
``swap-db DB --stamp S``                 live database -> ``<db>_pre_restore_<S>``, DB -> live
``drop-db DB [--scratch-prefix P]``      drop a pre-restore or scratch database (no other)
``restore-attachments latest|ID``        extract into ``<dir>.restoring``; identity on stdin
``swap-attachments --stamp S``           restored attachments in, old ones kept aside
``notify --unit U``                      OnFailure hook: POST to ``webhook_url``
=======================================  ====================================================

Every command reads ``--config`` (default ``/etc/orderops-backup/config.json``). Exit status 0
on success, 1 with ``orderops-backup: <why>`` on stderr for any failure.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from .config import DEFAULT_CONFIG, load_config
from .errors import BackupError

__all__ = ["main", "SERVICE"]

SERVICE = "orderops-backup.service"


def _log(msg: str) -> None:
    print(msg, flush=True)


def _identity() -> bytes:
    data = sys.stdin.buffer.read()
    if b"AGE-SECRET-KEY-" not in data:
        raise BackupError("no age identity on stdin (stream the private key from the operator's machine)")
    return data


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orderops-backup", description="orderops backups and restores")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run")
    sub.add_parser("now")
    ls = sub.add_parser("list")
    ls.add_argument("--s3", action="store_true")
    ls.add_argument("--deep", action="store_true")
    ls.add_argument("--json", action="store_true")
    for name in ("show", "verify", "restore-attachments"):
        sub.add_parser(name).add_argument("ref")
    sub.add_parser("prune")
    rd = sub.add_parser("restore-db")
    rd.add_argument("ref")
    rd.add_argument("--into", required=True)
    rd.add_argument("--jobs", type=int, default=2)
    sub.add_parser("counts").add_argument("database")
    sw = sub.add_parser("swap-db")
    sw.add_argument("database")
    sw.add_argument("--stamp", required=True)
    dd = sub.add_parser("drop-db")
    dd.add_argument("database")
    dd.add_argument("--scratch-prefix", default="")
    sub.add_parser("swap-attachments").add_argument("--stamp", required=True)
    sub.add_parser("notify").add_argument("--unit", required=True)
    return p


def _info_dict(b) -> dict:
    return {"id": b.id, "state": b.state, "problem": b.problem, "where": b.where,
            "bytes": sum(f["bytes"] for f in b.manifest["files"].values()) if b.manifest else None}


def _run(args) -> int:
    if args.cmd == "now":
        # the same unit the timer starts: same environment, same credentials, same OnFailure hook
        proc = subprocess.run(["systemctl", "start", SERVICE], check=False)
        if proc.returncode != 0:
            raise BackupError(f"{SERVICE} failed: see `journalctl -u {SERVICE}`")
        args.cmd, args.ref = "show", "latest"
    cfg = load_config(args.config)
    if args.cmd == "run":
        from .backup import run_backup

        manifest = run_backup(cfg, log=_log)
        _log(f"backup {manifest['id']} complete")
        return 0
    if args.cmd == "list":
        from .manifest import list_local

        if args.s3:
            if not cfg.s3:
                raise BackupError("no S3 bucket configured")
            from .offsite import Offsite

            found = Offsite(cfg.s3).list()
        else:
            found = list_local(Path(cfg.backup_dir), deep=args.deep)
        if args.json:
            print(json.dumps([_info_dict(b) for b in found], indent=2))
        else:
            for b in found:
                print(f"{b.id}  {b.state:12} {b.problem}")
        return 0
    if args.cmd in ("show", "verify"):
        from .restore import resolve, verify

        info = resolve(cfg, args.ref, fetch=args.cmd == "verify", log=lambda m: print(m, file=sys.stderr))
        if args.cmd == "verify":
            info = verify(Path(info.where))
        print(json.dumps(info.manifest, indent=2, sort_keys=True))
        return 0
    if args.cmd == "prune":
        from .backup import backup_lock, prune_local
        from .manifest import list_local

        with backup_lock(Path(cfg.backup_dir)):
            found = list_local(Path(cfg.backup_dir))
            if not found or not found[-1].valid:
                raise BackupError("the newest backup is not valid: retention does not run after a failed backup")
            _log(f"{prune_local(cfg, _log)} valid backups kept")
        return 0
    if args.cmd == "restore-db":
        from .backup import backup_lock
        from .restore import resolve, restore_db, verify

        identity = _identity()
        with backup_lock(Path(cfg.backup_dir)):
            info = verify(Path(resolve(cfg, args.ref, log=_log).where))
            restore_db(cfg, info, identity, args.into, jobs=args.jobs)
        _log(f"restored {info.id} into {args.into}")
        return 0
    if args.cmd == "counts":
        from .restore import count_rows

        print(json.dumps(count_rows(cfg, args.database, cfg.key_tables), sort_keys=True))
        return 0
    if args.cmd == "swap-db":
        from .restore import swap_db

        old = swap_db(cfg, args.database, args.stamp)
        print(json.dumps({"old": old}))
        return 0
    if args.cmd == "drop-db":
        from .restore import drop_db

        drop_db(cfg, args.database, args.scratch_prefix)
        return 0
    if args.cmd == "restore-attachments":
        from .restore import resolve, restore_attachments, verify

        identity = _identity()
        info = verify(Path(resolve(cfg, args.ref, log=_log).where))
        staging = restore_attachments(cfg, info, identity)
        print(json.dumps({"staging": str(staging) if staging else None}))
        return 0
    if args.cmd == "swap-attachments":
        from .restore import swap_attachments

        print(json.dumps({"old": swap_attachments(cfg, args.stamp)}))
        return 0
    if args.cmd == "notify":
        return _notify(cfg, args.unit)
    raise BackupError(f"unknown command {args.cmd}")


def _last_error(unit: str) -> str:
    """The unit's last ``orderops-backup: ...`` line from the journal (the reason it failed)."""
    proc = subprocess.run(["journalctl", "-u", unit, "-n", "50", "-o", "cat", "--no-pager"], capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("orderops-backup: ")]
    return lines[-1][len("orderops-backup: "):][:500] if lines else f"{unit} failed (see journalctl -u {unit})"


def failure_payload(host: str, unit: str, message: str) -> dict:
    """The webhook body: the shape of a failed runbook's (``runbooks/engine/signals.py``)."""
    return {"runbook": "backup", "run_id": unit, "status": "failed", "summary": {"failed": 1},
            "failures": [{"step": "backup", "host": host, "message": message}], "run_dir": ""}


def _notify(cfg, unit: str) -> int:
    """OnFailure hook: POST :func:`failure_payload` to ``webhook_url`` like a failed scheduled runbook."""
    message = _last_error(unit)
    if not cfg.webhook_url:
        _log(f"{unit} failed ({message}); no webhook_url configured")
        return 0
    body = json.dumps(failure_payload(cfg.host or socket.gethostname(), unit, message)).encode()
    req = urllib.request.Request(cfg.webhook_url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "orderops-backup"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - URL from the inventory
            _log(f"notified the webhook: HTTP {resp.status}")
    except OSError as e:
        raise BackupError(f"webhook POST failed: {e}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BackupError as e:
        print(f"orderops-backup: {e}", file=sys.stderr, flush=True)
        return 1
