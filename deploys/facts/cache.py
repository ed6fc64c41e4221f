"""A per-run fact cache: one remote read per (host, fact, arguments) until that host changes.

pyinfra 3 caches no facts: every ``host.get_fact`` runs the fact's command on the host, one SSH
round trip with sudo. The project's operations read their facts through :func:`cached_fact`
instead, so that e.g. one ``ufw status verbose`` serves every ufw operation of a converge.

Correctness: a cached value is never read after the host changed. pyinfra 3 runs a host's
operation bodies in the deploy's order:

- without ``-y`` it first *plans*: each body runs up to its first ``yield`` to detect changes,
  and nothing runs on the host but fact commands; then it executes, running each body again and
  its commands as they are yielded;
- ``--dry`` only plans;
- ``-y`` skips the planning pass: bodies run once, at execution.

While nothing executes (planning, ``--dry``, the deploy files' own code) the host does not
change, so the cache serves every read. During execution (``state.is_executing``) pyinfra calls
its ``operation_host_start`` callback before each operation runs on a host; this module's
callback looks at the operations started on that host since the last look: when one of them
executed a command (a yielded shell command, upload or ``python.call`` callback, whether it
succeeded or not) or is still running (a nested operation inside a callback), the host's cache is
cleared. A retried operation clears it too (its first attempt may have changed the host). So an
operation reads what the operations before it left, exactly as an uncached ``host.get_fact``
would, with one rule for the operations that use the cache: **read cached facts before the
first** ``yield`` (the project's operations do; a body that needs a value after its own commands
ran reads ``host.get_fact`` directly). Commands an operation runs without yielding them (the
host lock's bookkeeping in :mod:`deploys.operations.lock`) change nothing a fact here reads.

Values are keyed by the fact class, its arguments and the connector arguments in force (sudo,
sudo user, ...), so ``UnitStates(units=[a])`` and ``UnitStates(units=[a, b])`` are two entries.
Each caller gets its own copy (callers may mutate what they get). The cache lives with the host
object, i.e. one pyinfra run; hosts never share entries. A stand-in host without a pyinfra
``State`` (the unit tests' fake hosts, which run an operation's generator by hand) is not cached:
nothing would tell the cache that its facts changed.

    from deploys.facts.cache import cached_fact
    status = cached_fact(host, UfwStatus)
"""

from __future__ import annotations

import copy
import weakref
from typing import Any, TypeVar

from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.state import BaseStateCallback, State
from pyinfra.context import ContextObject

__all__ = ["cached_fact", "invalidate", "FactCache"]

T = TypeVar("T")


def _freeze(value: Any) -> Any:
    """A hashable stand-in for fact arguments (lists, dicts, sets of plain values)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(_freeze(v)) for v in value)))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


class FactCache:
    """The cached facts of one host: ``{key: value}`` plus the operations started since the last check."""

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}
        self.started: list[str] = []  # op hashes started on this host (executing) since the last check
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self.values.clear()


_CACHES: "weakref.WeakKeyDictionary[Any, FactCache]" = weakref.WeakKeyDictionary()


def _real(host):
    """The host behind pyinfra's context proxy (``from pyinfra import host`` is one object for all hosts)."""
    return host._get_module() if isinstance(host, ContextObject) else host


def _cache_for(host) -> FactCache:
    cache = _CACHES.get(host)
    if cache is None:
        cache = _CACHES[host] = FactCache()
        _register(host.state)
    return cache


def _connector_key(host) -> Any:
    current = getattr(host, "current_op_global_arguments", None) or {}
    return _freeze({k: v for k, v in current.items() if k in CONNECTOR_ARGUMENT_KEYS})


def cached_fact(host, fact_cls: type, *args: Any, **kwargs: Any) -> Any:
    """``host.get_fact(fact_cls, *args, **kwargs)``, read at most once until ``host`` changes.

    + host: the pyinfra host (``from pyinfra import host``)
    + fact_cls: a ``FactBase`` subclass; args/kwargs: its arguments, as for ``host.get_fact``

    Returns a copy of the fact's data. Errors of the fact (a failing command) propagate and
    nothing is cached. See the module docstring for when entries are dropped.
    """
    host = _real(host)
    state = getattr(host, "state", None)
    if not isinstance(state, State):
        # a test's stand-in host runs no pyinfra operations, so no callback could drop entries
        return host.get_fact(fact_cls, *args, **kwargs)
    cache = _cache_for(host)
    if getattr(state, "is_executing", False):
        # the operation running now may run commands after this read: the next one's start must see it
        for op_hash in (getattr(host, "executing_op_hash", None), getattr(host, "nested_executing_op_hash", None)):
            if op_hash and op_hash not in cache.started:
                cache.started.append(op_hash)
    key = (fact_cls, _freeze(args), _freeze(kwargs), _connector_key(host))
    if key in cache.values:
        cache.hits += 1
    else:
        cache.misses += 1
        cache.values[key] = host.get_fact(fact_cls, *args, **kwargs)
    return copy.deepcopy(cache.values[key])


def invalidate(host) -> None:
    """Drop every cached fact of ``host`` (an operation changed it outside pyinfra's commands)."""
    cache = _CACHES.get(_real(host))
    if cache is not None:
        cache.clear()


def stats(host) -> tuple[int, int]:
    """``(hits, misses)`` of ``host``'s cache in this run (for benchmarks and tests)."""
    cache = _CACHES.get(_real(host))
    return (cache.hits, cache.misses) if cache else (0, 0)


def _changed_or_running(state, host, op_hash: str) -> bool:
    data = state.get_op_data_for_host(host, op_hash)
    meta = data.operation_meta
    return not meta.is_complete() or meta.executed


class _Invalidate(BaseStateCallback):
    """pyinfra state callback: drop a host's cached facts once an operation ran commands there."""

    @staticmethod
    def operation_host_start(state, host, op_hash):
        cache = _CACHES.get(host)
        if cache is None:
            return
        pending = cache.started
        if any(_changed_or_running(state, host, h) for h in pending):
            cache.clear()
        cache.started = [h for h in pending if not state.get_op_data_for_host(host, h).operation_meta.is_complete()]
        cache.started.append(op_hash)

    @staticmethod
    def operation_host_retry(state, host, op_hash, retry_num: int, max_retries: int):
        invalidate(host)


def _register(state: State) -> None:
    if not any(isinstance(h, _Invalidate) for h in state.callback_handlers):
        state.add_callback_handler(_Invalidate())
