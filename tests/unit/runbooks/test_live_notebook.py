"""Live notebooks without a host: the generated notebook's cells (``runbook notebook``), and the
step-by-step session on the fake executor (lazy lock, second attempts, approval, masking, the
same run records as ``runner.run``)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from runbooks.core.types import CommandResult
from runbooks.engine.model import Runbook, Step, Table
from runbooks.engine.notebook_cells import CONTROLS, build_live_notebook, step_variable
from runbooks.engine.runner import LOCK_STEP, NOT_APPROVED, UNLOCK_STEP, run
from runbooks.engine.session import Session, SessionClosed
from runbooks.library import all_runbooks, get_runbook
from tests.unit.runbooks.conftest import SECRETS

ROOT = Path(__file__).resolve().parents[3]


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_daily_notebook_has_a_parameters_cell_then_doc_and_code_per_step():
    rb = get_runbook("daily")
    nb = build_live_notebook(rb, inventory="inventories/local.py", values={"disk_max_percent": 70}, check=True)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and nb.cells.index(params[0]) == 1
    assigned = {t.id: ast.literal_eval(n.value) for n in ast.parse(params[0].source).body
                for t in n.targets}  # every line is `name = <literal>`: papermill can override each
    assert assigned["inventory"] == "inventories/local.py" and assigned["check"] is True
    assert assigned["disk_max_percent"] == 70                        # the -p value
    assert assigned["load_max_per_cpu"] == 2.0 and assigned["drift"] is True  # typed defaults
    assert set(CONTROLS) | set(rb.params.model_fields) == set(assigned)
    # after the session cell: per step a Markdown cell with its doc, then its code cell
    cells = nb.cells[3:-2]
    assert len(cells) == 2 * len(rb.steps)
    for s, (md, code) in zip(rb.steps, zip(cells[::2], cells[1::2])):
        assert md.cell_type == "markdown" and md.source.startswith(f"## {s.name}") and s.doc.splitlines()[0] in md.source
        assert code.cell_type == "code" and f"session.run({s.name!r})" in code.source
        assert code.source.splitlines()[0].startswith(step_variable(s.name) + " = ")
    assert "session.close()" in nb.cells[-1].source
    for c in _code(nb):
        compile(c.source, "<cell>", "exec")


def test_required_parameter_without_a_value_is_none_and_destructive_cells_say_approve():
    rb = get_runbook("emergency-redeploy")
    nb = build_live_notebook(rb, inventory="inv.py")
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "version = None  # str (required)" in params.source
    destructive = [s for s in rb.steps if s.destructive]
    assert destructive
    for s in destructive:
        assert any(f"session.run({s.name!r})  # destructive: pass approve=True" in c.source for c in _code(nb))


def test_no_runbook_parameter_clashes_with_the_controls():
    for rb in all_runbooks():
        build_live_notebook(rb, inventory="inv.py")  # raises ValueError on a clash
    clash = Runbook("x", "X", "", (), params=type("P", (__import__("pydantic").BaseModel,), {"__annotations__": {"check": int}}))
    with pytest.raises(ValueError, match="check"):
        build_live_notebook(clash, inventory="inv.py")


def test_cli_validates_parameters_before_writing_anything(tmp_path):
    out = tmp_path / "daily.ipynb"
    proc = subprocess.run([sys.executable, "-m", "runbooks", "notebook", "daily", "-i", "inventories/local.py",
                           "-p", "disk_max_percent=200", "-o", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "disk_max_percent" in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


# --- the session ------------------------------------------------------------------------------

def _book():
    calls = {"n": 0}

    def look(ctx):
        out = ctx.sh("systemctl is-active api")
        return ctx.ok(f"api {out.stdout.strip()}", {"seen": out.stdout.strip()}, [Table("t", ["k"], [["v"]])])

    def fix(ctx):
        calls["n"] += 1
        if ctx.check:
            return ctx.skipped("would restart api")
        ctx.sh("systemctl restart api")
        return ctx.changed(f"restarted (password {SECRETS[0]})")

    def wipe(ctx):
        return ctx.changed("wiped")

    rb = Runbook("t", "T", "doc", (Step("look", look, doc="Look."), Step("fix", fix, changes=True),
                                  Step("wipe", wipe, destructive=True)))
    return rb, calls


def _session(rb, hosts, executors, tmp_path, **kw):
    return Session(rb, hosts, rb.params(), executors, runs_dir=tmp_path / "runs", **kw)


def test_lock_is_taken_on_the_first_changing_step_only(hosts, fake, executors, tmp_path):
    fake.on("is-active", "active")
    rb, _ = _book()
    s = _session(rb, hosts, executors, tmp_path)
    view = s.run("look")
    assert view.status == {"h1": "ok", "h2": "ok", "h3": "ok"} and view.data["h1"] == {"seen": "active"}
    assert not any("orderops-lock" in c for c in fake.commands()) and s.locked_hosts == []
    s.run("fix")
    assert sorted(s.locked_hosts) == ["h1", "h2", "h3"]
    result = s.close().result
    assert [st.name for st in result.steps] == ["look", LOCK_STEP, "fix", UNLOCK_STEP]
    assert s.locked_hosts == [h.name for h in hosts]  # recorded; the unlock step released them
    assert {h: r.status for h, r in result.steps[-1].results.items()} == {"h1": "ok", "h2": "ok", "h3": "ok"}


def test_lock_at_start_and_busy_host_runs_nothing(hosts, fake, executors, tmp_path):
    fake.on(r"set -e.*orderops-lock", CommandResult(75, "locked by someone"), host="h2")
    rb, _ = _book()
    s = _session(rb, hosts, executors, tmp_path, lock_at_start=True)
    assert [st.name for st in s._run.result.steps] == [LOCK_STEP]
    assert s.run("look").status["h2"] == "skipped"


def test_a_step_run_twice_is_recorded_twice_and_the_records_are_written_as_it_runs(hosts, fake, executors, tmp_path):
    rb, calls = _book()
    s = _session(rb, hosts[:1], executors, tmp_path)
    run_dir = Path(s.run_dir)
    assert json.loads((run_dir / "result.json").read_text())["steps"] == []
    s.run("fix")
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert [st["name"] for st in on_disk["steps"]] == [LOCK_STEP, "fix"]
    again = s.run("fix")
    assert again.record.attempt == 2 and calls["n"] == 2
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert [(st["name"], st["attempt"]) for st in on_disk["steps"]] == [(LOCK_STEP, 1), ("fix", 1), ("fix", 2)]
    assert "fix (attempt 2)" in (run_dir / "report.md").read_text()
    s.run("look")  # out of order: fine
    s.close()
    events = [json.loads(l)["event"] for l in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run-start" and events[-1] == "run-end"
    assert (run_dir / "report.ipynb").exists()


def test_destructive_step_refuses_without_approval_and_runs_with_it(hosts, fake, executors, tmp_path):
    rb, _ = _book()
    s = _session(rb, hosts[:1], executors, tmp_path)
    refused = s.run("wipe")
    assert refused.status == {"h1": "skipped"} and refused.record.results["h1"].message == NOT_APPROVED
    assert s.run("wipe", approve=True).status == {"h1": "changed"}
    s.close()
    approved = _session(rb, hosts[:1], executors, tmp_path, approve=True)
    assert approved.run("wipe").status == {"h1": "changed"}
    approved.close()


def test_everything_shown_is_masked(hosts, fake, executors, tmp_path):
    rb, _ = _book()
    s = _session(rb, hosts[:1], executors, tmp_path)
    view = s.run("fix")
    shown = view._repr_html_() + repr(view) + json.dumps(view.data) + view.record.model_dump_json()
    closed = s.close()
    shown += closed._repr_html_() + repr(closed)
    assert "restarted" in shown
    for secret in SECRETS:
        assert secret not in shown
    for f in Path(s.run_dir).iterdir():
        assert not any(secret in f.read_text() for secret in SECRETS), f.name


def test_unknown_step_and_closed_session_raise(hosts, fake, executors, tmp_path):
    rb, _ = _book()
    s = _session(rb, hosts[:1], executors, tmp_path)
    with pytest.raises(Exception, match="no step 'nope'.*'look'"):
        s.run("nope")
    first = s.close()
    assert s.close().result is first.result  # idempotent
    with pytest.raises(SessionClosed):
        s.run("look")


def test_session_in_cell_order_gives_the_results_of_a_cli_run(hosts, fake, executors, tmp_path):
    fake.on("is-active", "active")
    rb, _ = _book()
    cli = run(rb, hosts, rb.params(), executors, runs_dir=tmp_path / "cli", approve=True)
    s = _session(rb, hosts, executors, tmp_path, approve=True, lock_at_start=True)
    for st in rb.steps:
        s.run(st.name)
    nb = s.close().result

    def statuses(r):
        return [(st.name, {h: x.status for h, x in st.results.items()}) for st in r.steps]

    assert statuses(nb) == statuses(cli)
    keys = set(json.loads((Path(cli.run_dir) / "result.json").read_text()))
    assert keys == set(json.loads((Path(nb.run_dir) / "result.json").read_text()))
    assert sorted(os.listdir(cli.run_dir)) == sorted(os.listdir(nb.run_dir))


def test_a_deploy_step_takes_the_lock_first_even_in_check_mode(hosts, fake, executors, tmp_path):
    """The deploy executor takes the run's lock again after a deploy, so the run must hold it."""
    rb = Runbook("t", "T", "", (Step("read", lambda ctx: ctx.ok()), Step("drift", lambda ctx: ctx.ok(), executor="pyinfra")))
    s = _session(rb, hosts[:1], executors, tmp_path, check=True)
    s.run("read")
    assert s.locked_hosts == []
    s.run("drift")
    assert s.locked_hosts == ["h1"]
    assert [st.name for st in s.close().result.steps] == ["read", LOCK_STEP, "drift", UNLOCK_STEP]


def test_session_repr_names_run_hosts_and_mode(hosts, fake, executors, tmp_path):
    rb, _ = _book()
    s = _session(rb, hosts[:2], executors, tmp_path, check=True)
    text = repr(s)
    assert s.run_id in text and "h1, h2" in text and "check mode" in text and "look, fix, wipe" in text
    s.close()


def test_a_session_left_open_is_closed_at_interpreter_exit(tmp_path):
    """The kernel's exit (atexit, where no new threads may start) still releases the lock."""
    script = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from runbooks import live
from runbooks.engine.model import Runbook, Step
from runbooks.engine.session import Session
from runbooks.executors.fake import FakeExecutor
from tests.unit.runbooks.conftest import make_host
fake = FakeExecutor()
rb = Runbook("t", "T", "", (Step("s", lambda ctx: ctx.ok()),))
s = Session(rb, [make_host("h1")], rb.params(), {{"remote": fake, "pyinfra": fake, "local": fake}},
            lock_at_start=True, runs_dir={str(tmp_path)!r})
live._OPEN.add(s); live._install_handlers()
print(s.run_dir)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((Path(proc.stdout.strip()) / "result.json").read_text())
    assert [s["kind"] for s in result["steps"]] == ["lock", "unlock"]
    assert result["steps"][-1]["results"]["h1"]["status"] == "ok"
