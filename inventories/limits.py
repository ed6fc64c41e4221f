"""Resource limits of one compose service, the inventory data both Compose projects take them from.

The order stack's are host data ``service_limits`` (:mod:`inventories.schema`), the monitoring
project's ``monitoring.service_limits`` (:mod:`inventories.monitoring`); both are turned into
compose keys by :func:`deploys.roles.compose_hardening.compose_keys`. Own module because
``inventories.schema`` imports ``inventories.monitoring``, and both need the model.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServiceLimits", "with_defaults"]


class ServiceLimits(BaseModel):
    """Resource limits of one service: memory (Docker size, ``256m``), CPUs (fraction of cores),
    PIDs (processes + threads). Compose keys ``mem_limit``, ``cpus``, ``pids_limit`` (CIS Docker
    Benchmark 5.10, 5.11, 5.28). Docker refuses ``cpus`` above the host's core count at start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory: str = Field(pattern=r"^[1-9][0-9]*[kmg]$")
    cpus: float = Field(gt=0, le=64)
    pids: int = Field(ge=16, le=100000)


def with_defaults(defaults: Mapping[str, ServiceLimits], given: Mapping[str, ServiceLimits]) -> dict[str, ServiceLimits]:
    """Every service of ``defaults``, with the entries the inventory gave (already validated) in their place."""
    return {**defaults, **given}
