"""``tools/moto_local.py``: the README's local procedure starts a shimmed moto server whose
printed exports are enough for ``orderops-aws`` (plan, apply, a second apply with no changes,
status), and ``stop`` stops it. Runs the tool and the CLI as subprocesses, like an operator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

TOOL = ["tools/moto_local.py"]
INV = ["-i", "inventories/aws_local.py"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exports(text: str) -> dict[str, str]:
    import shlex

    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            out[key] = shlex.split(value)[0]
    return out


@pytest.fixture
def local_endpoint(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ORDEROPS_AWS_"))}
    env["ORDEROPS_STATE_DIR"] = str(tmp_path)
    port = _free_port()
    started = subprocess.run([sys.executable, *TOOL, "start", "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        exports = _exports(started.stdout)
        yield {**env, **exports}, exports, port
    finally:
        stopped = subprocess.run([sys.executable, *TOOL, "stop"], env=env, capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert not (tmp_path / "moto-local.pid").exists()


def _aws(env, *args):
    return subprocess.run([sys.executable, "-m", "deploys.aws.cli", *INV, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_local_procedure(local_endpoint):
    env, exports, port = local_endpoint
    assert exports["ORDEROPS_AWS_ENDPOINT"] == f"http://127.0.0.1:{port}"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ORDEROPS_AWS_ZONE", "ORDEROPS_AWS_READY_URL"} <= set(exports)
    plan = _aws(env, "plan")
    assert plan.returncode == 0, plan.stderr
    first = _aws(env, "apply", "--yes")
    assert first.returncode == 0, first.stderr
    assert "stack orderops-t-main: CREATE_COMPLETE" in first.stdout
    second = _aws(env, "apply", "--yes")
    assert second.returncode == 0 and "stack orderops-t-main (eu-west-1): no changes" in second.stdout, second
    status = _aws(env, "status")
    assert status.returncode == 0 and "recorded release: none" in status.stdout


def test_a_taken_port_fails_at_once_naming_it(tmp_path):
    env = {**os.environ, "ORDEROPS_STATE_DIR": str(tmp_path)}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, *TOOL, "start", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and f"127.0.0.1:{port} is in use" in proc.stderr and "--port" in proc.stderr
    assert not (tmp_path / "moto-local.pid").exists()
