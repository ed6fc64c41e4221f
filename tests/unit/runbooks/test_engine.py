"""The runbook engine on the fake executor: ordering, parallel hosts, timeouts, retries, check
mode, approval, failure policies, the host lock, masking, rotation and the result schema."""

from __future__ import annotations

import json
import os
import threading
import time

import nbformat
import pytest
from pydantic import BaseModel, ConfigDict

from runbooks.engine.model import NoParams, Runbook, Step, StepResult, Table, step
from runbooks.engine.results import SCHEMA_VERSION
from runbooks.engine.rotation import EVENTS_FILE, NOTEBOOK_FILE, REPORT_FILE, RESULT_FILE, rotate_runs, run_dirs
from runbooks.engine.runner import LOCK_STEP, UNLOCK_STEP, run
from runbooks.core.types import CommandResult
from tests.unit.runbooks.conftest import SECRETS, make_host


def _run(rb, hosts, executors, tmp_path, **kw):
    return run(rb, hosts, rb.params(), executors, runs_dir=tmp_path / "runs", **kw)


def _result(res):
    return json.loads((res.run_dir and open(os.path.join(res.run_dir, RESULT_FILE)).read()))


def _statuses(res, step_name):
    rec = next(s for s in res.steps if s.name == step_name)
    return {h: r.status for h, r in rec.results.items()}


def test_steps_are_ordered_and_hosts_run_in_parallel(hosts, executors, tmp_path):
    log: list[tuple[str, str, float, float]] = []
    lock = threading.Lock()

    def slow(name):
        def f(ctx):
            start = time.monotonic()
            time.sleep(0.4)
            with lock:
                log.append((name, ctx.host.name, start, time.monotonic()))
            return ctx.ok(name)
        return f

    rb = Runbook("t", "T", "", (Step("one", slow("one")), Step("two", slow("two"))))
    t0 = time.monotonic()
    res = _run(rb, hosts, executors, tmp_path)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.6, f"3 hosts x 2 steps of 0.4 s should run in ~0.8 s in parallel, took {elapsed:.2f}"
    last_one_end = max(e for n, _, _, e in log if n == "one")
    first_two_start = min(s for n, _, s, _ in log if n == "two")
    assert first_two_start >= last_one_end, "step two started before step one finished on every host"
    assert [s.name for s in res.steps] == [LOCK_STEP, "one", "two", UNLOCK_STEP]
    assert res.status == "ok"


def test_step_timeout_fails_the_host_quickly(hosts, fake, executors, tmp_path):
    fake.on(r"^sleep", CommandResult(0, "done"), delay=30)

    def f(ctx):
        ctx.sh("sleep 30")
        return ctx.ok()

    rb = Runbook("t", "T", "", (Step("slow", f, timeout=0.5),))
    t0 = time.monotonic()
    res = _run(rb, hosts[:1], executors, tmp_path)
    assert time.monotonic() - t0 < 5
    hr = next(s for s in res.steps if s.name == "slow").results["h1"]
    assert hr.status == "failed" and "timed out" in hr.message
    assert res.failed


def test_retries_until_success(hosts, executors, tmp_path):
    attempts = {"n": 0}

    def flaky(ctx):
        attempts["n"] += 1
        return ctx.failed("not yet") if attempts["n"] < 3 else ctx.ok("now")

    rb = Runbook("t", "T", "", (Step("flaky", flaky, retries=2, retry_delay=0.01),))
    res = _run(rb, hosts[:1], executors, tmp_path)
    hr = next(s for s in res.steps if s.name == "flaky").results["h1"]
    assert (hr.status, hr.attempts, hr.message) == ("ok", 3, "now")


def test_retries_exhausted_reports_failure(hosts, executors, tmp_path):
    rb = Runbook("t", "T", "", (Step("bad", lambda ctx: ctx.failed("nope"), retries=1, retry_delay=0.01),))
    res = _run(rb, hosts[:1], executors, tmp_path)
    hr = next(s for s in res.steps if s.name == "bad").results["h1"]
    assert (hr.status, hr.attempts) == ("failed", 2)


def test_check_mode_changing_steps_only_report(hosts, fake, executors, tmp_path):
    def change(ctx):
        if ctx.check:
            return ctx.skipped("check mode: would restart api")
        ctx.sh("docker compose restart api")
        return ctx.changed("restarted")

    def read(ctx):
        return ctx.ok(ctx.sh("uptime").stdout)

    rb = Runbook("t", "T", "", (Step("read", read), Step("change", change, changes=True)))
    res = _run(rb, hosts[:1], executors, tmp_path, check=True)
    assert _statuses(res, "change") == {"h1": "skipped"}
    assert not any("restart" in c for c in fake.commands())
    assert "uptime" in fake.commands()
    assert _result(res)["check"] is True


def test_check_mode_guard_flags_a_step_that_changed(hosts, executors, tmp_path):
    rb = Runbook("t", "T", "", (Step("rogue", lambda ctx: ctx.changed("oops"), changes=True),))
    res = _run(rb, hosts[:1], executors, tmp_path, check=True)
    assert _statuses(res, "rogue") == {"h1": "failed"}


def test_destructive_step_needs_approval(hosts, executors, tmp_path):
    ran = []
    rb = Runbook("t", "T", "", (Step("wipe", lambda ctx: ran.append(ctx.host.name) or ctx.changed("done"), destructive=True),))
    res = _run(rb, hosts, executors, tmp_path)
    assert ran == [] and set(_statuses(res, "wipe").values()) == {"skipped"}
    assert "not approved" in next(s for s in res.steps if s.name == "wipe").results["h1"].message

    asked = []
    res = _run(rb, hosts, executors, tmp_path, approve=lambda st: asked.append(st.name) or True)
    assert asked == ["wipe"] and sorted(ran) == ["h1", "h2", "h3"]
    assert set(_statuses(res, "wipe").values()) == {"changed"}

    ran.clear()
    res = _run(rb, hosts, executors, tmp_path, approve=True)
    assert len(ran) == 3 and _result(res)["approved"] is True


def test_on_failure_policies(executors, tmp_path):
    hosts = [make_host("h1"), make_host("h2")]

    def fail_on_h1(ctx):
        return ctx.failed("broken") if ctx.host.name == "h1" else ctx.ok()

    after = Step("after", lambda ctx: ctx.ok("ran"))
    res = _run(Runbook("t", "T", "", (Step("s", fail_on_h1, on_failure="continue"), after)), hosts, executors, tmp_path)
    assert _statuses(res, "after") == {"h1": "ok", "h2": "ok"}

    res = _run(Runbook("t", "T", "", (Step("s", fail_on_h1, on_failure="stop-host"), after)), hosts, executors, tmp_path)
    assert _statuses(res, "after") == {"h1": "skipped", "h2": "ok"}

    res = _run(Runbook("t", "T", "", (Step("s", fail_on_h1, on_failure="abort"), after)), hosts, executors, tmp_path)
    assert _statuses(res, "after") == {"h1": "skipped", "h2": "skipped"}
    assert res.status == "aborted" and _result(res)["status"] == "aborted"


def test_step_exception_is_a_failure_and_lock_is_released(hosts, fake, executors, tmp_path):
    def boom(ctx):
        raise RuntimeError("kaputt")

    res = _run(Runbook("t", "T", "", (Step("boom", boom),)), hosts[:1], executors, tmp_path)
    hr = next(s for s in res.steps if s.name == "boom").results["h1"]
    assert hr.status == "failed" and "kaputt" in hr.message
    cmds = fake.commands("h1")
    assert "orderops-lock" in cmds[0] and "rm -f" not in cmds[0]
    assert "orderops-lock" in cmds[-1] and "rm -f" in cmds[-1]
    assert _statuses(res, UNLOCK_STEP) == {"h1": "ok"}


def test_busy_host_lock_skips_that_host_only(hosts, fake, executors, tmp_path):
    fake.on(r"set -e.*orderops-lock", CommandResult(75, "locked by mallory@elsewhere (run other) until 2030"), host="h2")
    ran = []
    res = _run(Runbook("t", "T", "", (Step("s", lambda ctx: ran.append(ctx.host.name) or ctx.ok()),)), hosts, executors, tmp_path)
    assert _statuses(res, LOCK_STEP) == {"h1": "ok", "h2": "failed", "h3": "ok"}
    assert "mallory" in next(s for s in res.steps if s.name == LOCK_STEP).results["h2"].message
    assert sorted(ran) == ["h1", "h3"]
    assert set(_statuses(res, UNLOCK_STEP)) == {"h1", "h3"}  # h2's lock is not ours: never released


def test_lock_uses_sudo_and_the_deploy_lock_script(hosts, fake, executors, tmp_path):
    from deploys.contract.lock import SCRIPT_NAME, acquire_command

    _run(Runbook("t", "T", "", (Step("s", lambda ctx: ctx.ok()),)), hosts[:1], executors, tmp_path, run_id="rid-1")
    first = fake.calls[0]
    assert first.sudo
    expected = acquire_command("rid-1", 600, "x", now=0)
    assert first.command.split(SCRIPT_NAME)[0] == expected.split(SCRIPT_NAME)[0]


def test_targets_by_group(executors, tmp_path):
    hosts = [make_host("a1", ("app",)), make_host("c1", ("controller",))]
    res = _run(Runbook("t", "T", "", (Step("app-only", lambda ctx: ctx.ok(), target="app"), Step("every", lambda ctx: ctx.ok(), target="all"))), hosts, executors, tmp_path)
    assert set(_statuses(res, "app-only")) == {"a1"}
    assert set(_statuses(res, "every")) == {"a1", "c1"}


def test_secrets_are_masked_in_all_four_outputs(hosts, executors, tmp_path):
    leak = SECRETS[0]

    @step("leaky")
    def leaky(ctx):
        """Docs mention nothing secret."""
        return ctx.failed(f"password={leak}", {"dsn": f"postgresql://u:{leak}@db", "list": [SECRETS[1]]},
                          [Table("env", ["k", "v"], [["SECRET_KEY", SECRETS[2]], [SECRETS[3], "x"]])])

    res = _run(Runbook("t", "T", "", (leaky,)), hosts[:1], executors, tmp_path)
    names = [EVENTS_FILE, RESULT_FILE, REPORT_FILE, NOTEBOOK_FILE]
    for name in names:
        text = open(os.path.join(res.run_dir, name)).read()
        for secret in SECRETS:
            assert secret not in text, f"{name} leaks a secret"
        assert "********" in text, name


def test_result_schema_and_notebook(hosts, executors, tmp_path):
    class P(BaseModel):
        model_config = ConfigDict(extra="forbid")
        threshold: int = 5

    @step("measure")
    def measure(ctx):
        """Measure **something**."""
        return ctx.ok("fine", {"value": 3}, [Table("numbers", ["n"], [[1], [2]])])

    rb = Runbook("t", "Title", "doc", (measure,), params=P)
    res = run(rb, hosts[:2], P(threshold=7), executors, runs_dir=tmp_path / "runs", inventory="inv.py")
    data = _result(res)
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert set(data) >= {"run_id", "runbook", "title", "inventory", "check", "approved", "params", "limit",
                         "started_at", "finished_at", "duration_s", "status", "hosts", "steps", "summary"}
    assert data["params"] == {"threshold": 7} and data["hosts"] == ["h1", "h2"]
    step_rec = next(s for s in data["steps"] if s["name"] == "measure")
    assert set(step_rec) >= {"name", "doc", "kind", "target", "executor", "changes", "destructive", "on_failure", "results"}
    assert [s["kind"] for s in data["steps"]] == ["lock", "step", "unlock"]
    hr = step_rec["results"]["h1"]
    assert set(hr) == {"status", "message", "data", "tables", "files", "attempts", "duration_s", "started_at"}
    assert hr["tables"] == [{"title": "numbers", "columns": ["n"], "rows": [[1], [2]]}]
    assert data["summary"] == {"ok": 6, "changed": 0, "failed": 0, "skipped": 0}
    events = [json.loads(l) for l in open(os.path.join(res.run_dir, "events.jsonl"))]
    assert events[0]["event"] == "run-start" and events[-1]["event"] == "run-end"
    assert sum(1 for e in events if e["event"] == "host-result") == 6
    nb = nbformat.read(os.path.join(res.run_dir, "report.ipynb"), as_version=4)
    nbformat.validate(nb)
    md_cells = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any("Measure **something**." in c for c in md_cells)
    report = open(os.path.join(res.run_dir, "report.md")).read()
    assert "| step | h1 | h2 |" in report and "Measure **something**." in report


def test_previous_run_data_reaches_the_next_run(hosts, executors, tmp_path):
    seen = []

    def count(ctx):
        seen.append(ctx.previous.get("count", {}).get("n"))
        return ctx.ok("", {"n": len(seen)})

    rb = Runbook("t", "T", "", (Step("count", count),))
    _run(rb, hosts[:1], executors, tmp_path)
    _run(rb, hosts[:1], executors, tmp_path)
    assert seen == [None, 1]


def test_rotation_by_count_and_age(tmp_path):
    root = tmp_path / "runs"
    for i in range(6):
        d = root / f"2026010{i}T000000Z-daily-00000{i}"
        d.mkdir(parents=True)
        (d / "result.json").write_text("{}")
    old = root / "20250101T000000Z-daily-000000"
    old.mkdir()
    (old / "result.json").write_text("{}")
    os.utime(old, (time.time() - 40 * 86400, time.time() - 40 * 86400))
    (root / "not-a-run").mkdir()
    removed = rotate_runs(root, keep=4, max_age_days=30)
    names = [d.name for d in run_dirs(root)]
    assert old in removed
    assert names == [f"2026010{i}T000000Z-daily-00000{i}" for i in (2, 3, 4, 5)]
    assert (root / "not-a-run").exists()


def test_runner_rotates_old_runs(hosts, executors, tmp_path):
    rb = Runbook("t", "T", "", (Step("s", lambda ctx: ctx.ok()),))
    for _ in range(4):
        _run(rb, hosts[:1], executors, tmp_path, keep_runs=2)
    assert len(run_dirs(tmp_path / "runs")) == 2


def test_step_model_validation():
    with pytest.raises(ValueError):
        Step("x", lambda ctx: None, timeout=0)
    with pytest.raises(ValueError):
        Runbook("t", "T", "", (Step("a", lambda c: None), Step("a", lambda c: None)))
    assert Step("d", lambda c: None, destructive=True).changes
    assert NoParams.model_fields == {}


def test_bad_step_return_value_is_a_failure(hosts, executors, tmp_path):
    res = _run(Runbook("t", "T", "", (Step("bad", lambda ctx: "not a result"),)), hosts[:1], executors, tmp_path)
    assert _statuses(res, "bad") == {"h1": "failed"}


def test_interrupt_aborts_the_run_writes_reports_and_releases_locks(hosts, fake, executors, tmp_path):
    """Ctrl-C, or SIGTERM/SIGHUP turned into KeyboardInterrupt by the CLI, while a step runs."""
    import signal

    def interrupted(ctx):
        if ctx.host.name == "h1":  # one signal, as systemd sends one SIGTERM
            os.kill(os.getpid(), signal.SIGINT)  # a real signal: wakes the main thread waiting on the step
        time.sleep(0.5)
        return ctx.ok("late")

    rb = Runbook("t", "T", "", (Step("slow", interrupted),))
    # a shell that starts pytest in the background leaves SIGINT ignored: install Python's handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(rb, hosts, executors, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    data = json.loads((run_dir / "result.json").read_text())
    assert data["status"] == "aborted"
    assert (run_dir / "report.md").exists() and (run_dir / "report.ipynb").exists()
    released = [c for c in fake.calls if "orderops-lock" in c.command and "released" in c.command]
    assert {c.host for c in released} == {h.name for h in hosts}
