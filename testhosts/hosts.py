"""Start, check and remove the local test hosts.

Each host is a container of the target image running systemd as PID 1, with the Docker-in-Docker
flag set below (the deploy installs Docker inside)::

    --cgroupns=private --tmpfs /sys/fs/cgroup          systemd mounts its own hierarchies
    --cap-add SYS_ADMIN --cap-add NET_ADMIN            mounts/overlay; iptables, ufw
    --cap-add SYS_PTRACE                               inner `docker exec` (and so healthchecks)
                                                       into containers whose PID 1 changed uid
                                                       and is not dumpable, e.g. postgres:
                                                       without it runc fails with "error
                                                       executing setns process"
    --security-opt seccomp=unconfined                  inner runc needs keyctl
    -v <container>-docker:/var/lib/docker              ext4-backed, so inner overlay2 works
    --tmpfs /run --tmpfs /run/lock
    --restart unless-stopped                           a reboot inside brings the host back

A reboot: ``systemctl reboot`` inside runs systemd's shutdown; its last step, ``reboot(2)``, is
refused without CAP_SYS_BOOT (not granted), so systemd-shutdown ends the container ("Exiting
container.", exit 0). The restart policy starts the same container again (``RestartCount`` + 1):
its filesystem, the ``/var/lib/docker`` volume, the SSH host keys, the published ports and the
network stay; the tmpfs mounts (``/run``, ``/sys/fs/cgroup``) are fresh, as on a booted machine,
and systemd boots it from scratch (sshd, dockerd, the stacks' ``restart: unless-stopped``
containers). ``docker stop`` (``down``) is not restarted. The kernel's ``boot_id`` is the
machine's: a test host's boot shows in Docker's ``State.StartedAt`` and PID 1's start time.

Never ``--privileged`` (fails on these machines) and never the machine's ``/sys/fs/cgroup``
read-write (it damages the host's cgroup setup; :mod:`testhosts.fingerprint` checks).

Host i (1-based) publishes ssh on ``127.0.0.1:2200+i``, 80 on ``127.0.0.1:8080+i`` and 443 on
``127.0.0.1:8440+i`` (``port_offset`` shifts all three, e.g. for a second harness next to the first).
Containers and volumes carry the label ``orderops.testhost=<state dir>``.

The hosts sit on their own IPv6-enabled bridge network ``<prefix>-net`` (ULA subnet derived from
the prefix, :func:`ipv6_subnet`), so a probe container on the same network can reach each host over
IPv4 and IPv6 as "another machine" would (tests/integration/test_firewall_outside.py).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from rich.console import Console
from rich.table import Table
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from . import fingerprint
from .state import (
    SSH_USER,
    SUITE,
    HostEntry,
    HostsState,
    StatePaths,
    load_hosts,
    save_hosts,
)

SSH_BASE = 2200
HTTP_BASE = 8080
HTTPS_BASE = 8440
MAX_HOSTS = 50
LAYOUTS = ("single", "split", "monitoring")
LABEL = "orderops.testhost"
READY_TIMEOUT = 180.0
#: seconds between readiness probes
READY_POLL = 0.3


class HostsError(RuntimeError):
    pass


# --------------------------------------------------------------------------- pure planning


def layout_groups(n: int, layout: str) -> list[list[str]]:
    """Groups of hosts 1..n. ``single``: all ``app``, host 1 also ``controller``.
    ``split`` (n >= 2): host 1 only ``controller``, the others ``app``.
    ``monitoring`` (n >= 3): as ``split``, but the last host only ``monitoring`` (the monitoring
    stack on a host of its own, scraping the app hosts over the test network)."""
    if n < 1:
        raise HostsError(f"need at least one host (got {n})")
    if n > MAX_HOSTS:
        raise HostsError(f"at most {MAX_HOSTS} hosts (got {n})")
    if layout == "single":
        return [["app", "controller"] if i == 1 else ["app"] for i in range(1, n + 1)]
    if layout == "split":
        if n < 2:
            raise HostsError("layout 'split' needs at least 2 hosts (one controller, one or more app)")
        return [["controller"] if i == 1 else ["app"] for i in range(1, n + 1)]
    if layout == "monitoring":
        if n < 3:
            raise HostsError("layout 'monitoring' needs at least 3 hosts (one controller, one or more app, one monitoring)")
        return [["controller"] if i == 1 else ["monitoring"] if i == n else ["app"] for i in range(1, n + 1)]
    raise HostsError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


@dataclass(frozen=True)
class HostPlan:
    index: int
    name: str
    ssh_port: int
    http_port: int
    https_port: int
    groups: tuple[str, ...]

    @property
    def container(self) -> str:
        return self.name

    @property
    def volume(self) -> str:
        return f"{self.name}-docker"


def network_name(prefix: str) -> str:
    """Name of the test hosts' bridge network for a host name ``prefix``."""
    return f"{prefix}-net"


def ipv6_subnet(prefix: str) -> str:
    """A ULA /64 (RFC 4193 ``fd00::/8``) for the network of ``prefix``: 40 bits from its SHA-256,
    so harnesses with different prefixes get different subnets."""
    h = hashlib.sha256(prefix.encode()).hexdigest()[:10]
    return f"fd{h[0:2]}:{h[2:6]}:{h[6:10]}:1::/64"


def ports_for(index: int, port_offset: int = 0) -> tuple[int, int, int]:
    """(ssh, http, https) loopback ports of host ``index`` (1-based)."""
    i = index + port_offset
    return SSH_BASE + i, HTTP_BASE + i, HTTPS_BASE + i


def plan_hosts(n: int, layout: str = "single", prefix: str = "orderops", port_offset: int = 0) -> list[HostPlan]:
    groups = layout_groups(n, layout)
    if port_offset < 0 or port_offset + n > HTTPS_BASE - HTTP_BASE - 1:
        raise HostsError(
            f"port offset {port_offset} with {n} hosts makes the port ranges overlap "
            f"(allowed offsets for {n} hosts: 0..{359 - n})",
        )
    if not prefix or not prefix.replace("-", "").isalnum():
        raise HostsError(f"host name prefix {prefix!r} must be alphanumeric (dashes allowed)")
    plans = []
    for i, g in enumerate(groups, start=1):
        ssh, http, https = ports_for(i, port_offset)
        plans.append(HostPlan(i, f"{prefix}-{i}", ssh, http, https, tuple(g)))
    return plans


def run_kwargs(plan: HostPlan, image: str, label: str, network: str | None = None) -> dict:
    """``docker run`` arguments (docker SDK form) of one DinD test host on ``network``."""
    extra = {"network": network} if network else {}
    return dict(
        **extra,
        image=image,
        name=plan.container,
        hostname=plan.name,
        detach=True,
        labels={LABEL: label, f"{LABEL}.name": plan.name, f"{LABEL}.index": str(plan.index)},
        cgroupns="private",
        tmpfs={"/sys/fs/cgroup": "", "/run": "", "/run/lock": ""},
        cap_add=["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"],
        security_opt=["seccomp=unconfined"],
        volumes={plan.volume: {"bind": "/var/lib/docker", "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"},
        ports={
            "22/tcp": ("127.0.0.1", plan.ssh_port),
            "80/tcp": ("127.0.0.1", plan.http_port),
            "443/tcp": ("127.0.0.1", plan.https_port),
        },
    )


def ssh_command(key: Path, port: int, remote: str, user: str = SSH_USER, connect_timeout: int = 3) -> list[str]:
    return [
        "ssh", "-i", str(key), "-p", str(port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "IdentitiesOnly=yes",
        f"{user}@127.0.0.1", remote,
    ]


def known_hosts_lines(port: int, keys: list[str], address: str = "127.0.0.1") -> str:
    """known_hosts lines for a host reached at ``address:port`` (``[addr]:port`` unless port 22)."""
    name = address if port == 22 else f"[{address}]:{port}"
    return "".join(f"{name} {key}\n" for key in keys)


def render_ssh_config(state: HostsState, known_hosts: Path) -> str:
    """``ssh_config`` text with one ``Host`` entry per test host, host keys checked against
    ``known_hosts`` (the keys ``up`` read through Docker)."""
    out = ["# written by `python -m testhosts up`; use: ssh -F .orderops/ssh_config orderops-1\n"]
    for h in state.hosts:
        out.append(
            f"Host {h.name}\n  HostName 127.0.0.1\n  Port {h.ssh_port}\n  User {state.ssh_user}\n"
            f"  IdentityFile {state.ssh_key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n"
            f"  UserKnownHostsFile {known_hosts}\n  LogLevel ERROR\n\n"
        )
    return "".join(out)


# --------------------------------------------------------------------------- docker side


class Hosts:
    def __init__(self, paths: StatePaths, console: Console | None = None,
                 client: docker.DockerClient | None = None) -> None:
        self.paths = paths
        self.console = console or Console(stderr=True)
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            from .images import docker_client

            self._client = docker_client()
        return self._client

    # ------------------------------------------------------------------ cgroup fingerprint
    def _check_baseline(self, when: str) -> fingerprint.Fingerprint:
        current = fingerprint.take()
        changes = fingerprint.check_against_baseline(self.paths.fingerprint_json, current)
        if changes:
            self.console.print(
                f"[yellow]warning ({when}): the host's cgroup setup differs from the baseline in "
                f"{self.paths.fingerprint_json}:[/]\n  " + "\n  ".join(changes)
                + "\n  (see testhosts/fingerprint.py; `python -m testhosts fingerprint --reset` accepts the current state)")
        return current

    # ------------------------------------------------------------------ removal
    def _containers(self, names: list[str]) -> list:
        """This state dir's containers, plus stopped test hosts of another state dir that hold
        one of ``names`` (left over by a finished session). Raises :class:`HostsError` when a
        name is held by a running container of another owner, or by a non-test-host container."""
        found = {c.id: c for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.paths.label}"})}
        for name in names:
            try:
                c = self.client.containers.get(name)
            except NotFound:
                continue
            owner = (c.labels or {}).get(LABEL)
            if owner != self.paths.label and (owner is None or c.status == "running"):
                who = f"the test hosts of {owner}" if owner else "a container that is not an orderops test host"
                raise HostsError(
                    f"container name {name} is taken by {who} ({c.status}); choose another name prefix "
                    "(ORDEROPS_HOST_PREFIX=...) and port offset (ORDEROPS_PORT_OFFSET=...), or remove it first",
                )
            found[c.id] = c
        return list(found.values())

    def remove(self, names: list[str] | None = None) -> list[str]:
        """Remove this state dir's containers (plus any named ``names``) and their docker volumes."""
        removed = []
        volumes: set[str] = set()
        for c in self._containers(names or []):
            for m in c.attrs.get("Mounts", []):
                if m.get("Type") == "volume" and m.get("Name"):
                    volumes.add(m["Name"])
            c.remove(force=True, v=True)
            removed.append(c.name)
        for v in self.client.volumes.list(filters={"label": f"{LABEL}={self.paths.label}"}):
            volumes.add(v.name)
        for name in names or []:
            volumes.add(f"{name}-docker")
        for vname in sorted(volumes):
            try:
                self.client.volumes.get(vname).remove(force=True)
            except NotFound:
                pass
            except APIError as exc:
                self.console.print(f"[yellow]could not remove volume {vname}: {exc}[/]")
        return sorted(removed)

    # ------------------------------------------------------------------ up
    def up(self, n: int, layout: str, image: str, compose_deb: Path, prefix: str = "orderops",
           port_offset: int = 0, timeout: float = READY_TIMEOUT) -> HostsState:
        plans = plan_hosts(n, layout, prefix, port_offset)
        before = self._check_baseline("before up")
        key = self.paths.ssh_key
        self.paths.hosts_json.unlink(missing_ok=True)
        removed = self.remove([p.container for p in plans])
        if removed:
            self.console.print(f"  removed previous containers: {', '.join(removed)}")

        network = self.ensure_network(prefix)
        started = time.monotonic()
        containers = {}
        for p in plans:
            self.client.volumes.create(p.volume, labels={LABEL: self.paths.label})
            try:
                containers[p.name] = self.client.containers.run(**run_kwargs(p, image, self.paths.label, network))
            except APIError as exc:
                raise HostsError(f"cannot start {p.container}: {exc.explanation or exc}") from exc

        with self.console.status(f"waiting for {n} host(s): ssh + systemd ..."), \
                concurrent.futures.ThreadPoolExecutor(max_workers=min(n, 8)) as pool:
            futures = {pool.submit(self.wait_ready, p, key, timeout): p for p in plans}
            errors = []
            for fut in concurrent.futures.as_completed(futures):
                p = futures[fut]
                try:
                    fut.result()
                except HostsError as exc:
                    errors.append(str(exc))
        if errors:
            raise HostsError("\n".join(errors))

        entries = []
        for p in plans:
            c = containers[p.name]
            c.reload()
            net = c.attrs["NetworkSettings"].get("Networks", {}).get(network, {})
            ip = net.get("IPAddress") or c.attrs["NetworkSettings"].get("IPAddress") or ""
            ip6 = net.get("GlobalIPv6Address") or ""
            entries.append(HostEntry(name=p.name, container=p.container, ip=ip, ip6=ip6, ssh_port=p.ssh_port,
                                     http_port=p.http_port, https_port=p.https_port, groups=list(p.groups)))
        state = HostsState(suite=SUITE, ssh_user=SSH_USER, ssh_key=str(key),
                           compose_deb=str(compose_deb), hosts=entries)
        save_hosts(self.paths, state)
        self.paths.ssh_config.write_text(render_ssh_config(state, self.paths.known_hosts))
        self.paths.known_hosts.write_text("".join(
            known_hosts_lines(p.ssh_port, self.host_keys(containers[p.name])) for p in plans))
        self.console.print(f"  {n} host(s) ready in {time.monotonic() - started:.1f} s")

        after = fingerprint.take()
        changes = fingerprint.diff(before, after)
        if changes:
            raise HostsError("the host's cgroup setup changed while the test hosts started "
                             "(see testhosts/fingerprint.py):\n" + "\n".join(changes))
        return state

    @staticmethod
    def host_keys(container) -> list[str]:
        """The container's public SSH host keys (``<type> <base64>``), read with ``docker exec``:
        through Docker, not the network, so what is recorded is the host's own key."""
        code, out = container.exec_run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
        keys = [" ".join(line.split()[:2]) for line in out.decode().splitlines() if line.strip()]
        if code != 0 or not keys:
            raise HostsError(f"{container.name}: cannot read its SSH host keys (exit {code})")
        return keys

    def ensure_network(self, prefix: str) -> str:
        """Create (or reuse) the IPv6-enabled bridge network of ``prefix``; returns its name.

        Raises :class:`HostsError` with Docker's message when the daemon cannot create it.
        """
        name = network_name(prefix)
        try:
            net = self.client.networks.get(name)
            if (net.attrs.get("Labels") or {}).get(LABEL) != self.paths.label:
                raise HostsError(f"network {name} exists and is not this harness's; choose another ORDEROPS_HOST_PREFIX")
            return name
        except NotFound:
            pass
        import docker.types

        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=ipv6_subnet(prefix))])
        try:
            self.client.networks.create(name, driver="bridge", enable_ipv6=True, ipam=ipam, labels={LABEL: self.paths.label})
        except APIError as exc:
            raise HostsError(f"cannot create the IPv6 test network {name}: {exc.explanation or exc}") from exc
        return name

    def wait_ready(self, plan: HostPlan, key: Path, timeout: float = READY_TIMEOUT) -> str:
        """Poll ``systemctl is-system-running --wait`` over SSH until it answers; require ``running``.

        Polls every :data:`READY_POLL` seconds for up to ``timeout`` seconds (tenacity); raises
        :class:`HostsError` when the container stops, systemd is degraded, sudo fails, or time is up.
        """
        deadline = time.monotonic() + timeout
        last = {"ssh": ""}
        poll = Retrying(
            stop=stop_after_delay(timeout), wait=wait_fixed(READY_POLL),
            retry=retry_if_result(lambda state: state is None), retry_error_callback=lambda _: None,
        )
        state = poll(self._probe_ready, plan, key, deadline, last)
        if state is None:
            raise HostsError(f"{plan.name}: not ready after {timeout:.0f} s (ssh on 127.0.0.1:{plan.ssh_port}: {last['ssh']})")
        return state

    def _probe_ready(self, plan: HostPlan, key: Path, deadline: float, last: dict[str, str]) -> str | None:
        """One readiness probe: ``running``, or ``None`` while sshd/systemd do not answer yet."""
        try:
            c = self.client.containers.get(plan.container)
        except NotFound as exc:
            raise HostsError(f"{plan.name}: container disappeared") from exc
        if c.status in ("exited", "dead"):
            logs = c.logs(tail=30).decode(errors="replace")
            raise HostsError(f"{plan.name}: container {c.status} while booting; last log lines:\n{logs}")
        remote = "systemctl is-system-running --wait; sudo -n true && echo sudo-ok"
        try:
            proc = subprocess.run(ssh_command(key, plan.ssh_port, remote), capture_output=True,
                                  text=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None
        lines = proc.stdout.split()
        if not lines:
            last["ssh"] = proc.stderr.strip()
            return None
        state = lines[0]
        if state == "running" and "sudo-ok" in lines:
            return state
        if state == "running":
            raise HostsError(f"{plan.name}: systemd running but `sudo -n true` failed: {proc.stderr.strip()}")
        failed = subprocess.run(
            ssh_command(key, plan.ssh_port, "systemctl --failed --no-legend --plain"),
            capture_output=True, text=True, timeout=30).stdout.strip()
        raise HostsError(f"{plan.name}: systemd is {state!r}, not 'running'; failed units:\n{failed}")

    # ------------------------------------------------------------------ down / status
    def down(self) -> list[str]:
        names = []
        if self.paths.hosts_json.exists():
            try:
                names = [h.container for h in load_hosts(self.paths).hosts]
            except Exception:  # noqa: BLE001 - a broken state file must not block cleanup
                names = []
        removed = self.remove(names)
        for net in self.client.networks.list(filters={"label": f"{LABEL}={self.paths.label}"}):
            try:
                net.remove()
            except APIError as exc:
                self.console.print(f"[yellow]could not remove network {net.name}: {exc}[/]")
        self.paths.hosts_json.unlink(missing_ok=True)
        self.paths.ssh_config.unlink(missing_ok=True)
        self._check_baseline("after down")
        return removed

    def status_table(self, check: bool = False) -> Table:
        table = Table(title=f"orderops test hosts ({self.paths.root})")
        for col in ("host", "container", "ip", "ssh", "http", "https", "groups"):
            table.add_column(col)
        if check:
            table.add_column("systemd")
        state = load_hosts(self.paths) if self.paths.hosts_json.exists() else None
        by_name = {c.name: c for c in self._containers([])}
        rows = state.hosts if state else []
        for h in rows:
            c = by_name.pop(h.container, None)
            status = c.status if c else "[red]missing[/]"
            row = [h.name, f"{h.container} ({status})", h.ip, f"127.0.0.1:{h.ssh_port}",
                   f"127.0.0.1:{h.http_port}", f"127.0.0.1:{h.https_port}", ",".join(h.groups)]
            if check:
                row.append(self.probe(h.ssh_port) if c and c.status == "running" else "-")
            table.add_row(*row)
        for c in by_name.values():  # labelled containers not in hosts.json
            row = [c.name, f"{c.name} ({c.status}) [yellow]not in hosts.json[/]", "", "", "", "", ""]
            table.add_row(*(row + (["-"] if check else [])))
        return table

    def probe(self, port: int) -> str:
        try:
            proc = subprocess.run(ssh_command(self.paths.ssh_key, port, "systemctl is-system-running"),
                                  capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return "[red]timeout[/]"
        out = proc.stdout.strip() or f"[red]ssh failed: {proc.stderr.strip()[:60]}[/]"
        return f"[green]{out}[/]" if out == "running" else out
