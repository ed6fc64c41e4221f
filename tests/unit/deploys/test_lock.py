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
