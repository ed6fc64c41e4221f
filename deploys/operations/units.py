"""systemd units a host should not run: stopped, disabled and masked where present.

``systemctl mask`` links the unit to ``/dev/null`` in ``/etc/systemd/system``: neither a
dependency, socket/D-Bus activation nor a package's postinst (``deb-systemd-invoke``) starts it
again, and a package upgrade keeps the mask. ``disable`` first removes its ``[Install]`` links, so
``list-unit-files --state=enabled`` no longer lists it.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploys.facts.cache import cached_fact, declares
from deploys.facts.units import UnitStates

__all__ = ["masked"]


@declares(lambda a: [(UnitStates, {"units": list(dict.fromkeys(a["units"]))})] if a["units"] else [])
@operation()
def masked(units: list[str]):
    """
    Stop, disable and mask each of ``units`` the host has; units it lacks are left alone.

    + units: unit names with their suffix (``ModemManager.service``, ``avahi-daemon.socket``);
      list a socket next to its service, or the socket starts the service again

    Present and not masked: ``systemctl disable --now`` then ``systemctl mask``. Masked but still
    running (masked without ``--now``): ``systemctl stop``. Absent (``not-found``) or masked and
    stopped: nothing.
    """
    units = list(dict.fromkeys(units))
    states = cached_fact(host, UnitStates, units=units) if units else {}
    enable, stop = [], []
    for unit in units:
        state = states.get(unit, {})
        load = state.get("LoadState", "not-found")
        if load == "not-found":
            continue
        if load != "masked":
            enable.append(unit)
        elif state.get("ActiveState", "inactive") not in ("inactive", "failed"):
            stop.append(unit)
    if not enable and not stop:
        host.noop("unneeded units absent or masked and stopped")
        return
    if enable:
        yield StringCommand("systemctl disable --now --", *(QuoteString(u) for u in enable))
        yield StringCommand("systemctl mask --", *(QuoteString(u) for u in enable))
    if stop:
        yield StringCommand("systemctl stop --", *(QuoteString(u) for u in stop))
