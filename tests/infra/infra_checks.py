"""Helpers of the testinfra suite: reading compose state, sockets and the order API."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any

#: The order every run creates: 2 x 12.50 EUR.
ORDER = {
    "customer": "testinfra",
    "currency": "EUR",
    "lines": [{"sku": "A-1", "quantity": 2, "unit_price_minor": 1250}],
}
ORDER_FIELDS = {"id", "customer", "currency", "total_minor", "status", "created_at", "lines"}


def parse_compose_ps(output: str) -> list[dict[str, Any]]:
    """Parse ``docker compose ps --format json``: one JSON object per line (Compose >= 2.21)
    or one JSON array (older Compose v2)."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def compose_containers(host, project: str) -> list[dict[str, Any]]:
    """Every container of compose ``project`` on ``host``, stopped ones included."""
    result = host.run("docker compose -p %s ps --all --format json", project)
    assert result.rc == 0, f"docker compose ps failed: {result.stderr.strip()}"
    return parse_compose_ps(result.stdout)


def container_problems(containers: list[dict[str, Any]], without_probe: tuple[str, ...] = ()) -> list[str]:
    """Why containers are not healthy: not running, or a missing/failing healthcheck.

    + without_probe: services that have no healthcheck by design (their health is checked
      another way by the caller); for them only "running" is required
    """
    problems = []
    for c in containers:
        name, state, health = c.get("Service") or c.get("Name"), c.get("State"), c.get("Health")
        if state != "running":
            problems.append(f"{name}: {state} (exit code {c.get('ExitCode')})")
        elif name in without_probe:
            if health:
                problems.append(f"{name}: has a healthcheck ({health}) although its image has no program to run one")
        elif not health:
            problems.append(f"{name}: running without a healthcheck")
        elif health != "healthy":
            problems.append(f"{name}: {health}")
    return problems


def wait_until(probe: Callable[[], Any], timeout: float, interval: float = 3.0) -> Any:
    """Call ``probe`` until it returns a truthy value or ``timeout`` seconds pass; return the
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_healthy(host, project: str, expected: int, timeout: float) -> list[str]:
    """Wait for ``expected`` containers of ``project``, all running and healthy. Return the
    remaining problems (empty when healthy)."""

    def problems() -> list[str]:
        containers = compose_containers(host, project)
        found = container_problems(containers)
        if len(containers) != expected:
            found.append(f"{len(containers)} containers, expected {expected}")
        return found

    last: list[str] = []

    def healthy() -> bool:
        nonlocal last
        last = problems()
        return not last

    wait_until(healthy, timeout)
    return last


def listening_tcp(host) -> list[tuple[str, int]]:
    """``(address, port)`` of every listening TCP socket of the host's network namespace.

    Uses ``ss -ltn``; falls back to ``/proc/net/tcp{,6}`` on hosts without iproute2.
    """
    if host.exists("ss"):
        sockets = []
        for line in host.check_output("ss -ltnH").splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            address, _, port = fields[3].rpartition(":")
            sockets.append((address.strip("[]").split("%")[0], int(port)))
        return sockets

    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in host.check_output("cat %s", table).splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints the address as 32-bit words in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            sockets.append((str(ipaddress.ip_address(packed)), int(hex_port, 16)))
    return sockets


def is_loopback(address: str) -> bool:
    """Whether ``address`` (as ``ss`` prints it) is a loopback address; ``*`` is not."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def published_ports(containers: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """``(service, target port, published port)`` of every port a container publishes."""
    return [
        (c.get("Service", c.get("Name")), p.get("TargetPort"), p.get("PublishedPort"))
        for c in containers
        for p in c.get("Publishers") or []
        if p.get("PublishedPort")
    ]


def check_order(body: dict[str, Any]) -> None:
    """Assert ``body`` is the order :data:`ORDER` as the service returns it."""
    assert ORDER_FIELDS <= set(body), f"missing fields: {sorted(ORDER_FIELDS - set(body))}"
    assert body["customer"] == ORDER["customer"]
    assert body["currency"] == ORDER["currency"]
    assert body["total_minor"] == 2500
    assert [(line["sku"], line["quantity"], line["unit_price_minor"]) for line in body["lines"]] == [
        ("A-1", 2, 1250),
    ]


def same_order(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two answers describe the same stored order (``created_at`` may be formatted
    differently after a round trip through the database)."""
    keys = ORDER_FIELDS - {"created_at"}
    return {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys} and bool(b.get("created_at"))
