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

from deploys.facts.cache import cached_fact, invalidate, stats


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
