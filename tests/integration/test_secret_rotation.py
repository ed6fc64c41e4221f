"""Rotating the PostgreSQL password: a changed ``postgres_password`` reaches the running database
(POSTGRES_PASSWORD only seeds a new data directory), so the stack stays ready, with its data.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import secrets
import ssl
import urllib.request

import pytest

from deploys.contract.compose import COMPOSE_PROJECT, compose_command
from deploys.contract.paths import STACK_DIR, local_state_dir
from tests.integration.conftest import run_pyinfra, ssh

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


#: every character that breaks naive quoting: ' " \ $ ` # space é (plus ${...} and $$)
SPECIAL = "q'd\"b\\s$e`h# é${HOME}$$-"


def _inside(data: dict, service: str, variable: str) -> str:
    """SHA-256 of the variable's bytes as the service's container sees them (value never printed)."""
    out = ssh(data, f"sudo {_compose(data, 'exec', '-T', service)} sh -c "
                    f"'printf %s \"${variable}\" | sha256sum'").stdout
    return out.split()[0]


def _compose(data: dict, *args: str) -> str:
    """The contract's compose command line for the host's stack (inventory or default names)."""
    return compose_command(data.get("compose_project", COMPOSE_PROJECT), data.get("stack_dir", STACK_DIR), *args)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_special_character_secrets_round_trip_and_rotate_without_data_loss(inventory):
    """Values with ' " \\ $ ` # space é reach the containers byte for byte; the service logs in to
    PostgreSQL and Redis with them (readiness), also after a rotation of both; data stays."""
    state = local_state_dir()
    path = state / "secrets" / "local.json"
    original = path.read_text()
    name, data = inventory["app"][0]
    key = f"rotation-probe-{secrets.token_hex(4)}"
    redis_cli = (f"sudo {_compose(data, 'exec', '-T', 'redis')} sh -c "
                 "'REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli -h 127.0.0.1 {}'")
    try:
        for round_ in range(2):
            values = {**json.loads(original),
                      "postgres_password": f"{SPECIAL}pg{round_}-{secrets.token_hex(6)}",
                      "redis_password": f"{SPECIAL}rd{round_}-{secrets.token_hex(6)}",
                      "secret_key": f"{SPECIAL}sk{round_}-{secrets.token_hex(6)}"}
            path.write_text(json.dumps(values))
            os.chmod(path, 0o600)
            result = run_pyinfra()
            assert result.returncode == 0, result.output[-4000:]
            for value in values.values():
                assert value not in result.output
            for service, variable, secret in [("api", "POSTGRES_PASSWORD", "postgres_password"),
                                              ("api", "REDIS_PASSWORD", "redis_password"),
                                              ("api", "SECRET_KEY", "secret_key"),
                                              ("redis", "REDIS_PASSWORD", "redis_password")]:
                assert _inside(data, service, variable) == _sha(values[secret]), f"{service} {variable}"
            assert _ready(data["probe_https_url"], data["domain"]) == 200
            if round_ == 0:
                ssh(data, redis_cli.format(f"set {key} kept"))
            else:  # written under the first password, read back under the second
                assert ssh(data, redis_cli.format(f"get {key}")).stdout.strip() == "kept"
            # the database role really has the new password (a TCP login, not the trusted socket)
            login = ssh(data, f"sudo {_compose(data, 'exec', '-T', 'api')} python3 -c "
                              "'import os,psycopg; psycopg.connect(host=\"postgres\", user=\"orderops\", dbname=\"orders\", "
                              "password=os.environ[\"POSTGRES_PASSWORD\"]).close(); print(\"pg ok\")'", check=False)
            assert "pg ok" in login.stdout, login.stderr[-500:]
    finally:
        path.write_text(original)
        os.chmod(path, 0o600)
    back = run_pyinfra()
    assert back.returncode == 0, back.output[-4000:]
    assert _ready(data["probe_https_url"], data["domain"]) == 200
    assert ssh(data, redis_cli.format(f"get {key}")).stdout.strip() == "kept"
