"""A scripted executor for unit tests: no hosts, no network.

Rules map a regular expression on the command to a response; the first matching rule wins.
A response is a :class:`~runbooks.core.types.CommandResult`, a string (stdout, rc 0), or a
callable ``(host, command) -> CommandResult | str``. ``delay`` seconds simulate slow commands;
a command that outlives its timeout raises :class:`~runbooks.core.errors.CommandTimeout`.
Lock commands (``orderops-lock``) succeed by default. Every call is recorded in ``calls``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runbooks.core.errors import CommandTimeout
from runbooks.core.types import ClosingExecutor, CommandResult, HostTarget

__all__ = ["FakeExecutor", "Call"]


@dataclass(frozen=True)
class Call:
    """One recorded call: host name, command, sudo flag, timeout, monotonic start time."""

    host: str
    command: str
    sudo: bool
    timeout: float
    started: float


class FakeExecutor(ClosingExecutor):
    """Executor returning scripted results (see the module docstring)."""

    def __init__(self, name: str = "fake", default: CommandResult | str | None = None):
        self.name = name
        self.rules: list[tuple[re.Pattern[str], Any, float, str | None]] = []
        self.calls: list[Call] = []
        self.default = CommandResult(0, "") if default is None else default
        self._lock = threading.Lock()

    def on(self, pattern: str, response: CommandResult | str | Callable[[HostTarget, str], Any], delay: float = 0.0, host: str | None = None) -> FakeExecutor:
        """Add a rule: commands matching ``pattern`` (``re.search``) on ``host`` (or any) get ``response``."""
        self.rules.append((re.compile(pattern), response, delay, host))
        return self

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        """Record the call and return the first matching rule's response."""
        with self._lock:
            self.calls.append(Call(host.name, command, sudo, timeout, time.monotonic()))
        response, delay = self.default, 0.0
        if "orderops-lock" in command:
            response = CommandResult(0, "released" if "rm -f" in command else "acquired")
        for pattern, resp, d, only in self.rules:
            if pattern.search(command) and (only is None or only == host.name):
                response, delay = resp, d
                break
        if delay:
            if delay > timeout:
                time.sleep(timeout)
                raise CommandTimeout(f"command on {host.name}", timeout)
            time.sleep(delay)
        if callable(response):
            response = response(host, command)
        if isinstance(response, str):
            response = CommandResult(0, response)
        return response

    def commands(self, host: str | None = None) -> list[str]:
        """Recorded commands (of ``host``, or all), in call order."""
        return [c.command for c in self.calls if host is None or c.host == host]

