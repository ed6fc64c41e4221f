"""One generic runner for operation tests on fake facts (the way pyinfra's own operation tests work).

An operation's generator (``op._inner``) runs under a fake context host whose ``get_fact`` serves
canned data; the test compares the yielded commands (uploads shown as ``upload <dest>``) and the
``noop`` descriptions with the expected ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyinfra.api.command import FileUploadCommand
from pyinfra.context import ctx_host


class FakeHost:
    """Context host: ``facts`` maps a fact class to its data, or to ``f(**fact_kwargs)`` / ``f(*args)``."""

    def __init__(self, facts: dict[type, Any]):
        self.facts = facts
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.name = "fakehost"
        self.data = {}

    def get_fact(self, fact_cls, *args, **kwargs):
        if fact_cls not in self.facts:
            raise AssertionError(f"operation asked for {fact_cls.__name__}, which the test did not provide")
        value = self.facts[fact_cls]
        return value(*args, **kwargs) if isinstance(value, Callable) else value

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def log(self, message: str, *a) -> None:
        self.logs.append(message)


def show(command) -> str:
    """A yielded command as text: shell commands raw, uploads as ``upload <dest>``."""
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}"
    return command.get_raw_value()


def run_op(op, facts: dict[type, Any], **kwargs) -> tuple[list[str], list[str]]:
    """Run ``op`` (a pyinfra ``@operation``) against ``facts``; returns ``(commands, noop descriptions)``."""
    host = FakeHost(facts)
    with ctx_host.use(host):
        commands = [show(c) for c in op._inner(**kwargs)]
    return commands, host.noops
