"""The one inventory format: validated host data and secrets.

Every part of orderops (deploys, runbooks, testinfra suites) reads host data through
:func:`settings_for` or :func:`validate_groups`, so a bad or missing value stops a run with one
clear message naming the host and the field, before any host is touched.

Host data keys are the fields of :class:`HostSettings` (plus pyinfra's own ``ssh_*`` and
``_sudo`` keys, which pyinfra validates itself, and the test harness's ``testhost_*`` keys, which
only tests read). Secrets live outside git in a JSON file whose
path is the ``secrets_file`` host data key (mode 0600 required), or in environment variables
``ORDEROPS_SECRET_<NAME>`` which override the file.

Error hierarchy::

    ValueError
     └── InventoryError        bad host data or secrets; .host and .field name the culprit
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inventories.limits import ServiceLimits, with_defaults
from inventories.monitoring import MonitoringSettings
from order_service.core.secret_policy import secret_format_problem, secret_weakness
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from deploys.contract.compose import COMPOSE_PROJECT
from deploys.contract.images import check_immutable
from deploys.contract.monitoring import AGENT_PUBLISHED, LOKI_PUSH_PORT, METRICS_PORT, SERVICE_PORTS
from deploys.contract.paths import RUNBOOK_DIR, STACK_DIR

__all__ = [
    "InventoryError",
    "deploy_machine_paths",
    "UNNEEDED_SERVICES",
    "NEEDED_UNITS",
    "Secrets",
    "Images",
    "ServiceLimits",
    "HostSettings",
    "settings_for",
    "validate_groups",
    "check_inventory",
    "load_secrets",
    "SECRET_NAMES",
    "deferred_validation",
]

#: Secret names, in the secrets file and as ``ORDEROPS_SECRET_<NAME upper>`` variables.
REQUIRED_SECRET_NAMES = ("postgres_password", "redis_password", "secret_key", "admin_password")
#: Secrets of the monitoring stack: required on hosts of group ``monitoring`` (smtp_password only
#: when ``monitoring.smtp.username`` is set).
MONITORING_SECRET_NAMES = ("grafana_admin_password", "pg_monitor_password", "smtp_password")
SECRET_NAMES = REQUIRED_SECRET_NAMES + MONITORING_SECRET_NAMES

#: pyinfra connection keys and private keys that are not orderops settings, and ``testhost_*``:
#: data the local test harness adds for its tests (container IP and name; ``inventories/local.py``).
_PASSTHROUGH_PREFIXES = ("ssh_", "_", "docker_ssh", "winrm_", "local_", "testhost_")

#: the default ``runbook_schedules`` (UTC): daily at 06:00, weekly maintenance on Sunday 04:00 (report
#: only unless ``runbook_schedule_args`` gives it ``--yes``), the monthly review on the first Sunday
#: of the month at 05:00 (a Sunday among days 1..7)
DEFAULT_RUNBOOK_SCHEDULES = {"daily": "*-*-* 06:00:00", "weekly": "Sun *-*-* 04:00:00", "monthly": "Sun *-*-01..07 05:00:00"}


class InventoryError(ValueError):
    """Bad inventory data or secrets.

    + host: inventory host name the problem belongs to (``None`` for group-level problems)
    + field: dotted field name, e.g. ``images.order_service`` or ``secrets.redis_password``
    + message: what is wrong, never containing a secret value
    """

    def __init__(self, host: str | None, field: str, message: str):
        self.host = host
        self.field = field
        self.message = message
        where = f"host {host!r}: " if host else ""
        super().__init__(f"inventory error: {where}{field}: {message}")


class Secrets(BaseModel):
    """Secrets of one environment. Values are ``SecretStr`` so they never print.

    One policy with the service (:mod:`order_service.core.secret_policy`): every printable
    character is allowed (quotes, backslash, ``$``, backtick, ``#``, space, non-ASCII letters)
    in every environment; the strength rules apply to every environment except ``local``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    postgres_password: SecretStr
    redis_password: SecretStr
    secret_key: SecretStr
    admin_password: SecretStr
    grafana_admin_password: SecretStr | None = None
    pg_monitor_password: SecretStr | None = None
    smtp_password: SecretStr | None = None

    def check_strength(self) -> None:
        """Raise ``ValueError`` naming the first weak secret (its name, never its value)."""
        for name in SECRET_NAMES:
            if getattr(self, name) is None:
                continue
            reason = secret_weakness(getattr(self, name).get_secret_value())
            if reason is not None:
                raise ValueError(f"{name}: too weak: {reason}")

    @field_validator("*")
    @classmethod
    def _printable(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        problem = secret_format_problem(v.get_secret_value())
        if problem is not None:
            raise ValueError(f"not usable as a secret: {problem}")
        return v

    @field_validator("pg_monitor_password")
    @classmethod
    def _url_safe(cls, v: SecretStr | None) -> SecretStr | None:
        # Exception to the every-printable-character policy: compose interpolates it into
        # postgres-exporter's DATA_SOURCE_NAME URL (templates/monitoring/compose.yaml.j2), where
        # @ / : # ? % and the like would change the URL; RFC 3986 unreserved characters only.
        if v is not None and not re.fullmatch(r"[A-Za-z0-9._~-]+", v.get_secret_value()):
            raise ValueError("only letters, digits and - . _ ~ (it is part of postgres-exporter's connection URL)")
        return v

    def values(self) -> list[str]:
        """All secret values, for masking output (e.g. in reports and test logs)."""
        return [getattr(self, name).get_secret_value() for name in SECRET_NAMES if getattr(self, name) is not None]


class Images(BaseModel):
    """Image references of the order stack, by role: immutable tags or digests, never ``latest``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_service: str
    postgres: str
    redis: str
    nginx: str

    @field_validator("*")
    @classmethod
    def _immutable(cls, v: str) -> str:
        return check_immutable(v)

    def refs(self) -> dict[str, str]:
        """``{role: image ref}`` in a stable order."""
        return self.model_dump()


def _default_limits() -> dict[str, ServiceLimits]:
    return {
        "postgres": ServiceLimits(memory="1g", cpus=1.0, pids=256),
        "redis": ServiceLimits(memory="256m", cpus=0.5, pids=64),
        "api": ServiceLimits(memory="1g", cpus=1.0, pids=256),
        "nginx": ServiceLimits(memory="256m", cpus=0.5, pids=128),
    }


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
_RATE = re.compile(r"^[1-9][0-9]{0,6}r/[sm]$")

#: The runbook registry's names as data (the schema does not import the runbooks).
RUNBOOK_NAMES_FILE = Path(__file__).resolve().parents[1] / "runbooks" / "library" / "names.txt"


def runbook_names(path: Path = RUNBOOK_NAMES_FILE) -> tuple[str, ...]:
    """The runbook names that may be scheduled: the lines of ``path`` without ``#`` comments and blanks."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return tuple(line for line in lines if line)


#: Units a production order host does not run: the hardening role stops, disables and masks each
#: one that is present (deploys/roles/hardening.py). A bare Ubuntu server image ships several of
#: them; Debian's minimal install none. Unit -> why the host does without it.
UNNEEDED_SERVICES: dict[str, str] = {
    "snapd.service": "snap packages: nothing on the host comes from a snap; snapd refreshes and runs code on its own schedule",
    "snapd.socket": "socket activation of snapd",
    "ModemManager.service": "mobile-broadband modems: a server has none",
    "avahi-daemon.service": "mDNS/DNS-SD: announces the host and its services on the local link (UDP 5353)",
    "avahi-daemon.socket": "socket activation of avahi-daemon",
    "cups.service": "printing",
    "cups.socket": "socket activation of cups",
    "cups-browsed.service": "network printer discovery (UDP 631; remote code execution chain CVE-2024-47176)",
    "bluetooth.service": "Bluetooth",
    "rpcbind.service": "ONC RPC port mapper for NFSv3: listens on port 111 on every address",
    "rpcbind.socket": "socket activation of rpcbind",
    "apport.service": "Ubuntu's crash-report collector: core dumps are off (hardening role)",
    "whoopsie.service": "sends crash reports to Canonical",
    "udisks2.service": "disk automounting for desktop sessions",
}
#: Units the roles need: ``disabled_services`` refuses them (unit name without its suffix; any
#: ``orderops-*`` unit too). The stack (docker, containerd), remote access (ssh/sshd), the edge
#: (ufw, fail2ban), updates (unattended-upgrades, apt's timers), cron, time, the journal, D-Bus/logind.
NEEDED_UNITS = frozenset({
    "ssh", "sshd", "docker", "containerd", "fail2ban", "ufw", "unattended-upgrades", "cron", "systemd-journald",
    "systemd-timesyncd", "dbus", "systemd-logind", "apt-daily", "apt-daily-upgrade", "certbot", "auditd",
    "orderops-backup", "systemd-sysctl",
})
_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.@-]*\.(service|socket|timer|path)$")


class HostSettings(BaseModel):
    """Validated orderops host data of one host.

    Sizes use Docker/nginx notation (``10m``); durations are seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="inventory host name (filled in by settings_for)")
    groups: tuple[str, ...] = ()
    environment: Literal["local", "staging", "production"]
    domain: str
    secrets_file: Path | None = None
    secrets: Secrets

    timezone: str = "UTC"
    auto_reboot: bool = Field(False, description="unattended-upgrades reboots when an update needs it")
    auto_reboot_time: str = Field("04:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, host time")
    apt_lock_timeout: int = Field(600, ge=0, le=7200, description="seconds apt waits for the dpkg lock (DPkg::Lock::Timeout)")
    deploy_user: str = Field("deploy", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    ssh_allow_groups: tuple[str, ...] = Field(
        ("orderops-ssh",), min_length=1,
        description="sshd AllowGroups; the deploy user (and ssh_user) join the first, which the deploy creates",
    )

    # docker role
    docker_source: Literal["distro", "docker-apt"] = "docker-apt"
    compose_source: Literal["docker-apt", "distro", "deb-file"] = "docker-apt"
    compose_deb: Path | None = Field(
        None, description="deploy-machine path of the Compose plugin .deb (compose_source 'deb-file')",
        json_schema_extra={"deploy_machine": "file"},
    )
    docker_log_max_size: str = "10m"
    docker_log_max_file: int = Field(3, ge=1, le=100)
    docker_userland_proxy: bool = Field(True, description="daemon.json userland-proxy; see deploys/roles/docker_engine.py")

    # images role
    image_transport: Literal["registry", "archive"] = "registry"
    images: Images
    images_keep: int = Field(2, ge=1, le=20, description="previous order-service versions kept")

    # order stack
    stack_dir: str = STACK_DIR
    compose_project: str = Field(COMPOSE_PROJECT, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    service_workers: int = Field(2, ge=1, le=64)
    health_timeout: int = Field(180, ge=10, le=3600)
    nginx_client_max_body_size: str = "1m"
    service_limits: dict[Literal["postgres", "redis", "api", "nginx"], ServiceLimits] = Field(
        default_factory=_default_limits, description="memory/cpus/pids per stack service (compose limits)",
    )
    # TLS (deploys/roles/tls.py): a self-signed certificate for hosts without a public name, or
    # certbot (http-01 through nginx's webroot) against the ACME server acme_directory_url names
    tls_mode: Literal["self-signed", "acme"] = "self-signed"
    acme_directory_url: str | None = Field(
        None, description="ACME directory URL, required with tls_mode 'acme': Let's Encrypt "
        "(https://acme-v02.api.letsencrypt.org/directory), its staging server, or a local one (tests: Pebble)",
    )
    acme_email: str | None = Field(
        None, description="ACME account contact (expiry notices); required in production with tls_mode 'acme'",
    )
    acme_ca_bundle: Path | None = Field(
        None, description="deploy-machine PEM file of CA certificates certbot trusts for the ACME server "
        "(REQUESTS_CA_BUNDLE), e.g. a local server's; default: the system's CAs",
        json_schema_extra={"deploy_machine": "file"},
    )
    acme_names: tuple[str, ...] = Field(
        (), description="DNS names of the ACME certificate (default: domain); must include domain",
    )
    web_artifact: Path | None = Field(
        None, description="deploy-machine directory of the built front end (tools/build_web.py, `make web`); "
        "None: no front end is shipped (nginx answers 404 outside /api)",
        json_schema_extra={"deploy_machine": "local"},
    )
    web_releases_keep: int = Field(3, ge=2, le=20, description="front-end releases kept on the host (current + previous at least)")

    # nginx edge (templates/nginx/orderops.conf.j2); production defaults, the test inventory
    # raises the rate limits. Rates are nginx limit_req rates (``10r/m``, ``20r/s``) per client
    # address; bursts are requests queued beyond the rate (answered at once, ``nodelay``);
    # timeouts are seconds.
    https_public_port: int = Field(
        443, ge=1, le=65535, description="port clients reach HTTPS on (HTTP redirects there; left out of URLs when 443)",
    )
    nginx_login_rate: str = Field("10r/m", description="login attempts per client address")
    nginx_login_burst: int = Field(5, ge=0, le=100_000)
    nginx_api_rate: str = Field("20r/s", description="API requests per client address")
    nginx_api_burst: int = Field(40, ge=0, le=100_000)
    nginx_client_header_timeout: int = Field(10, ge=1, le=3600)
    nginx_client_body_timeout: int = Field(30, ge=1, le=3600)
    nginx_send_timeout: int = Field(30, ge=1, le=3600)
    nginx_keepalive_timeout: int = Field(65, ge=0, le=3600)
    nginx_proxy_connect_timeout: int = Field(5, ge=1, le=75, description="nginx caps it at 75 s")
    nginx_proxy_send_timeout: int = Field(60, ge=1, le=3600)
    nginx_proxy_read_timeout: int = Field(60, ge=1, le=3600)
    # the order service's own limits (RATE_LIMIT_* in order_service/core/config.py; 0 = off)
    service_rate_limit_user: int = Field(600, ge=0, description="requests per window per signed-in user")
    service_rate_limit_ip: int = Field(1200, ge=0, description="requests per window per client address")
    service_rate_limit_window: int = Field(60, ge=1, le=3600, description="fixed window, seconds")
    firewall_allow_tcp: tuple[int, ...] = (22, 80, 443)
    disabled_services: tuple[str, ...] = Field(
        tuple(UNNEEDED_SERVICES), description="systemd units stopped, disabled and masked where present "
        "(hardening role); default UNNEEDED_SERVICES; units the roles need are refused",
    )
    # fail2ban (deploys/roles/fail2ban.py): maxretry failures within findtime seconds ban the
    # address for bantime seconds (sshd and refused API logins alike)
    fail2ban_maxretry: int = Field(5, ge=1, le=1000)
    fail2ban_findtime: int = Field(600, ge=10, le=86400 * 7)
    fail2ban_bantime: int = Field(3600, ge=10, le=86400 * 365)
    lock_ttl: int = Field(3600, ge=60, description="seconds after which a left-over host lock is stale")

    # Redis memory bound (order stack): eviction only among keys with a TTL by default, so
    # idempotency records and rate-limit windows (all with TTLs) go before anything else fails
    redis_maxmemory: str = Field("256mb", pattern=r"^[1-9][0-9]*(kb|mb|gb)$", description="redis-server --maxmemory")
    redis_maxmemory_policy: Literal[
        "noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-lfu", "allkeys-random",
        "volatile-random", "volatile-ttl",
    ] = "volatile-lru"

    # monitoring stack (deploys/roles/monitoring.py, inventories/monitoring.py)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    # runbooks on the controller host (deploys/roles/controller/)
    runbook_dir: str = Field(RUNBOOK_DIR, description="venv, rendered inventory and runs on the controller host")
    runbook_schedules: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RUNBOOK_SCHEDULES),
        description="runbook name -> systemd OnCalendar expression; one timer each (Persistent=true)",
    )
    runbook_schedule_args: dict[str, list[str]] = Field(
        default_factory=dict, description="runbook name -> extra `runbook run` arguments of its timer, e.g. ['-p', 'drift=false']",
    )
    runbook_textfile_dir: str = Field(
        "/var/lib/prometheus/node-exporter", description="node-exporter textfile collector directory for run outcomes",
    )
    runbook_webhook_url: str | None = Field(None, description="a failed scheduled run POSTs its summary here")
    controller_ssh_key: Path | None = Field(
        None, description="deploy-machine path of the key the controller host uses to reach app hosts "
        "(default: generated as $ORDEROPS_STATE_DIR/keys/controller_ed25519)",
        json_schema_extra={"deploy_machine": "local"},
    )

    # how others reach this host (the local harness fills these with its addresses)
    controller_address: str | None = Field(
        None, description="address (DNS name or IP) the controller host uses to reach this host: SSH on port 22 and "
        "nginx on 80/443 (default: the inventory's ssh_hostname and ssh_port)",
    )
    probe_https_url: str | None = Field(
        None, description="base URL probes (runbook checks, tests, the demo) use for nginx over HTTPS (default https://<domain>)",
    )
    probe_http_url: str | None = Field(
        None, description="base URL probes use for nginx over HTTP (default http://<domain>)",
    )

    # backups on the host that runs PostgreSQL (app hosts; deploys/roles/backups.py)
    backup_enabled: bool = Field(True, description="install the backup program and its timer on app hosts")
    backup_age_recipients: tuple[str, ...] = Field(
        (), description="age public keys (age1...) backups are encrypted to; the private key is never put on a server "
        "(required outside environment 'local')",
    )
    backup_dir: str = Field("/var/backups/orderops", description="local backups on the database host")
    backup_schedule: str = Field("*-*-* 02:30:00", description="systemd OnCalendar of orderops-backup.timer")
    backup_keep_daily: int = Field(7, ge=0, le=366)
    backup_keep_weekly: int = Field(4, ge=0, le=520)
    backup_keep_monthly: int = Field(6, ge=0, le=240)
    backup_compression: Literal["zstd", "gzip"] = Field(
        "zstd", description="zstd: pg_dump -Z0 | zstd (chosen by benchmarks/bench_backup.py); gzip: pg_dump -Z1")
    backup_zstd_level: int = Field(1, ge=1, le=19, description="zstd level (1: chosen by benchmarks/bench_backup.py, README Backups)")
    backup_s3_bucket: str | None = Field(None, description="offsite copy bucket (none: local backups only)")
    backup_s3_prefix: str | None = Field(None, description="key prefix in the bucket (default '<host>/')")
    backup_s3_endpoint_url: str | None = Field(None, description="S3 endpoint (default: AWS)")
    backup_s3_region: str = "us-east-1"
    backup_s3_sse: Literal["AES256", "aws:kms"] = "AES256"
    backup_s3_multipart_threshold: int = Field(64 * 1024 * 1024, ge=5 * 1024 * 1024, description="bytes")
    backup_s3_credentials_file: Path | None = Field(
        None, description="deploy-machine path of a 0600 JSON file {aws_access_key_id, aws_secret_access_key}; "
        "installed root-only on the host (required with backup_s3_bucket)",
        json_schema_extra={"deploy_machine": "secret"},
    )
    @field_validator("service_limits")
    @classmethod
    def _all_limits(cls, v: dict) -> dict:
        return with_defaults(_default_limits(), v)

    @field_validator("ssh_allow_groups")
    @classmethod
    def _groups(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for group in v:
            if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", group):
                raise ValueError(f"not a valid group name: {group!r}")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if v != v.lower():
            raise ValueError(f"must be lower-case: {v!r}")
        if not _DOMAIN.match(v):
            raise ValueError(f"not a valid DNS name: {v!r}")
        return v

    @field_validator("acme_names")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not isinstance(name, str) or not _DOMAIN.match(name):
                raise ValueError(f"not a lower-case DNS name: {name!r}")
        if len(set(v)) != len(v):
            raise ValueError("names must be unique")
        return v

    @field_validator("acme_directory_url")
    @classmethod
    def _acme_url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https://[^\s/\"'`$;%]+(/[^\s\"'`$;%]*)?", v):
            raise ValueError(f"expected an https:// URL without spaces, quotes, $ or %, got {v!r}")
        return v

    @field_validator("acme_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}", v):
            raise ValueError(f"not an e-mail address: {v!r}")
        return v

    @field_validator("acme_ca_bundle")
    @classmethod
    def _ca_bundle(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        path = Path(v).expanduser()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {path} ({type(e).__name__})") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"{path} holds no PEM certificate")
        return path

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone: {v!r}") from None
        return v

    @field_validator("docker_log_max_size", "nginx_client_max_body_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not _SIZE.match(v):
            raise ValueError(f"expected a size like '10m' (digits + k|m|g), got {v!r}")
        return v

    @field_validator("web_artifact")
    @classmethod
    def _artifact(cls, v: Path | None) -> Path | None:
        if v is not None and not ((v / "RELEASE").is_file() and (v / "MANIFEST").is_file() and (v / "csp.txt").is_file()):
            raise ValueError(f"not a built front end (RELEASE, MANIFEST, csp.txt missing): {v}; run `make web`")
        return v

    @field_validator("nginx_login_rate", "nginx_api_rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        if not _RATE.match(v):
            raise ValueError(f"expected an nginx rate like '10r/s' or '30r/m', got {v!r}")
        return v

    @field_validator("stack_dir")
    @classmethod
    def _abs(cls, v: str) -> str:
        p = PurePosixPath(v)
        if not p.is_absolute() or ".." in p.parts or str(p) == "/":
            raise ValueError(f"must be an absolute path below /, got {v!r}")
        return str(p)

    @field_validator("backup_age_recipients")
    @classmethod
    def _recipients(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, r in enumerate(v):
            if not re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", r):  # the value is not shown: it may be a private key
                raise ValueError(f"entry {i} is not an age public key (age1 + 58 bech32 characters)")
        return v

    @field_validator("backup_schedule")
    @classmethod
    def _calendar(cls, v: str) -> str:
        if not v.strip() or not v.isprintable() or any(c in v for c in "\"'$`;%"):
            raise ValueError(f"not a systemd calendar expression: {v!r}")
        return v

    @field_validator("backup_s3_bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v):
            raise ValueError(f"not an S3 bucket name: {v!r}")
        return v

    @field_validator("backup_s3_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or not re.fullmatch(r"[A-Za-z0-9._/-]*", v) or (v and not v.endswith("/"))):
            raise ValueError(f"expected a key prefix like 'orderops/app-1/' (ends with '/'), got {v!r}")
        return v

    @field_validator("backup_s3_endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s\"'`$;%]+", v):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v

    @field_validator("backup_dir")
    @classmethod
    def _backup_dir(cls, v: str) -> str:
        return cls._abs(v)

    @field_validator("runbook_dir", "runbook_textfile_dir")
    @classmethod
    def _abs_dirs(cls, v: str) -> str:
        return cls._abs(v)

    @field_validator("runbook_schedules")
    @classmethod
    def _schedules(cls, v: dict[str, str]) -> dict[str, str]:
        for name, calendar in v.items():
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,40}", name):
                raise ValueError(f"runbook name {name!r}: lower-case letters, digits and '-' only")
            if name not in (known := runbook_names()):
                raise ValueError(f"unknown runbook {name!r}; known: {', '.join(known)}")
            if not calendar.strip() or not calendar.isprintable() or any(c in calendar for c in "\"'$`;"):
                raise ValueError(f"{name}: not a systemd calendar expression: {calendar!r}")
        return v

    @field_validator("runbook_schedule_args")
    @classmethod
    def _schedule_args(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, args in v.items():
            for arg in args:
                if not arg.isprintable() or any(c in arg for c in "\"'$`;%"):
                    raise ValueError(f"{name}: argument {arg!r} may not contain quotes, $, `, ; or %")
        return v

    @field_validator("runbook_webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and (not re.fullmatch(r"https?://[^\s\"'`$;%]+", v)):
            raise ValueError(f"expected an http(s) URL without spaces, quotes, $ or %, got {v!r}")
        return v

    @field_validator("probe_https_url", "probe_http_url")
    @classmethod
    def _probe_url(cls, v: str | None, info) -> str | None:
        scheme = "https" if info.field_name == "probe_https_url" else "http"
        if v is not None and not re.fullmatch(scheme + r"://[^\s/\"'`$;%]+", v):
            raise ValueError(f"expected {scheme}://host[:port] without a path, got {v!r}")
        return v

    @field_validator("disabled_services")
    @classmethod
    def _disabled_services(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for unit in v:
            if not _UNIT.match(unit):
                raise ValueError(f"not a systemd unit name (name.service|socket|timer|path): {unit!r}")
            stem = unit.rsplit(".", 1)[0].split("@", 1)[0]
            if stem in NEEDED_UNITS or stem.startswith("orderops"):
                raise ValueError(f"{unit} is needed by the deploy's roles and cannot be disabled")
        return tuple(dict.fromkeys(v))

    @field_validator("firewall_allow_tcp")
    @classmethod
    def _ports(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        for port in v:
            if not 1 <= port <= 65535:
                raise ValueError(f"port out of range: {port}")
        if 22 not in v:
            raise ValueError("22 must stay allowed, or the deploy locks itself out")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _cross(self) -> HostSettings:
        if self.compose_source == "deb-file" and self.compose_deb is None:
            raise ValueError("compose_deb: required when compose_source is 'deb-file'")
        if self.environment != "local":
            self.secrets.check_strength()  # ValueError -> reported under 'secrets'
        if self.tls_mode == "acme":
            self._check_acme()
        if self.monitoring_part is not None:
            self._check_monitoring()
        if self.backup_enabled and "app" in self.groups and self.environment != "local" and not self.backup_age_recipients:
            raise ValueError("backup_age_recipients: required (an age public key from age-keygen; the private key stays off the servers)")
        if self.backup_s3_bucket and self.backup_s3_credentials_file is None:
            raise ValueError("backup_s3_credentials_file: required when backup_s3_bucket is set")
        if self.backup_s3_credentials_file is not None:
            _check_s3_credentials(self.backup_s3_credentials_file)
        return self

    def _check_acme(self) -> None:
        if self.acme_directory_url is None:
            raise ValueError("acme_directory_url: required when tls_mode is 'acme'")
        if self.acme_names and self.domain not in self.acme_names:
            raise ValueError(f"acme_names: must include domain {self.domain!r}")
        if self.environment == "production" and self.acme_email is None:
            raise ValueError("acme_email: required in production when tls_mode is 'acme' (expiry notices)")

    @property
    def certificate_names(self) -> tuple[str, ...]:
        """DNS names of the stack's certificate: ``acme_names``, or ``(domain,)``."""
        return self.acme_names or (self.domain,)

    def _check_monitoring(self) -> None:
        mon = self.monitoring
        part = self.monitoring_part
        if part == "all" and mon.app_hosts:
            raise ValueError("monitoring.app_hosts: must be empty on a monitoring host that is also an 'app' host "
                             "(it monitors itself on the compose network; put the monitoring host on its own host to scrape others)")
        if part == "server":
            if not mon.app_hosts:
                raise ValueError("monitoring.app_hosts: required on a 'monitoring' host that is not an 'app' host "
                                 "(name -> address of every app host it scrapes)")
            if self.host not in mon.monitoring_hosts:
                raise ValueError(f"monitoring.monitoring_hosts: needs this host's address ({self.host!r}), where the "
                                 "app hosts' Alloy pushes to Loki")
            if self.host in mon.app_hosts:
                raise ValueError(f"monitoring.app_hosts: names {self.host!r}, which is not an 'app' host")
            if mon.grafana_public:
                raise ValueError("monitoring.grafana_public: nginx serves Grafana only on a monitoring host that is also "
                                 "an 'app' host; use the SSH tunnel to its loopback port")
        if part == "agent" and self.host not in mon.app_hosts:
            raise ValueError(f"monitoring.app_hosts: needs this host's address ({self.host!r}), where the monitoring "
                             "hosts scrape its exporters")
        if mon.images is None:
            raise ValueError("monitoring.images: required on hosts of group 'monitoring' and the app hosts they monitor")
        if self.environment != "local":
            for role, ref in mon.images.refs().items():
                if "@sha256:" not in ref:
                    raise ValueError(f"monitoring.images.{role}: production pins tag and digest (name:tag@sha256:...)")
        if part != "agent" and mon.smtp is None and mon.webhook_url is None and self.environment != "local":
            raise ValueError("monitoring.smtp: set smtp and/or webhook_url, or alerts reach nobody")
        names = {"all": ("grafana_admin_password", "pg_monitor_password"), "server": ("grafana_admin_password",),
                 "agent": ("pg_monitor_password",)}[part]
        for name in names:
            if getattr(self.secrets, name) is None:
                raise ValueError(f"{name}: missing (required on hosts of group 'monitoring' and the app hosts they monitor)")
        if part != "agent" and mon.smtp is not None and mon.smtp.username and self.secrets.smtp_password is None:
            raise ValueError("smtp_password: missing (monitoring.smtp.username is set)")

    @property
    def monitoring_part(self) -> str | None:
        """The part of the monitoring project this host runs (:data:`deploys.contract.monitoring.PARTS`):
        ``all`` (group ``monitoring`` and ``app``: the single layout), ``server`` (``monitoring``
        only), ``agent`` (``app`` only, with ``monitoring.monitoring_hosts``), else ``None``."""
        if "monitoring" in self.groups:
            return "all" if "app" in self.groups else "server"
        if "app" in self.groups and self.monitoring.monitoring_hosts:
            return "agent"
        return None

    @property
    def monitoring_address(self) -> str | None:
        """This host's address the other side of a split monitoring stack reaches (``monitoring.app_hosts`` /
        ``monitoring_hosts``), ``None`` in the single layout or without monitoring."""
        part = self.monitoring_part
        if part == "agent":
            return self.monitoring.app_hosts[self.host]
        if part == "server":
            return self.monitoring.monitoring_hosts.get(self.host)
        return None

    @property
    def firewall_allow_from(self) -> tuple[tuple[str, int], ...]:
        """``(source address, TCP port)`` pairs allowed besides ``firewall_allow_tcp`` (role firewall, ufw
        and ``DOCKER-USER``): on an ``agent`` host the exporters and ``/metrics`` from each monitoring
        host, on a ``server`` host Loki's push port from each app host; none otherwise."""
        part = self.monitoring_part
        if part == "agent":
            ports = sorted([SERVICE_PORTS[s] for s in AGENT_PUBLISHED] + [METRICS_PORT])
            sources = self.monitoring.monitoring_hosts.values()
        elif part == "server":
            ports, sources = [LOKI_PUSH_PORT], self.monitoring.app_hosts.values()
        else:
            return ()
        return tuple((src, port) for src in sorted(set(sources)) for port in ports)

    @property
    def public_https_url(self) -> str:
        """Where probes reach nginx over HTTPS (``probe_https_url`` or ``https://<domain>``)."""
        return self.probe_https_url or f"https://{self.domain}"

    @property
    def public_http_url(self) -> str:
        """Where probes reach nginx over HTTP (``probe_http_url`` or ``http://<domain>``)."""
        return self.probe_http_url or f"http://{self.domain}"


def _check_s3_credentials(path: Path) -> None:
    """Raise ``ValueError("backup_s3_credentials_file: ...")`` unless ``path`` is a 0600 JSON
    object with non-empty ``aws_access_key_id`` and ``aws_secret_access_key`` (values never shown)."""
    path = Path(path).expanduser()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"backup_s3_credentials_file: file not found: {path}") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"backup_s3_credentials_file: {path} is unreadable or not JSON ({type(e).__name__})") from None
    if mode & 0o077:
        raise ValueError(f"backup_s3_credentials_file: {path} has mode {mode:04o}; secret files must be 0600")
    for key in ("aws_access_key_id", "aws_secret_access_key"):
        if not isinstance(data, dict) or not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"backup_s3_credentials_file: {path} lacks {key}")


def load_secrets(path: Path | None, host: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read secrets from ``path`` (JSON object, mode 0600) overlaid by ``ORDEROPS_SECRET_*``.

    Returns ``{name: value}`` for the names found. Raises :class:`InventoryError` when the file
    is missing, unreadable, not 0600, not a JSON object, or has unknown keys.
    """
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    from_env = {n: env[f"ORDEROPS_SECRET_{n.upper()}"] for n in SECRET_NAMES if env.get(f"ORDEROPS_SECRET_{n.upper()}")}
    if path is not None and len(from_env) < len(SECRET_NAMES):  # every secret in the environment: no file needed
        path = Path(path).expanduser()
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            raise InventoryError(host, "secrets_file", f"file not found: {path}") from None
        if mode & 0o077:
            raise InventoryError(host, "secrets_file", f"{path} has mode {mode:04o}; secret files must be 0600")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            # position only: the message of a JSON error may quote the (secret) text
            raise InventoryError(host, "secrets_file", f"{path} is not valid JSON (line {e.lineno}, column {e.colno})") from None
        except OSError as e:
            raise InventoryError(host, "secrets_file", f"cannot read {path} ({type(e).__name__})") from None
        if not isinstance(data, dict):
            raise InventoryError(host, "secrets_file", f"{path} must hold a JSON object")
        for key, value in data.items():
            if key not in SECRET_NAMES:
                raise InventoryError(host, f"secrets.{key}", "unknown secret name")
            if not isinstance(value, str):
                raise InventoryError(host, f"secrets.{key}", "must be a string")
            values[key] = value
    values.update(from_env)
    return values


def _orderops_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith(_PASSTHROUGH_PREFIXES)}


def _first_error(host: str, err: ValidationError) -> InventoryError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(host data)"
    msg = first["msg"]
    if first["type"] == "missing":
        msg = "required value is missing"
    elif first["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    # Weak-secret errors are raised by the model validator: report them under their secret.
    if loc == "(host data)" and ":" in msg:
        name, _, rest = msg.partition(":")
        loc = f"secrets.{name}" if name in SECRET_NAMES else name
        msg = rest.strip()
    # Never echo input values for secrets.
    return InventoryError(host, loc, msg)


def build_settings(host: str, data: Mapping[str, Any], groups: Iterable[str] = ()) -> HostSettings:
    """Validate one host's data (a plain mapping) into :class:`HostSettings`.

    Raises :class:`InventoryError` naming ``host`` and the first bad field.
    """
    raw = _orderops_data(data)
    secrets_file = raw.get("secrets_file")
    secrets = load_secrets(Path(secrets_file) if secrets_file else None, host)
    missing = [n for n in REQUIRED_SECRET_NAMES if n not in secrets]
    if missing:
        raise InventoryError(
            host, f"secrets.{missing[0]}",
            "missing (set it in secrets_file or ORDEROPS_SECRET_" + missing[0].upper() + ")",
        )
    raw["secrets"] = secrets
    raw["host"] = host
    raw["groups"] = tuple(groups)
    try:
        return HostSettings.model_validate(raw)
    except ValidationError as e:
        raise _first_error(host, e) from None


def settings_for(host: Any) -> HostSettings:
    """Validated settings of a pyinfra ``Host`` (``host.name``, ``host.data``, ``host.groups``).

    Raises :class:`InventoryError`.
    """
    groups = [g.name if hasattr(g, "name") else str(g) for g in getattr(host, "groups", [])]
    return build_settings(host.name, host.data.dict(), groups)


def validate_groups(groups: Mapping[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, HostSettings]:
    """Validate every host of an inventory's groups (``{group: [(name, data), ...]}``).

    Called at the bottom of inventory files, so pyinfra stops before connecting to any host.
    Returns ``{host name: HostSettings}``. Raises :class:`InventoryError` for the first bad host,
    a host whose data differs between groups, or an inventory without an ``app`` host.
    """
    merged: dict[str, dict[str, Any]] = {}
    member: dict[str, list[str]] = {}
    for group, hosts in groups.items():
        for name, data in hosts:
            if name in merged and merged[name] != data:
                raise InventoryError(name, "(host data)", f"differs between groups {member[name][0]!r} and {group!r}")
            merged[name] = data
            member.setdefault(name, []).append(group)
    if not groups.get("app"):
        raise InventoryError(None, "app", "the inventory has no host in group 'app'")
    settings = {name: build_settings(name, data, member[name]) for name, data in merged.items()}
    _check_split_monitoring(settings)
    return settings


def _check_split_monitoring(settings: Mapping[str, HostSettings]) -> None:
    """A monitoring host of its own and its app hosts name each other: the server's
    ``monitoring.app_hosts`` are exactly the inventory's app hosts, each app host's
    ``monitoring.monitoring_hosts`` exactly the monitoring hosts, with the same addresses.
    An inventory of app hosts only (the controller host's export) is checked host by host."""
    servers = {n: s for n, s in settings.items() if s.monitoring_part == "server"}
    if not servers:
        # app hosts alone (e.g. the controller host's exported inventory): each one's data suffices
        return
    apps = {n: s for n, s in settings.items() if "app" in s.groups}
    for name, s in servers.items():
        if set(s.monitoring.app_hosts) != set(apps):
            raise InventoryError(name, "monitoring.app_hosts",
                                 f"must name exactly the app hosts {sorted(apps)}, got {sorted(s.monitoring.app_hosts)}")
    for name, s in apps.items():
        if "monitoring" in s.groups:
            raise InventoryError(name, "groups", f"a monitoring host that is also an app host cannot share the inventory "
                                 f"with monitoring hosts of their own {sorted(servers)}")
        if s.monitoring_part != "agent":
            raise InventoryError(name, "monitoring.monitoring_hosts",
                                 f"required: the monitoring hosts {sorted(servers)} with their addresses")
        if set(s.monitoring.monitoring_hosts) != set(servers):
            raise InventoryError(name, "monitoring.monitoring_hosts",
                                 f"must name exactly the monitoring hosts {sorted(servers)}, got {sorted(s.monitoring.monitoring_hosts)}")
        for server, srv in servers.items():
            if srv.monitoring.app_hosts[name] != s.monitoring.app_hosts.get(name):
                raise InventoryError(name, "monitoring.app_hosts", f"this host's address differs from monitoring host {server!r}'s")


_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("orderops_inventory_deferred", default=False)


@contextlib.contextmanager
def deferred_validation():
    """Within the block :func:`check_inventory` validates nothing: the caller
    (:func:`inventories.loader.load_validated`) validates every host once itself, with the data
    pyinfra merged."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def check_inventory(groups: Mapping[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, HostSettings]:
    """:func:`validate_groups` for inventory files: a bad inventory exits with one clear line.

    Raises ``SystemExit("orderops: inventory error: host 'x': field: message")`` instead of
    :class:`InventoryError`, so pyinfra stops before connecting without printing a traceback.
    Returns ``{}`` without validating inside :func:`deferred_validation`.
    """
    if _DEFERRED.get():
        return {}
    try:
        return validate_groups(groups)
    except InventoryError as e:
        raise SystemExit(f"orderops: {e}") from None


def deploy_machine_paths() -> dict[str, str]:
    """``{field: kind}`` of the :class:`HostSettings` fields that name a path on the deploy machine
    (the operator's machine that runs ``pyinfra``), from each field's ``deploy_machine`` marker.

    Kinds: ``file`` (copied to the controller host as is), ``secret`` (copied 0600, content never
    shown), ``local`` (not copied, left out of the controller host's inventory: the built front end,
    whose shipped release runbooks from there keep, and the controller key, installed by its own
    role step as the controller host's ``ssh_key``). The controller role and :func:`deploys.roles.controller.inventory_export.controller_host_data`
    read this table, so a new deploy-machine path is handled by marking its field.
    """
    return {name: f.json_schema_extra["deploy_machine"] for name, f in HostSettings.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and "deploy_machine" in f.json_schema_extra}
