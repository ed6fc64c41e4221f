"""runbooks.core: process groups (timeouts and cancellation kill the whole group), the error
mapping of child processes, the Deployer capability, executors as context managers."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from runbooks.core.errors import CommandCancelled, CommandTimeout, ExecutorError
from runbooks.core.process import Scope, run_process, use_scope
from runbooks.core.types import ClosingExecutor, CommandResult, Deployer, Executor
from runbooks.engine.model import Runbook, Step
from runbooks.engine.runner import run
from runbooks.executors.ansible import AnsibleExecutor
from runbooks.executors.fake import FakeExecutor
from runbooks.executors.local import LocalExecutor
from runbooks.executors.pyinfra_exec import PyinfraExecutor
from tests.unit.runbooks.conftest import make_host


def _alive(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _wait_gone(marker: str, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(marker)


def test_timeout_kills_the_whole_process_group():
    marker = f"orderops-test-{uuid.uuid4().hex}"
    # a background grandchild that would outlive a plain kill of bash
    cmd = f"exec -a {marker} sleep 60 & exec -a {marker}-2 sleep 60"
    with pytest.raises(CommandTimeout, match="timed out after 0.5 s"):
        LocalExecutor().run(make_host("h1"), f"bash -c '{cmd}'", timeout=0.5)
    assert _wait_gone(marker) == []


def test_cancel_kills_running_groups_and_refuses_new_commands():
    marker = f"orderops-test-{uuid.uuid4().hex}"
    scope = Scope("step s on h1")
    errors: list[BaseException] = []

    def step():
        with use_scope(scope):
            try:
                run_process(["bash", "-c", f"exec -a {marker} sleep 60 & wait"], timeout=60, what="cmd")
            except BaseException as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

    t = threading.Thread(target=step)
    t.start()
    deadline = time.monotonic() + 5
    while not _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(marker), "the child never started"
    assert scope.cancel("step timed out after 1 s", grace=0.5)
    t.join(10)
    assert not t.is_alive()
    assert isinstance(errors[0], CommandCancelled) and "step timed out" in str(errors[0])
    assert _wait_gone(marker) == []
    with use_scope(scope), pytest.raises(CommandCancelled):
        run_process(["true"], timeout=5, what="next")
    assert scope.running() == []


def test_a_program_that_cannot_start_is_an_executor_error():
    with pytest.raises(ExecutorError, match="cannot start thing"):
        run_process(["/nonexistent/orderops-binary"], timeout=5, what="thing")


def test_deploy_is_a_declared_capability(hosts, tmp_path):
    assert isinstance(PyinfraExecutor("inv.py"), Deployer)
    for ex in (AnsibleExecutor(), LocalExecutor(), FakeExecutor()):
        assert isinstance(ex, Executor) and not isinstance(ex, Deployer)
    fake = FakeExecutor()
    rb = Runbook("t", "T", "", (Step("drift", lambda ctx: ctx.ok(str(ctx.deploy(dry=True))), executor="remote"),))
    res = run(rb, hosts[:1], rb.params(), {"remote": fake, "local": fake, "pyinfra": fake}, runs_dir=tmp_path)
    [hr] = [s for s in res.steps if s.name == "drift"][0].results.values()
    assert hr.status == "failed" and "cannot deploy" in hr.message


def test_executors_are_context_managers():
    closed = []

    class Recording(ClosingExecutor):
        name = "rec"

        def close(self):
            closed.append(True)

    with Recording() as ex:
        assert isinstance(ex, Recording)
    assert closed == [True]
    with LocalExecutor() as local:
        assert local.run(make_host("h1"), "echo hi", timeout=5).stdout == "hi\n"


def _marker_step(marker: str, started: threading.Event):
    def f(ctx):
        started.set()
        # the executor directly, with its own long timeout: only the step's timeout stops it
        return ctx.executors["local"].run(ctx.host, f"exec -a {marker} sleep 60", timeout=120)
    return f


def test_step_timeout_kills_its_commands_then_releases_the_lock(hosts, fake, tmp_path):
    marker = f"orderops-test-{uuid.uuid4().hex}"
    started = threading.Event()
    executors = {"remote": fake, "pyinfra": fake, "local": LocalExecutor()}
    rb = Runbook("t", "T", "", (Step("slow", _marker_step(marker, started), timeout=1.0),))
    t0 = time.monotonic()
    res = run(rb, hosts[:1], rb.params(), executors, runs_dir=tmp_path, grace=0.5)
    assert time.monotonic() - t0 < 20
    [hr] = [s for s in res.steps if s.name == "slow"][0].results.values()
    assert hr.status == "failed" and "timed out after 1 s" in hr.message
    assert started.is_set() and _wait_gone(marker, 2) == []
    released = [c for c in fake.calls if "orderops-lock" in c.command and "rm -f" in c.command]
    assert released, "the lock was not released"


def test_abort_kills_running_commands_before_the_lock_is_released(hosts, fake, tmp_path):
    import signal

    marker = f"orderops-test-{uuid.uuid4().hex}"
    started = threading.Event()
    alive_at_release = []
    fake.on(r"rm -f", lambda h, c: alive_at_release.append(_alive(marker)) or CommandResult(0, "released"))
    executors = {"remote": fake, "pyinfra": fake, "local": LocalExecutor()}
    rb = Runbook("t", "T", "", (Step("slow", _marker_step(marker, started), timeout=60),))
    threading.Thread(target=lambda: started.wait(10) and time.sleep(0.3) or os.kill(os.getpid(), signal.SIGINT)).start()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(rb, hosts[:1], rb.params(), executors, runs_dir=tmp_path, grace=0.5)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert alive_at_release == [[]], "commands were still running when the lock was released"
    assert _wait_gone(marker, 2) == []
