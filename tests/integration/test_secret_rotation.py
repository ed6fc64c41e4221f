"""Rotating the PostgreSQL password: a changed ``postgres_password`` reaches the running database
(POSTGRES_PASSWORD only seeds a new data directory), so the stack stays ready, with its data.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import urllib.request

import pytest

from deploys.contract.paths import local_state_dir
from tests.integration.conftest import run_pyinfra

pytestmark = pytest.mark.integration


def _ready(url: str, domain: str) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the local hosts' self-signed certificate
    req = urllib.request.Request(f"{url}/api/ready", headers={"Host": domain})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_postgres_password_rotation_keeps_the_stack_ready(inventory):
    state = local_state_dir()
    path = state / "secrets" / "local.json"
    original = path.read_text()
    rotated = {**json.loads(original), "postgres_password": secrets.token_urlsafe(32)}
    name, data = inventory["app"][0]
    try:
        path.write_text(json.dumps(rotated))
        result = run_pyinfra()
        assert result.returncode == 0, result.output[-4000:]
        assert "Apply a changed database password" in result.output
        assert rotated["postgres_password"] not in result.output
        assert _ready(data["probe_https_url"], data["domain"]) == 200
    finally:
        path.write_text(original)
        os.chmod(path, 0o600)
    back = run_pyinfra()
    assert back.returncode == 0, back.output[-4000:]
    assert _ready(data["probe_https_url"], data["domain"]) == 200
