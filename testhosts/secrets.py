"""Secrets of the local inventory: generated once, kept in a 0600 file outside git.

``.orderops/secrets/local.json`` (dir 0700, file 0600)::

    {"postgres_password": "...", "redis_password": "...", "secret_key": "...", "admin_password": "...",
     "grafana_admin_password": "...", "pg_monitor_password": "..."}

Values are random URL-safe strings (43 characters). Existing values are never replaced; a missing key
is added. The values are never printed by the harness.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from .state import StatePaths, write_json_atomic

SECRET_KEYS = ("postgres_password", "redis_password", "secret_key", "admin_password",
               "grafana_admin_password", "pg_monitor_password")
SECRET_BYTES = 32  # token_urlsafe(32) -> 43 characters
MIN_LENGTH = 32


def generate_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def ensure_local_secrets(paths: StatePaths | None = None) -> Path:
    """Create (or complete) the local secrets file and return its path. Idempotent."""
    paths = paths or StatePaths.from_env()
    paths.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.secrets_dir, 0o700)
    path = paths.secrets_file
    data: dict[str, str] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise RuntimeError(f"{path} is not valid JSON; fix or delete it ({exc})") from exc
        if not isinstance(data, dict):
            raise RuntimeError(f"{path} must hold a JSON object")
    missing = [k for k in SECRET_KEYS if not data.get(k)]
    for key in missing:
        data[key] = generate_secret()
    if missing or not path.exists():
        write_json_atomic(path, data, mode=0o600)
    os.chmod(path, 0o600)
    return path


def ensure_backup_key(paths: StatePaths | None = None) -> Path:
    """Create (once) the local inventory's age key pair for backups: ``keys/backup_age.key``
    (0600, the private key; stays on this machine, restores stream it to the host). Returns its path.
    Raises ``RuntimeError`` when ``age-keygen`` is missing (``make prereqs`` installs ``age``)."""
    import subprocess

    paths = paths or StatePaths.from_env()
    key = paths.keys_dir / "backup_age.key"
    if key.exists():
        return key
    paths.keys_dir.mkdir(parents=True, exist_ok=True)
    tmp = key.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    try:
        subprocess.run(["age-keygen", "-o", str(tmp)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"age-keygen failed ({exc}); install Debian's age (tools/packages.txt)") from exc
    os.chmod(tmp, 0o600)
    tmp.rename(key)
    return key

