"""Facts of systemd units (see :mod:`deploys.operations.units`)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

__all__ = ["UnitStates", "PROPERTIES"]

#: the ``systemctl show`` properties read per unit
PROPERTIES = ("LoadState", "ActiveState", "UnitFileState")
_MARK = "##orderops-unit "


class UnitStates(FactBase):
    """``{unit: {"LoadState": ..., "ActiveState": ..., "UnitFileState": ...}}`` from ``systemctl show``.

    + units: unit names with their suffix (``snapd.socket``)

    A unit the host does not have reads ``LoadState=not-found`` (systemd's own answer, also
    when the name is valid but no file defines it); a masked one ``LoadState=masked`` and
    ``UnitFileState=masked``. A unit missing from the output (no systemctl) has ``{}``.
    """

    def command(self, units) -> str:
        props = ",".join(PROPERTIES)
        parts = [f"echo {shlex.quote(_MARK + u)}; systemctl show --property={props} -- {shlex.quote(u)} 2>/dev/null || true"
                 for u in units]
        return "; ".join(parts) if parts else "true"

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        states: dict[str, dict[str, str]] = {}
        current = None
        for line in output:
            if line.startswith(_MARK):
                current = line[len(_MARK):].strip()
                states[current] = {}
            elif current is not None and "=" in line:
                key, value = line.split("=", 1)
                states[current][key] = value.strip()
        return states
