"""The host contract's lock protocol (deploys/contract/lock.py), run for real with sh and flock in a temp directory."""

import subprocess
import time

from deploys.contract.lock import LOCKED_EXIT, acquire_command, release_command


def run(command):
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout.strip()


def test_acquire_reenter_block_release(tmp_path):
    d = str(tmp_path / "lockdir")
    assert run(acquire_command("run-a", 600, "alice@ctl", lock_dir=d)) == (0, "acquired")
    assert run(acquire_command("run-a", 600, "alice@ctl", lock_dir=d)) == (0, "renewed")
    rc, out = run(acquire_command("run-b", 600, "bob@ctl", lock_dir=d))
    assert rc == LOCKED_EXIT
    assert "locked by alice@ctl (run run-a)" in out
    assert run(release_command("run-b", lock_dir=d)) == (0, "not-held")
    assert run(release_command("run-a", lock_dir=d)) == (0, "released")
    assert run(acquire_command("run-b", 600, "bob@ctl", lock_dir=d)) == (0, "acquired")


def test_stale_lock_is_taken_over(tmp_path):
    d = str(tmp_path / "lockdir")
    past = int(time.time()) - 7200
    assert run(acquire_command("dead-run", 60, "carol@ctl", now=past, lock_dir=d))[0] == 0
    rc, out = run(acquire_command("run-b", 600, "bob@ctl", lock_dir=d))
    assert rc == 0 and out == "taken-over carol@ctl (run dead-run)"
    assert (tmp_path / "lockdir" / "host.lock").read_text().split()[0] == "run-b"


def test_concurrent_acquirers_one_wins(tmp_path):
    d = str(tmp_path / "lockdir")
    procs = [
        subprocess.Popen(["sh", "-c", acquire_command(f"run-{i}", 600, "x@y", lock_dir=d)],
                         stdout=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    codes = [p.wait() for p in procs]
    assert sorted(codes) == [0] + [LOCKED_EXIT] * 5


# --- the lock operations (deploys/operations/lock.py): nothing runs on the host while pyinfra plans ---

from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
from pyinfra.context import ctx_host, ctx_state  # noqa: E402

from deploys.operations import lock as lock_ops  # noqa: E402


class _Output:
    def __init__(self, text: str):
        self.stdout_lines, self.stderr_lines = ([text] if text else []), []


class _Host:
    """Context host recording the commands run on it (``run_shell_command``) and its noops."""

    def __init__(self, reply: tuple[bool, str] = (True, "acquired")):
        self.reply, self.ran, self.noops, self.logs = reply, [], [], []
        self.name, self.data = "fakehost", {}

    def run_shell_command(self, command, **kwargs):
        self.ran.append(command.get_raw_value())
        return self.reply[0], _Output(self.reply[1])

    def noop(self, description):
        self.noops.append(description)

    def log(self, message, *a):
        self.logs.append(message)


def _run_lock_op(op, executing: bool, host: _Host, **kwargs) -> list[str]:
    with ctx_state.use(SimpleNamespace(is_executing=executing)), ctx_host.use(host):
        return [c.get_raw_value() for c in op._inner(**kwargs)]


@pytest.mark.parametrize("op, kwargs", [(lock_ops.acquire, {"ttl": 60, "run_id": "run-a"}),
                                        (lock_ops.release, {"run_id": "run-a"}), (lock_ops.force_release, {})],
                         ids=["acquire", "release", "force_release"])
def test_lock_operations_run_nothing_while_planning(op, kwargs):
    """The planning pass (without -y, and all of --dry): no lock script on the host, no change counted."""
    host = _Host()
    assert _run_lock_op(op, False, host, **kwargs) == []
    assert host.ran == [] and len(host.noops) == 1  # reported, never run


def test_acquire_runs_the_contract_script_at_execution_and_reports_a_noop():
    host = _Host((True, "renewed"))
    assert _run_lock_op(lock_ops.acquire, True, host, ttl=60, run_id="run-a") == []  # no change counted
    assert len(host.ran) == 1 and "orderops-lock" in host.ran[0] and "run-a" in host.ran[0]
    assert host.noops == ["host lock held by run run-a"]
    host = _Host((True, "released"))
    assert _run_lock_op(lock_ops.release, True, host, run_id="run-a") == []
    assert len(host.ran) == 1 and "released" in host.ran[0] and host.noops


def test_acquire_on_a_busy_host_fails_at_execution():
    host = _Host((False, "locked by bob@ctl (run run-b) until 2026-12-05T00:00:00Z"))
    commands = _run_lock_op(lock_ops.acquire, True, host, ttl=60, run_id="run-a")
    assert len(commands) == 1 and "host is busy: locked by bob@ctl (run run-b)" in commands[0]
    assert commands[0].endswith(f"exit {LOCKED_EXIT}")
