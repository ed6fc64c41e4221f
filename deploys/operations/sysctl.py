"""Apply a sysctl baseline file; inside a container only the network-namespace keys."""

from __future__ import annotations

from collections.abc import Mapping

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploys.facts.cache import cached_fact, declares
from deploys.facts.sysctl import ProcSysMode, SysctlValues

__all__ = ["applied", "namespaced", "NAMESPACED_PREFIXES", "APPLY_SCRIPT"]

#: keys that belong to a network namespace, so a container may set its own
NAMESPACED_PREFIXES = ("net.ipv4.", "net.ipv6.")
#: where the role installs templates/host/sysctl-apply.sh
APPLY_SCRIPT = "/usr/local/sbin/orderops-sysctl-apply"


def namespaced(key: str) -> bool:
    """True for keys a container can set in its own network namespace."""
    return key.startswith(NAMESPACED_PREFIXES)


@declares(lambda a: [(SysctlValues, {"keys": sorted(a["values"])}), (ProcSysMode, {})])
@operation()
def applied(values: Mapping[str, str], path: str, apply_script: str = APPLY_SCRIPT):
    """
    Make the running kernel use the baseline ``values`` written to ``path``.

    + values: ``{key: value}``, as in the file (values compare with whitespace collapsed)
    + path: the file in ``/etc/sysctl.d/`` holding ``values``
    + apply_script: the host path of ``templates/host/sysctl-apply.sh``

    With a read-only ``/proc/sys`` (a container) only :func:`namespaced` keys count; the script
    logs every other key as skipped. Keys the kernel lacks are ignored.
    """
    current = cached_fact(host, SysctlValues, keys=sorted(values))
    container = cached_fact(host, ProcSysMode) == "ro"
    differ = [
        key for key, value in sorted(values.items())
        if (not container or namespaced(key)) and current.get(key) is not None and current.get(key) != " ".join(str(value).split())
    ]
    if not differ:
        host.noop("sysctl baseline in force" + (" (net.* keys; the rest skipped in a container)" if container else ""))
        return
    yield StringCommand(QuoteString(apply_script), QuoteString(path))
