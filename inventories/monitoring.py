"""Host data of the monitoring stack (host data key ``monitoring``; see deploys/roles/monitoring.py).

Durations are seconds, sizes Prometheus notation (``5GB``). Test-speed values (short scrape,
``for:`` and group intervals) belong in the test inventory only; the defaults here are production's.
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploys.contract.monitoring import LOOPBACK_SERVICES, MONITORING_DIR, MONITORING_PROJECT, SERVICE_PORTS, SERVICES
from inventories.limits import ServiceLimits, with_defaults

__all__ = ["MonitoringImages", "Smtp", "Thresholds", "MonitoringSettings", "MONITORING_IMAGE_ROLES", "default_limits"]

#: image roles of the monitoring stack (production: the official images, pinned by tag and digest)
MONITORING_IMAGE_ROLES = (
    "prometheus", "alertmanager", "node_exporter", "postgres_exporter", "redis_exporter", "nginx_exporter",
    "blackbox_exporter", "grafana", "loki", "alloy", "cadvisor",
)
_PROM_SIZE = re.compile(r"^[1-9][0-9]*(B|KB|MB|GB|TB)$")
_PROM_DURATION = re.compile(r"^[1-9][0-9]*(m|h|d|w|y)$")


def default_limits() -> dict[str, ServiceLimits]:
    """Production limits of every monitoring service (``monitoring.service_limits`` overrides per service).

    Sized for one host's stack with the default 15 s scrape and 15 days' retention: Prometheus and
    Loki hold the data (head block, chunks in memory), Grafana and Alloy next; the exporters serve
    one scrape at a time. PIDs leave room for the Go runtime's threads (one per core at most, plus
    blocking syscalls) on hosts with many cores. ``cpus`` stays at or below one core: Docker
    refuses a container more CPUs than the host has.
    """
    small = ServiceLimits(memory="128m", cpus=0.25, pids=128)
    return {
        "prometheus": ServiceLimits(memory="1g", cpus=1.0, pids=256),
        "alertmanager": ServiceLimits(memory="256m", cpus=0.25, pids=128),
        "node-exporter": small,
        "cadvisor": ServiceLimits(memory="512m", cpus=0.5, pids=256),
        "postgres-exporter": small,
        "redis-exporter": small,
        "nginx-exporter": small,
        "blackbox-exporter": small,
        "loki": ServiceLimits(memory="1g", cpus=1.0, pids=256),
        "alloy": ServiceLimits(memory="512m", cpus=0.5, pids=256),
        "grafana": ServiceLimits(memory="512m", cpus=0.5, pids=256),
    }


class MonitoringImages(BaseModel):
    """Image refs by role; :func:`deploys.contract.images.check_immutable` rules, digests required outside ``local``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prometheus: str
    alertmanager: str
    node_exporter: str
    postgres_exporter: str
    redis_exporter: str
    nginx_exporter: str
    blackbox_exporter: str
    grafana: str
    loki: str
    alloy: str
    cadvisor: str

    @field_validator("*")
    @classmethod
    def _immutable(cls, v: str) -> str:
        from deploys.contract.images import check_immutable as check_image_ref

        return check_image_ref(v)

    def refs(self) -> dict[str, str]:
        """``{role: ref}`` in :data:`MONITORING_IMAGE_ROLES` order."""
        return self.model_dump()


class Smtp(BaseModel):
    """Alertmanager's e-mail receiver. The password is the ``smtp_password`` secret (optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smarthost: str = Field(description="host:port of the mail relay")
    sender: str = Field(description="From: address")
    to: tuple[str, ...] = Field(min_length=1, description="recipients of critical alerts")
    username: str | None = None
    require_tls: bool = True

    @field_validator("smarthost")
    @classmethod
    def _hostport(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]{1,5}", v):
            raise ValueError(f"expected host:port, got {v!r}")
        return v

    @field_validator("sender")
    @classmethod
    def _addr(cls, v: str) -> str:
        if not re.fullmatch(r"[^@\s\"']+@[^@\s\"']+", v):
            raise ValueError(f"not an e-mail address: {v!r}")
        return v

    @field_validator("to")
    @classmethod
    def _addrs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for a in v:
            cls._addr(a)
        return v


class Thresholds(BaseModel):
    """Alert thresholds (ratios 0..1, seconds, days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_ratio: float = Field(0.05, gt=0, lt=1, description="5xx share of order-service responses")
    latency_p95_s: float = Field(0.5, gt=0, description="p95 response time of the order service")
    disk_predict_hours: int = Field(24, ge=1, description="predict_linear horizon for disk and inodes")
    disk_free_ratio: float = Field(0.2, gt=0, lt=1, description="only predict when less than this is free")
    cert_days: int = Field(14, ge=1, description="certificate expiry warning")
    runbook_max_age_s: int = Field(26 * 3600, ge=60, description="a scheduled runbook older than this did not run")
    backup_max_age_s: int = Field(26 * 3600, ge=60, description="last successful backup older than this")
    container_restarts: int = Field(2, ge=1, description="restarts of one container within 15 minutes")
    pg_connections_ratio: float = Field(0.8, gt=0, lt=1, description="of max_connections")
    redis_memory_ratio: float = Field(0.9, gt=0, lt=1, description="of maxmemory")


class MonitoringSettings(BaseModel):
    """Settings of the monitoring Compose project (host data key ``monitoring``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: MonitoringImages | None = Field(None, description="required on hosts of group 'monitoring'")
    dir: str = Field(MONITORING_DIR, description="project directory on the host")
    compose_project: str = Field(MONITORING_PROJECT, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    scrape_interval_s: int = Field(15, ge=1, le=300)
    evaluation_interval_s: int = Field(15, ge=1, le=300)
    alert_for_s: int = Field(300, ge=0, le=86400, description="`for:` of the availability and error alerts")
    resend_delay_s: int = Field(60, ge=1, le=3600, description="Prometheus --rules.alert.resend-delay")
    group_wait_s: int = Field(30, ge=0, le=3600)
    group_interval_s: int = Field(300, ge=1, le=86400)
    repeat_interval_s: int = Field(4 * 3600, ge=60, le=7 * 86400)
    retention_time: str = Field("15d", description="Prometheus --storage.tsdb.retention.time")
    retention_size: str = Field("5GB", description="Prometheus --storage.tsdb.retention.size")
    loki_retention_hours: int = Field(744, ge=24, description="Loki limits_config.retention_period (compactor)")
    smtp: Smtp | None = None
    webhook_url: str | None = Field(None, description="Alertmanager webhook receiver (all severities)")
    probe_tls_verify: bool = Field(True, description="blackbox verifies the public certificate (off only for self-signed)")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    allow_sources: tuple[str, ...] = Field(
        (), description="CIDRs allowed to reach exporters/Prometheus/Loki (consumed by the firewall role; none = monitoring hosts only)",
    )
    grafana_public: bool = Field(
        False, description="nginx serves Grafana over HTTPS under /grafana/ (Grafana's own login); "
        "false: not at all, only through an SSH tunnel to the loopback port",
    )
    app_hosts: dict[str, str] = Field(
        default_factory=dict,
        description="app host name -> the address a monitoring host on its own host scrapes it on (IPv4/IPv6); "
        "empty: the monitoring host is the app host (single layout, everything on the compose network)",
    )
    monitoring_hosts: dict[str, str] = Field(
        default_factory=dict,
        description="monitoring host name -> its address, for app hosts it monitors from its own host: the only "
        "sources of scrapes on their exporter ports, and where their Alloy pushes to Loki (the first)",
    )
    loopback_ports: dict[str, int] = Field(
        default_factory=lambda: {name: SERVICE_PORTS[name] for name in LOOPBACK_SERVICES},
        description="127.0.0.1 ports on the monitoring host (SSH tunnel targets); nothing is published on other addresses",
    )

    service_limits: dict[Literal[SERVICES], ServiceLimits] = Field(
        default_factory=default_limits,
        description="memory/cpus/pids per monitoring service (compose limits); services left out keep default_limits()",
    )

    @field_validator("service_limits")
    @classmethod
    def _all_limits(cls, v: dict) -> dict:
        return with_defaults(default_limits(), v)

    @field_validator("dir")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/") or ".." in v.split("/") or v == "/":
            raise ValueError(f"must be an absolute path below /, got {v!r}")
        return v.rstrip("/")

    @field_validator("retention_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not _PROM_SIZE.match(v):
            raise ValueError(f"expected a size like '5GB' (digits + B|KB|MB|GB|TB), got {v!r}")
        return v

    @field_validator("retention_time")
    @classmethod
    def _duration(cls, v: str) -> str:
        if not _PROM_DURATION.match(v):
            raise ValueError(f"expected a duration like '15d' (digits + m|h|d|w|y), got {v!r}")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s\"'`$;%]+", v):
            raise ValueError(f"expected an http(s) URL without spaces, quotes, $ or %, got {v!r}")
        return v

    @field_validator("allow_sources")
    @classmethod
    def _cidrs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ip_network(c, strict=False)) for c in v)

    @field_validator("app_hosts", "monitoring_hosts")
    @classmethod
    def _addresses(cls, v: dict[str, str]) -> dict[str, str]:
        for name, address in v.items():
            try:
                v[name] = str(ip_address(address))
            except ValueError:
                raise ValueError(f"{name}: not an IP address: {address!r}") from None
        return v

    @field_validator("loopback_ports")
    @classmethod
    def _ports(cls, v: dict[str, int]) -> dict[str, int]:
        for name, port in v.items():
            if name not in LOOPBACK_SERVICES:
                raise ValueError(f"unknown service {name!r} ({', '.join(LOOPBACK_SERVICES)})")
            if not 1024 <= port <= 65535:
                raise ValueError(f"{name}: port out of range: {port}")
        if len(set(v.values())) != len(v):
            raise ValueError("ports must be distinct")
        return v
