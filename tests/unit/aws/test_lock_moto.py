"""The environment lock of a killed run: taken over when its holder died on this machine, kept
otherwise (with the way to break it in the message), and ``orderops-aws unlock --yes``.

Against moto's server mode (tests/support/moto_aws.py); the dead pid is a real exited process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from deploys.aws import cli, lock
from deploys.aws.errors import LockHeld
from deploys.contract.aws_lock import TABLE, ensure_table

INV = ["-i", "inventories/aws_local.py"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(aws, host: str, pid: int) -> None:
    """The item a run writes, as if that run (``host``, ``pid``) were still holding it for an hour."""
    ddb = aws.client("dynamodb")
    ensure_table(ddb)
    holder = json.dumps({"purpose": "apply", "host": host, "pid": pid, "since": int(time.time()), "run_id": ""})
    ddb.put_item(TableName=TABLE, Item={"lock": {"S": aws.settings.name}, "owner": {"S": "killed-run"},
                                        "run_id": {"S": ""}, "holder": {"S": holder},
                                        "expires_at": {"N": str(int(time.time()) + 3600)}})


def test_lock_of_a_dead_pid_on_this_host_is_taken_over_with_a_warning(aws, capsys):
    pid = _dead_pid()
    _plant(aws, socket.gethostname(), pid)
    token = lock.acquire(aws, "next run")
    try:
        err = capsys.readouterr().err
        assert "took over" in err and f'"pid": {pid}' in err
    finally:
        assert lock.release(aws, token)


@pytest.mark.parametrize("where", ["other-host", "live-pid"])
def test_lock_of_another_host_or_a_live_pid_is_kept(aws, where):
    host, pid = ("build-7.example", _dead_pid()) if where == "other-host" else (socket.gethostname(), os.getpid())
    _plant(aws, host, pid)
    try:
        with pytest.raises(LockHeld) as err:
            lock.acquire(aws, "next run")
        assert f'"pid": {pid}' in str(err.value) and "unlock --yes" in str(err.value)
    finally:
        assert lock.break_lock(aws)


def test_unlock_verb_breaks_the_lock(aws, capsys):
    _plant(aws, "build-7.example", 4242)
    assert cli.main([*INV, "unlock"]) == 3
    with pytest.raises(LockHeld):
        lock.acquire(aws, "still held")
    capsys.readouterr()
    assert cli.main([*INV, "unlock", "--yes"]) == 0
    assert "build-7.example" in capsys.readouterr().out
    assert lock.release(aws, lock.acquire(aws, "free again"))
    assert cli.main([*INV, "unlock", "--yes"]) == 0
    assert "was not locked" in capsys.readouterr().out
