"""Facts about kernel parameters (sysctl)."""

from __future__ import annotations

from collections.abc import Iterable

from pyinfra.api import FactBase, QuoteString, StringCommand

__all__ = ["SysctlValues", "ProcSysMode"]


class SysctlValues(FactBase):
    """Current values of ``keys``: ``{key: value}`` (whitespace collapsed), ``None`` for a key
    the kernel does not have."""

    def command(self, keys: Iterable[str]) -> StringCommand:
        parts: list = []
        for key in keys:
            parts += ["printf '%s\\t'", QuoteString(key), ";", "sysctl -n", QuoteString(key), "2>/dev/null || echo '##missing';"]
        return StringCommand(*parts)

    def process(self, output: list[str]) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for line in output:
            key, _, value = line.partition("\t")
            value = " ".join(value.split())
            values[key] = None if value == "##missing" else value
        return values


class ProcSysMode(FactBase):
    """``"ro"`` when ``/proc/sys`` is mounted read-only (a container), else ``"rw"``."""

    def command(self) -> str:
        return "awk '$5 == \"/proc/sys\" {split($6, o, \",\"); print o[1]; exit}' /proc/self/mountinfo"

    def process(self, output: list[str]) -> str:
        return "ro" if output and output[0].strip() == "ro" else "rw"
