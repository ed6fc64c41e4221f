"""Local secrets: generated once, 0600 in a 0700 dir, long random values, never replaced."""

import json
import stat

from testhosts.secrets import SECRET_KEYS, ensure_local_secrets
from testhosts.state import StatePaths, ensure_ssh_key


def paths(tmp_path) -> StatePaths:
    return StatePaths(root=tmp_path / "st", cache=tmp_path / "st" / "cache")


def test_generated_modes_and_lengths(tmp_path):
    p = ensure_local_secrets(paths(tmp_path))
    assert p == tmp_path / "st" / "secrets" / "local.json"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(p.parent.stat().st_mode) == 0o700
    data = json.loads(p.read_text())
    assert sorted(data) == sorted(SECRET_KEYS)
    for value in data.values():
        assert len(value) >= 32
        assert all(c.isalnum() or c in "-_" for c in value)  # URL-safe
    assert len(set(data.values())) == len(data)


def test_idempotent_and_completes_missing_keys(tmp_path):
    p = ensure_local_secrets(paths(tmp_path))
    first = json.loads(p.read_text())
    assert json.loads(ensure_local_secrets(paths(tmp_path)).read_text()) == first
    partial = {"postgres_password": first["postgres_password"]}
    p.write_text(json.dumps(partial))
    p.chmod(0o644)
    data = json.loads(ensure_local_secrets(paths(tmp_path)).read_text())
    assert data["postgres_password"] == first["postgres_password"]
    assert sorted(data) == sorted(SECRET_KEYS)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_ssh_key_generated_once_0600(tmp_path):
    ps = paths(tmp_path)
    key = ensure_ssh_key(ps)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pub = ps.ssh_pub.read_text()
    assert pub.startswith("ssh-ed25519 ")
    ensure_ssh_key(ps)
    assert ps.ssh_pub.read_text() == pub
