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

from pyinfra import logger
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.state import BaseStateCallback, State
from pyinfra.context import ContextObject

__all__ = ["cached_fact", "invalidate", "install", "declare", "bookkeeping", "CACHED_PYINFRA_FACTS"]

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


def _connector_arguments(host) -> dict[str, Any]:
    """The connector arguments (sudo, sudo user, ...) a fact read now runs with, as pyinfra resolves them."""
    current = dict(getattr(host, "current_op_global_arguments", None) or {})
    state = getattr(host, "state", None)
    if isinstance(state, State):
        current, _ = pop_global_arguments(state, host, current)
    return {k: v for k, v in current.items() if k in CONNECTOR_ARGUMENT_KEYS}


def _connector_key(host) -> Any:
    return _freeze(_connector_arguments(host))


def cached_fact(host, fact_cls: type, *args: Any, **kwargs: Any) -> Any:  # noqa: C901
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
    if host in _HOOKS:  # installed: declared facts are read in batches
        return _read_through(host, fact_cls, args, kwargs)
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
        if cache is None or host in _HOOKS:
            return  # installed hosts drop their entries at each command (install)
        pending = cache.started
        if any(_changed_or_running(state, host, h) for h in pending):
            cache.clear()
        cache.started = [h for h in pending if not state.get_op_data_for_host(host, h).operation_meta.is_complete()]
        cache.started.append(op_hash)

    @staticmethod
    def operation_host_retry(state, host, op_hash, retry_num: int, max_retries: int):
        invalidate(host)  # (installed hosts: already dropped when the failed attempt's command ran)


def _register(state: State) -> None:
    if not any(isinstance(h, _Invalidate) for h in state.callback_handlers):
        state.add_callback_handler(_Invalidate())


# --- pyinfra's own operations: the host's get_fact through the cache, and batched reads ----------
#
# pyinfra's operations (files.put, files.directory, systemd.service, apt.packages...) call
# ``host.get_fact`` themselves. :func:`install` routes the facts in :data:`CACHED_PYINFRA_FACTS`
# (each a pure function of the host's state) of one host through the cache, and makes the
# invalidation exact: every command that runs on the host other than a fact read (a yielded
# command, an upload, a callback's or the lock's own command) drops the host's entries before it
# runs, so even a body that reads a fact after its own ``yield`` reads it fresh.
#
# :func:`declare` names facts an operation added to the plan will read (the wrappers in
# deploys/operations/prefetched.py declare what files.put & co read); the first miss of a declared
# fact reads every declared fact not in the cache in one command (:func:`_read_batch`: each
# fact's own command between markers, each output parsed by the fact's own ``process``).

from pyinfra.api import StringCommand  # noqa: E402
from pyinfra.facts.files import Directory, File, Link, Md5File, Sha1File, Sha256File  # noqa: E402
from pyinfra.facts.deb import DebPackages  # noqa: E402
from pyinfra.facts.server import Groups, Kernel, Os, Users  # noqa: E402
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus  # noqa: E402

#: pyinfra facts :func:`install` caches: each reads only state that commands change
CACHED_PYINFRA_FACTS = frozenset({
    File, Directory, Link, Md5File, Sha1File, Sha256File,  # files.*, apt.*
    SystemdStatus, SystemdEnabled,  # systemd.service
    DebPackages,  # apt.packages, apt.deb
    Users, Groups, Kernel, Os,  # server.user, server.group
})
_BATCH_MARK = "##orderops-fact"
_BATCH_MAX_CHARS = 60_000  # per command, before quoting: below Linux's 128 KiB per argument
_MISSING = "##PYINFRA_NOCMD##"


class _HostHooks:
    def __init__(self, host) -> None:
        self.get_fact = host.get_fact
        self.run_shell_command = host.run_shell_command
        self.put_file = host.put_file
        self.reading = 0
        self.declared: dict[Any, tuple[type, dict]] = {}  # declared and not read yet
        self.batches = 0


_HOOKS: "weakref.WeakKeyDictionary[Any, _HostHooks]" = weakref.WeakKeyDictionary()


def _key(host, fact_cls, args, kwargs):
    return (fact_cls, _freeze(args), _freeze(kwargs), _connector_key(host))


def install(host) -> None:
    """Serve ``host``'s :data:`CACHED_PYINFRA_FACTS` reads from the cache for this run (idempotent).

    + host: a host of a pyinfra run (``from pyinfra import host`` in a deploy file)

    Replaces, on this host object only, ``get_fact`` (cached for those classes), and
    ``run_shell_command`` / ``put_file`` (drop the host's entries unless a fact is being read).
    """
    host = _real(host)
    if host in _HOOKS or not isinstance(getattr(host, "state", None), State):
        return
    hooks = _HOOKS[host] = _HostHooks(host)
    _cache_for(host)

    def get_fact(fact_cls, *args, **kwargs):
        hooks.reading += 1
        try:
            if fact_cls in CACHED_PYINFRA_FACTS:
                return _read_through(host, fact_cls, args, kwargs)
            return hooks.get_fact(fact_cls, *args, **kwargs)
        finally:
            hooks.reading -= 1

    def run_shell_command(*args, **kwargs):
        if not hooks.reading:
            logger.debug("fact cache of %s dropped: a command runs (%s)", host.name, str(args[0])[:80] if args else "")
            invalidate(host)
        return hooks.run_shell_command(*args, **kwargs)

    def put_file(*args, **kwargs):
        logger.debug("fact cache of %s dropped: an upload", host.name)
        invalidate(host)
        return hooks.put_file(*args, **kwargs)

    host.get_fact, host.run_shell_command, host.put_file = get_fact, run_shell_command, put_file


def _read_through(host, fact_cls, args, kwargs):
    cache = _cache_for(host)
    key = _key(host, fact_cls, args, kwargs)
    hooks = _HOOKS[host]
    if key not in cache.values and key in hooks.declared:
        _read_batch(host)
    hooks.declared.pop(key, None)  # read once: a later batch (after a change) leaves it out
    if key in cache.values:
        cache.hits += 1
    else:
        cache.misses += 1
        hooks.reading += 1  # (cached_fact comes here directly, not through the hooked get_fact)
        try:
            cache.values[key] = hooks.get_fact(fact_cls, *args, **kwargs)
        finally:
            hooks.reading -= 1
    return copy.deepcopy(cache.values[key])


class bookkeeping:
    """``with bookkeeping(host):`` commands run inside do not drop ``host``'s cached facts.

    Only for commands that change nothing a cached fact reads (the host lock's own file,
    deploys/operations/lock.py); anything else must let the cache drop its entries.
    """

    def __init__(self, host) -> None:
        self.hooks = _HOOKS.get(_real(host))

    def __enter__(self):
        if self.hooks is not None:
            self.hooks.reading += 1
        return self

    def __exit__(self, *exc) -> None:
        if self.hooks is not None:
            self.hooks.reading -= 1


def declare(host, fact_cls: type, **kwargs: Any) -> None:
    """Say that an operation of this run will read ``fact_cls(**kwargs)`` on ``host``: the first
    miss of a declared fact reads all declared facts the cache lacks in one command (a declared
    fact leaves the set when it is first read; read again after a change, it is read alone).

    A no-op for hosts without :func:`install`. Declaring a fact that is never read costs a few
    bytes of output, never a round trip.
    """
    host = _real(host)
    hooks = _HOOKS.get(host)
    if hooks is not None:
        hooks.declared.setdefault(_key(host, fact_cls, (), kwargs), (fact_cls, kwargs))


def _read_batch(host) -> None:
    """Read every declared fact of ``host`` that the cache lacks, in as few commands as fit."""
    cache, hooks = _CACHES[host], _HOOKS[host]
    todo = [(key, cls(), kw) for key, (cls, kw) in hooks.declared.items() if key not in cache.values]
    sections: list[str] = []
    for i, (_, fact, kw) in enumerate(todo):
        command = fact.command(**kw) if callable(fact.command) else fact.command
        requires = fact.requires_command(**kw) if callable(getattr(fact, "requires_command", None)) else getattr(fact, "requires_command", None)
        command = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
        if requires:
            requires = requires.get_raw_value() if isinstance(requires, StringCommand) else str(requires)
            command = f"if command -v {requires} >/dev/null 2>&1; then ( {command} ); else echo '{_MISSING}'; fi"
        sections.append(f"echo '{_BATCH_MARK} {i}'; ( {command} ) 2>/dev/null; echo \"{_BATCH_MARK}-rc {i} $?\"")
    chunks: list[list[str]] = [[]]
    for section in sections:
        if chunks[-1] and sum(len(s) for s in chunks[-1]) + len(section) > _BATCH_MAX_CHARS:
            chunks.append([])
        chunks[-1].append(section)
    executor_kwargs = _connector_arguments(host)
    for chunk in chunks:
        if not chunk:
            continue
        hooks.batches += 1
        hooks.reading += 1
        try:
            ok, output = hooks.run_shell_command(StringCommand("\n".join(chunk)), **executor_kwargs)
        finally:
            hooks.reading -= 1
        if not ok:
            continue  # each fact is then read on its own, with pyinfra's own error handling
        _store_batch(cache, todo, output.stdout_lines)


def _store_batch(cache: FactCache, todo: list, lines: list[str]) -> None:
    current, collected = None, []
    for line in lines:
        if line.startswith(_BATCH_MARK + "-rc "):
            _, index, rc = line.split()
            if current is not None and int(index) == current and rc == "0" and collected != [_MISSING]:
                key, fact, _kw = todo[current]  # the instance whose command() ran (hash facts keep the path)
                try:
                    cache.values[key] = fact.process(collected) if collected else fact.default()
                except Exception:  # noqa: BLE001 - read on its own later, with pyinfra's error handling
                    pass
            current, collected = None, []
        elif line.startswith(_BATCH_MARK + " "):
            current, collected = int(line.split()[1]), []
        elif current is not None:
            collected.append(line)


def declares(reads):
    """Decorator of a pyinfra operation: when a deploy adds the operation, declare the facts its
    body will read, so they join the next batched read (:func:`declare`).

    + reads: ``f(arguments) -> [(fact class, kwargs), ...]``, ``arguments`` the operation's own
      arguments by name, defaults applied

    The operation is unchanged (``_inner`` included, for the unit tests' fake hosts).

        @declares(lambda a: [(Sha256File, {"path": a["dest"]})])
        @operation()
        def present(dest: str, ...): ...
    """
    def wrap(op):
        import functools
        from inspect import signature

        from pyinfra import host

        params = signature(op._inner).parameters

        @functools.wraps(op)
        def call(*args, **kwargs):
            if _real(host) in _HOOKS:
                bound = signature(op._inner).bind_partial(*args, **{k: v for k, v in kwargs.items() if k in params})
                bound.apply_defaults()
                for fact_cls, fact_kwargs in reads(bound.arguments):
                    declare(host, fact_cls, **fact_kwargs)
            return op(*args, **kwargs)

        call._inner = op._inner
        return call
    return wrap
