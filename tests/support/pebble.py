"""Pebble, Let's Encrypt's ACME test server (Debian's ``pebble``, image ``images/pebble``), as a
container next to the test hosts: test-only, it forgets every account and order when it stops.

The container joins the test hosts' network (``<prefix>-net``, passed by the test); ACME names resolve to the
test host through ``--add-host``, so pebble's http-01 validation reaches nginx on the host's port 80.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from testhosts.hosts import LABEL

__all__ = ["Pebble", "pebble_server"]


def _docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}...: {proc.stderr.strip()[-500:]}")
    return proc.stdout


@dataclass(frozen=True)
class Pebble:
    """A running Pebble: its container, ``directory_url`` and the PEM CA of its HTTPS listener."""

    container: str
    directory_url: str
    listener_ca: str

    def logs(self) -> str:
        """Pebble's log (its request log on stderr)."""
        proc = subprocess.run(["docker", "logs", self.container], capture_output=True, text=True, check=False)
        return proc.stdout + proc.stderr

    def orders(self) -> int:
        """ACME orders created since the start (``POST /order-plz``, RFC 8555 newOrder)."""
        return sum(1 for line in self.logs().splitlines() if "POST /order-plz" in line)


@contextlib.contextmanager
def pebble_server(image: str, name: str, label: str, names: Mapping[str, str], network: str = "bridge",
                  timeout: float = 60) -> Iterator[Pebble]:
    """Start Pebble as container ``name`` (removed first if it exists, and at the end).

    + image: the pebble image ref (images.json ``pebble``)
    + label: the harness label value, so ``make hosts-down`` removes a left-over container too
    + names: ACME name -> address pebble resolves it to (the test host's IP)
    + network: the Docker network to join: the test hosts' (their own Docker uses 172.17.0.0/16
      inside, so an address on the machine's default bridge is not reachable from a test host)
    Raises ``RuntimeError`` when it is not healthy within ``timeout`` seconds.
    """
    _docker("rm", "-f", name, check=False)
    hosts = [f"--add-host={n}:{ip}" for n, ip in names.items()]
    _docker("run", "-d", "--name", name, "--network", network, "--label", f"{LABEL}={label}", *hosts, image)
    try:
        deadline = time.monotonic() + timeout
        while True:
            state = json.loads(_docker("inspect", name))[0]
            if state["State"].get("Health", {}).get("Status") == "healthy":
                break
            if time.monotonic() > deadline or not state["State"]["Running"]:
                raise RuntimeError(f"pebble did not become healthy: {_docker('logs', name, check=False)[-1000:]}")
            time.sleep(0.5)
        ip = state["NetworkSettings"]["Networks"][network]["IPAddress"]
        yield Pebble(name, f"https://{ip}:14000/dir", _docker("exec", name, "cat", "/ca/listener-ca.pem"))
    finally:
        _docker("rm", "-f", name, check=False)
