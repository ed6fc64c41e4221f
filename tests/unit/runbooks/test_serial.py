"""The per-step ``serial`` mode on the fake executor: 3 hosts, one batch at a time, a failed host
halts the step for the hosts not yet run (reported skipped with the reason) and the rest of the run."""

from __future__ import annotations

import threading
import time

import pytest

from runbooks.core.types import CommandResult
from runbooks.engine.model import Runbook, Step
from runbooks.engine.runner import run


def _apply(ctx):
    """Runs ``apply`` on the host (the fake executor decides whether it fails)."""
    out = ctx.sh("apply")
    return ctx.changed("applied") if out.ok else ctx.failed(f"apply failed: {out.stderr}")


def _after(ctx):
    ctx.sh("after")
    return ctx.ok()


def _rb(serial=1, on_failure="continue"):
    return Runbook("t", "T", "", (Step("apply", _apply, serial=serial, on_failure=on_failure), Step("after", _after)))


def _statuses(res, name):
    rec = next(s for s in res.steps if s.name == name)
    return {h: (r.status, r.message) for h, r in rec.results.items()}


def _timed(fake, delay=0.2):
    """Record (host, start, end) of every ``apply``."""
    spans, lock = [], threading.Lock()

    def resp(host, command):
        start = time.monotonic()
        time.sleep(delay)
        with lock:
            spans.append((host.name, start, time.monotonic()))
        return CommandResult(0, "ok")
    fake.on(r"^apply$", resp)
    return spans


def test_serial_one_runs_one_host_at_a_time_in_inventory_order(hosts, fake, executors, tmp_path):
    spans = _timed(fake)
    res = run(_rb(), hosts, _rb().params(), executors, runs_dir=tmp_path)
    assert [h for h, _, _ in spans] == ["h1", "h2", "h3"]
    for (_, _, end), (_, start, _) in zip(spans, spans[1:]):
        assert start >= end, "a host started before the one before it finished"
    assert {h: s for h, (s, _) in _statuses(res, "apply").items()} == {"h1": "changed", "h2": "changed", "h3": "changed"}
    assert next(s for s in res.steps if s.name == "apply").serial == 1


def test_serial_two_runs_batches_of_two(hosts, fake, executors, tmp_path):
    spans = _timed(fake)
    run(_rb(serial=2), hosts, _rb().params(), executors, runs_dir=tmp_path)
    by_host = {h: (s, e) for h, s, e in spans}
    assert by_host["h3"][0] >= max(by_host["h1"][1], by_host["h2"][1])  # batch 2 after batch 1
    assert by_host["h2"][0] < by_host["h1"][1]  # h1 and h2 together


@pytest.mark.parametrize("on_failure", ["continue", "stop-host"])
def test_a_failed_host_stops_the_step_and_the_run_for_the_remaining_hosts(hosts, fake, executors, tmp_path, on_failure):
    fake.on(r"^apply$", CommandResult(1, "", "dpkg broke"), host="h2")
    res = run(_rb(on_failure=on_failure), hosts, _rb().params(), executors, runs_dir=tmp_path)
    st = _statuses(res, "apply")
    assert st["h1"][0] == "changed"
    assert st["h2"] == ("failed", "apply failed: dpkg broke")
    assert st["h3"] == ("skipped", "not run: serial step stopped after it failed on h2")
    assert "apply" not in fake.commands("h3"), "the host after the failed one was touched"
    after = _statuses(res, "after")
    assert after["h3"][0] == "skipped" and after["h1"][0] == "ok"
    # the failed host itself follows its step's on-failure policy
    assert after["h2"][0] == ("ok" if on_failure == "continue" else "skipped")
    assert res.failed


def test_a_failed_first_host_touches_no_other_host(hosts, fake, executors, tmp_path):
    fake.on(r"^apply$", CommandResult(1, "", "no"), host="h1")
    res = run(_rb(), hosts, _rb().params(), executors, runs_dir=tmp_path)
    st = _statuses(res, "apply")
    assert [st[h][0] for h in ("h1", "h2", "h3")] == ["failed", "skipped", "skipped"]
    assert not any(c == "apply" for h in ("h2", "h3") for c in fake.commands(h))


def test_serial_zero_is_parallel_and_a_failure_stops_nobody_else(hosts, fake, executors, tmp_path):
    fake.on(r"^apply$", CommandResult(1, "", "no"), host="h1")
    res = run(_rb(serial=0), hosts, _rb().params(), executors, runs_dir=tmp_path)
    st = _statuses(res, "apply")
    assert [st[h][0] for h in ("h1", "h2", "h3")] == ["failed", "changed", "changed"]


def test_serial_must_not_be_negative():
    with pytest.raises(ValueError, match="serial must be >= 0"):
        Step("x", _apply, serial=-1)
