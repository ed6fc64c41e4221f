"""Live runbook notebooks against the local test host, in a real kernel (ipykernel):

* ``runbook notebook daily --check --execute`` (papermill) gives the step statuses of
  ``runbook run daily --check``, writes the same run records, and its executed notebook (the run's
  ``report.ipynb``) holds the results and no secret of the inventory;
* the same session driven cell by cell: a stopped container fails the step's cell with the CLI's
  message; a destructive step's cell refuses without approval; a cell run twice is recorded twice;
* the kernel stopping releases the lock; a kernel killed with SIGKILL leaves it to expire by its TTL.

Needs a deployed test host (the fixture converges it: seconds when it already is).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from deploys.contract.lock import release_command
from deploys.contract.paths import LOCK_FILE, local_state_dir
from runbooks.engine.runner import NOT_APPROVED
from runbooks.engine.targets import load_inventory
from runbooks.library import get_runbook
from tests.integration.conftest import INVENTORY, ROOT, ssh

pytestmark = pytest.mark.integration

#: the test host shares this machine's load: thresholds no test here probes are relaxed
RELAXED = ["-p", "load_max_per_cpu=100", "-p", "memory_max_percent=100"]
RELAXED_KW = "load_max_per_cpu=100, memory_max_percent=100"


def _secrets() -> list[str]:
    return [v for v in json.loads((local_state_dir() / "secrets" / "local.json").read_text()).values() if len(str(v)) >= 4]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def _cli(*args: str, runs_dir: Path) -> tuple[subprocess.CompletedProcess, Path]:
    before = set(os.listdir(runs_dir))
    proc = subprocess.run([sys.executable, "-m", "runbooks", *args, "--runs-dir", str(runs_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    sys.stdout.write(proc.stdout[-5000:] + proc.stderr[-3000:])
    new = sorted(set(os.listdir(runs_dir)) - before)
    assert new, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, runs_dir / new[-1]


def _steps(run_dir: Path) -> list[tuple[str, dict[str, str]]]:
    data = json.loads((run_dir / "result.json").read_text())
    return [(s["name"], {h: r["status"] for h, r in s["results"].items()}) for s in data["steps"] if s["kind"] == "step"]


def _lock_holder(data) -> str:
    return ssh(data, f"sudo cat {LOCK_FILE} 2>/dev/null || true").stdout.strip()


class Kernel:
    """A real ipykernel (jupyter_client), run from the repository root; :meth:`cell` runs code as
    a notebook cell and returns its outputs (nbclient's output dicts)."""

    def __init__(self):
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT))
        self.km.shutdown_wait_time = 60  # releasing the lock at exit is one SSH round trip (README)

    def cell(self, code: str, timeout: float = 600) -> list[dict]:
        outputs: list[dict] = []

        def hook(msg):
            kind = msg["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"output_type": kind, **msg["content"]})

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        assert reply["content"]["status"] in ("ok", "error"), reply
        return outputs

    def value(self, expr: str):
        """The JSON value of ``expr`` in the kernel."""
        out = self.cell(f"import json as _j; print(_j.dumps({expr}))")
        text = "".join(o.get("text", "") for o in out if o["output_type"] == "stream" and o.get("name") == "stdout")
        assert text, out
        return json.loads(text)

    def shutdown(self, now: bool = False):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=now)


def test_papermill_run_of_daily_matches_the_cli_run_and_keeps_no_secret(app_host, runs_dir, tmp_path):
    name, data = app_host
    cli, cli_dir = _cli("run", "daily", "-i", INVENTORY, "--check", *RELAXED, runs_dir=runs_dir)
    out = tmp_path / "daily.ipynb"
    nb_proc, nb_dir = _cli("notebook", "daily", "-i", INVENTORY, "--check", *RELAXED, "-o", str(out), "--execute",
                           runs_dir=runs_dir)
    assert nb_proc.returncode == cli.returncode, nb_proc.stderr[-2000:]
    assert _steps(nb_dir) == _steps(cli_dir)
    assert [name for name, _ in _steps(nb_dir)] == [s.name for s in get_runbook("daily").steps]  # every step ran
    assert sorted(os.listdir(nb_dir)) == sorted(os.listdir(cli_dir))  # events.jsonl, result.json, report.md/.ipynb
    assert set(json.loads((nb_dir / "result.json").read_text())) == set(json.loads((cli_dir / "result.json").read_text()))
    assert _lock_holder(data) == "", "the notebook run left its lock"
    executed = nbformat.read(str(nb_dir / "report.ipynb"), as_version=4)
    assert "papermill" in executed.metadata  # the executed notebook itself is the run's report
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    service = next(c for c in executed.cells if c.cell_type == "code" and "session.run('Service status')" in c.source)
    html = "".join(o.get("data", {}).get("text/html", "") for o in service.outputs)
    assert name in html and "services running and healthy" in html
    for f in [*nb_dir.iterdir(), out]:
        text = f.read_text()
        for secret in _secrets():
            assert secret not in text, f"a secret of the inventory in {f.name}"


def test_step_by_step_cells_fail_refuse_and_rerun_like_the_cli(app_host, runs_dir):
    name, data = app_host
    ssh(data, "sudo docker stop orderops-nginx-1 >/dev/null")
    k = Kernel()
    try:
        _, cli_dir = _cli("run", "daily", "-i", INVENTORY, "--check", "-p", "drift=false", *RELAXED, runs_dir=runs_dir)
        cli_steps = json.loads((cli_dir / "result.json").read_text())["steps"]
        cli_msg = next(s for s in cli_steps if s["name"] == "Service status")["results"][name]["message"]
        assert "nginx" in cli_msg
        k.cell(f"from runbooks.live import open_session\n"
               f"s = open_session('daily', inventory={INVENTORY!r}, check=True, runs_dir={str(runs_dir)!r},"
               f" params=dict(drift=False, {RELAXED_KW}))")
        out = k.cell("v = s.run('Service status'); v")
        html = "".join(o.get("data", {}).get("text/html", "") for o in out)
        assert "failed" in html and "nginx" in html, out
        assert k.value("v.status") == {name: "failed"}
        assert k.value(f"v.record.results[{name!r}].message") == cli_msg
        k.cell("v2 = s.run('Service status')")  # the cell again: a second attempt
        assert k.value("v2.record.attempt") == 2
        k.cell("r = s.close()")
        run_dir = Path(k.value("s.run_dir"))
        steps = json.loads((run_dir / "result.json").read_text())["steps"]
        assert [(s["name"], s["attempt"]) for s in steps] == [("Service status", 1), ("Service status", 2)]
    finally:
        ssh(data, "sudo docker start orderops-nginx-1 >/dev/null")
        k.shutdown()
    # a destructive step refuses without approval (and takes, then releases, the lock)
    k = Kernel()
    try:
        k.cell(f"from runbooks.live import open_session\n"
               f"s = open_session('emergency-redeploy', inventory={INVENTORY!r}, runs_dir={str(runs_dir)!r},"
               f" params=dict(version='refused-tag'))")
        k.cell("v = s.run('Deploy the new version')")
        assert k.value("v.status") == {name: "skipped"}
        assert k.value(f"v.record.results[{name!r}].message") == NOT_APPROVED
        assert k.value("s.locked_hosts") == [name]
        k.cell("s.close()")
        assert _lock_holder(data) == ""
    finally:
        k.shutdown()
    for _ in range(60):  # nginx healthy again for the next tests
        if ssh(data, "sudo docker inspect -f '{{.State.Health.Status}}' orderops-nginx-1", check=False).stdout.strip() == "healthy":
            break
        time.sleep(2)


def test_parameters_are_checked_before_the_host_is_touched(runs_dir):
    k = Kernel()
    try:
        out = k.cell(f"from runbooks.live import open_session\n"
                     f"s = open_session('daily', inventory={INVENTORY!r}, runs_dir={str(runs_dir)!r}, params=dict(disk_max_percent=500))")
        err = next(o for o in out if o["output_type"] == "error")
        assert err["ename"] == "NotebookRunError" and err["traceback"] == [
            "runbook: runbook 'daily': parameter disk_max_percent: Input should be less than or equal to 100"]
    finally:
        k.shutdown()


def test_kernel_stop_releases_the_lock_and_a_killed_kernel_leaves_it_to_the_ttl(app_host, runs_dir):
    name, data = app_host
    opened = (f"from runbooks.live import open_session\n"
              f"s = open_session('emergency-restart', inventory={INVENTORY!r}, runs_dir={str(runs_dir)!r}, lock_at_start=True)")
    k = Kernel()
    k.cell(opened)
    run_id = k.value("s.run_id")
    assert _lock_holder(data).startswith(run_id + " ")
    k.shutdown(now=False)  # Jupyter's shutdown / restart: the session closes at exit
    assert _lock_holder(data) == ""
    assert json.loads((runs_dir / run_id / "result.json").read_text())["steps"][-1]["kind"] == "unlock"

    k = Kernel()
    k.cell(opened)
    run_id = k.value("s.run_id")
    os.kill(k.km.provisioner.process.pid, signal.SIGKILL)  # nothing can run: the lock stays until its TTL
    try:
        held = _lock_holder(data).split()
        assert held[0] == run_id
        ttl = load_inventory(ROOT / INVENTORY)[0].settings.lock_ttl
        assert 0 < int(held[1]) - time.time() <= ttl  # expires by the host's lock_ttl (then stale: taken over)
    finally:
        ssh(data, f"sudo bash -c {shlex.quote(release_command(run_id))}", check=False)
        k.shutdown(now=True)
    assert _lock_holder(data) == ""
