"""Container hardening as compose keys, shared by the order stack and the monitoring project.

Not a role: the one mechanism both Compose projects (``deploys/roles/order_stack.py``,
``deploys/roles/monitoring.py``) use. A role writes down per service what it needs beyond the
baseline (a :class:`Hardening` entry, each exception commented where the role makes it), the
inventory gives the service's limits (:class:`inventories.limits.ServiceLimits`), and
:func:`compose_keys` turns the two into compose-spec keys. The baseline, the same for every
service (CIS Docker Benchmark v1.6, section 5):

=======  ====================================================================
5.25     ``security_opt: [no-new-privileges:true]`` (also the daemon's default)
5.3      ``cap_drop: [ALL]``, then only the entry's ``cap_add``
5.12     ``read_only: true``; ``tmpfs`` for what the service writes outside its volumes
5.10     ``mem_limit`` (inventory)
5.11     ``cpus`` (inventory)
5.28     ``pids_limit`` (inventory)
4.1      ``user`` (``uid:gid``) when the entry names one; else the image's own user
=======  ====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inventories.limits import ServiceLimits

__all__ = ["Hardening", "SECURITY_OPT", "MANAGED_KEYS", "compose_keys", "harden"]

#: ``security_opt`` of every service.
SECURITY_OPT = ("no-new-privileges:true",)
#: compose keys only :func:`harden` writes: a service spec that sets one is refused, so the
#: hardening table is the one place (``privileged`` is never written: no service gets it).
MANAGED_KEYS = ("security_opt", "cap_drop", "cap_add", "user", "read_only", "tmpfs", "mem_limit", "cpus",
                "pids_limit", "privileged")


@dataclass(frozen=True)
class Hardening:
    """What one service needs beyond the baseline.

    + cap_add: capabilities added back after ``cap_drop: [ALL]`` (names without ``CAP_``)
    + tmpfs: absolute paths mounted as tmpfs over the read-only root filesystem
    + user: ``uid:gid`` the service runs as (numeric: the image need not name it); ``None`` keeps
      the image's ``USER``
    """

    cap_add: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    user: str | None = None

    def __post_init__(self) -> None:
        for cap in self.cap_add:
            if not cap.isupper() or cap.startswith("CAP_"):
                raise ValueError(f"capability names are upper case without CAP_: {cap!r}")
        for path in self.tmpfs:
            if not path.startswith("/"):
                raise ValueError(f"tmpfs path must be absolute: {path!r}")
        if self.user is not None:
            uid, _, gid = self.user.partition(":")
            if not (uid.isdigit() and gid.isdigit()):
                raise ValueError(f"user must be numeric uid:gid, got {self.user!r}")


def compose_keys(hardening: Hardening, limits: ServiceLimits) -> dict[str, Any]:
    """The compose-spec keys of one service: the baseline, ``hardening``'s additions, ``limits``.

    Keys ``security_opt``, ``cap_drop``, ``cap_add`` (only when non-empty), ``user`` (only when
    set), ``read_only``, ``tmpfs`` (only when non-empty), ``mem_limit``, ``cpus``, ``pids_limit``,
    in that order (the order ``yaml.safe_dump`` writes them).
    """
    keys: dict[str, Any] = {"security_opt": list(SECURITY_OPT), "cap_drop": ["ALL"]}
    if hardening.cap_add:
        keys["cap_add"] = list(hardening.cap_add)
    if hardening.user is not None:
        keys["user"] = hardening.user
    keys["read_only"] = True
    if hardening.tmpfs:
        keys["tmpfs"] = list(hardening.tmpfs)
    keys.update({"mem_limit": limits.memory, "cpus": limits.cpus, "pids_limit": limits.pids})
    return keys


def harden(services: Mapping[str, dict[str, Any]], table: Mapping[str, Hardening],
           limits: Mapping[str, ServiceLimits]) -> dict[str, dict[str, Any]]:
    """``services`` (compose service specs) with :func:`compose_keys` of each added.

    Every service must have an entry in ``table`` and in ``limits`` (none runs with Docker's
    defaults by omission): raises ``ValueError`` naming the services without one. A spec that
    sets one of :data:`MANAGED_KEYS` itself is refused too (``ValueError``).
    """
    missing = sorted(set(services) - set(table)) + sorted(set(services) - set(limits))
    if missing:
        raise ValueError(f"no hardening entry or limits for: {', '.join(missing)}")
    out = {}
    for name, spec in services.items():
        clash = [key for key in MANAGED_KEYS if key in spec]
        if clash:
            raise ValueError(f"{name}: {', '.join(clash)} set outside the hardening table")
        out[name] = {**spec, **compose_keys(table[name], limits[name])}
    return out
