"""The per-run fact cache (deploys/facts/cache.py): hits, keys per host and per arguments, and no
stale read after a change, through pyinfra's own machinery in its three modes (-y, plan then
execute, --dry) on the local connector (real shell commands in a temporary directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra import host
from pyinfra.api import Config, FactBase, Inventory, State, StringCommand, operation
from pyinfra.api.connect import connect_all
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, Sha1File

from deploys.facts.cache import _HOOKS, cached_fact, declare, install, invalidate, stats


def CountingHost(name: str):
    """A real host of a pyinfra run whose ``get_fact`` answers ``{fact, kwargs, read: n}`` and
    records its reads in ``host.reads`` (no connection)."""
    inventory = Inventory(([name], {}))
    State(inventory, Config())
    h = inventory.get_host(name)
    h.reads = []

    def get_fact(fact_cls, *args, **kwargs):
        h.reads.append((fact_cls.__name__, kwargs))
        return {"fact": fact_cls.__name__, "kwargs": kwargs, "read": len(h.reads)}

    h.get_fact = get_fact
    return h


class FactA(FactBase):
    def command(self, units=()):
        return "true"


class FactB(FactBase):
    def command(self):
        return "true"


def test_second_read_is_a_hit_and_a_copy():
    h = CountingHost("a")
    first = cached_fact(h, FactA, units=["x", "y"])
    first["kwargs"]["units"].append("mutated")
    second = cached_fact(h, FactA, units=["x", "y"])
    assert len(h.reads) == 1
    assert second["kwargs"] == {"units": ["x", "y"]}  # the caller's mutation did not reach the cache
    assert stats(h) == (1, 1)


def test_keys_per_fact_and_per_arguments():
    h = CountingHost("a")
    cached_fact(h, FactA, units=["x"])
    cached_fact(h, FactA, units=["x", "y"])
    cached_fact(h, FactA, units=["x"])
    cached_fact(h, FactB)
    cached_fact(h, FactB)
    assert [r[0] for r in h.reads] == ["FactA", "FactA", "FactB"]


def test_hosts_never_share_entries():
    a, b = CountingHost("a"), CountingHost("b")
    cached_fact(a, FactB)
    assert cached_fact(b, FactB)["read"] == 1
    assert len(a.reads) == len(b.reads) == 1


def test_a_host_without_a_pyinfra_state_is_not_cached():
    class Standin:
        reads = 0

        def get_fact(self, fact_cls):
            self.reads += 1

    h = Standin()
    cached_fact(h, FactB), cached_fact(h, FactB)
    assert h.reads == 2


def test_invalidate_drops_one_host():
    a, b = CountingHost("a"), CountingHost("b")
    cached_fact(a, FactB), cached_fact(b, FactB)
    invalidate(a)
    assert cached_fact(a, FactB)["read"] == 2
    assert cached_fact(b, FactB)["read"] == 1


# --- through pyinfra: ops write a file, the fact reads it -----------------------------------


class FileText(FactBase):
    """The text of a file, ``""`` when it is missing."""

    def command(self, path):
        return f"cat {path} 2>/dev/null || true"

    def process(self, output):
        return "\n".join(output)


@operation()
def text(path: str, content: str):
    """Write ``content`` to ``path`` when the cached fact says it differs."""
    if cached_fact(host, FileText, path=path) == content:
        host.noop(f"{path} has {content}")
        return
    yield StringCommand(f"printf %s {content} > {path}")


def _run(tmp_path: Path, mode: str):
    """The sequence one, one, one, two, two on one file; returns (changed flags, misses, file text)."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config(), check_for_changes=(mode != "-y"))
    connect_all(state)
    (local,) = inventory.get_active_hosts()
    path = tmp_path / "f"
    metas = [add_op(state, text, path=str(path), content=c)[local] for c in ("one", "one", "one", "two", "two")]
    if mode != "--dry":
        run_ops(state)
        changed = [m.did_change() for m in metas]
    else:
        changed = [m.will_change for m in metas]
    return changed, stats(local)[1], path.read_text() if path.exists() else None


def test_yes_mode_reads_again_only_after_a_change(tmp_path):
    changed, misses, final = _run(tmp_path, "-y")
    assert changed == [True, False, False, True, False]
    assert final == "two"
    assert misses == 3  # before op 1, after op 1 changed, after op 4 changed


def test_plan_then_execute_never_reads_stale(tmp_path):
    changed, misses, final = _run(tmp_path, "plan")
    assert changed == [True, False, False, True, False]
    assert final == "two"
    assert misses == 3  # the plan's one read serves execution until op 1 changes the file


def test_dry_reads_once_and_changes_nothing(tmp_path):
    changed, misses, final = _run(tmp_path, "--dry")
    assert changed == [True, True, True, True, True]  # pyinfra's plan judges each op on the unchanged host
    assert final is None
    assert misses == 1


@pytest.mark.parametrize("mode", ["-y", "plan"])
def test_a_failed_command_invalidates_too(tmp_path, mode):
    """An operation whose command fails after changing the host still drops the cache."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config(), check_for_changes=(mode != "-y"))
    connect_all(state)
    (local,) = inventory.get_active_hosts()
    path = tmp_path / "f"

    @operation()
    def write_then_fail(path: str):
        cached_fact(host, FileText, path=path)
        yield StringCommand(f"printf %s half > {path} && false")

    add_op(state, text, path=str(path), content="none")
    add_op(state, write_then_fail, path=str(path), _ignore_errors=True)
    last = add_op(state, text, path=str(path), content="half")[local]
    run_ops(state)
    assert last.did_not_change()


# --- installed on a host: pyinfra's own facts, batches, exact invalidation ----------------------


def _local_state(check_for_changes: bool = False):
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config(), check_for_changes=check_for_changes)
    connect_all(state)
    (local,) = inventory.get_active_hosts()
    install(local)
    return state, local


def _without_atime(value):
    return {k: v for k, v in value.items() if k != "atime"} if isinstance(value, dict) else value


def test_declared_facts_are_read_in_one_command_and_equal_direct_reads(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).write_text(name)
    wanted = [(File, str(tmp_path / "a")), (Sha1File, str(tmp_path / "a")), (File, str(tmp_path / "b")),
              (Sha1File, str(tmp_path / "missing")), (Directory, str(tmp_path)), (File, str(tmp_path / "missing"))]
    state, local = _local_state()
    direct = [_without_atime(_HOOKS[local].get_fact(cls, path=p)) for cls, p in wanted]
    with ctx_state.use(state), ctx_host.use(local):
        for cls, p in wanted:
            declare(local, cls, path=p)
        got = [_without_atime(local.get_fact(cls, path=p)) for cls, p in wanted]
    assert got == direct
    assert _HOOKS[local].batches == 1
    assert stats(local) == (len(wanted), 0)  # every read served by the one batch


def test_undeclared_pyinfra_fact_is_read_once(tmp_path):
    state, local = _local_state()
    with ctx_state.use(state), ctx_host.use(local):
        local.get_fact(Directory, path=str(tmp_path))
        local.get_fact(Directory, path=str(tmp_path))
    assert stats(local) == (1, 1)


@operation()
def write_then_read(path: str, record: list):
    """Reads a cached fact, writes the file, reads it again in the same body (after its yield)."""
    before = cached_fact(host, FileText, path=path)
    yield StringCommand(f"printf %s new > {path}")
    record.append((before, cached_fact(host, FileText, path=path)))


@pytest.mark.parametrize("mode", ["-y", "plan"])
def test_installed_cache_is_fresh_after_a_command_even_inside_one_operation(tmp_path, mode):
    state, local = _local_state(check_for_changes=(mode != "-y"))
    path, record = str(tmp_path / "f"), []
    add_op(state, write_then_read, path=path, record=record)
    run_ops(state)
    assert record[-1] == (None, "new")  # (no output: the fact's default)
