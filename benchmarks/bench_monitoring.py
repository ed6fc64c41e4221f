"""Monitoring stack at rest: CPU over a window and memory per container, beside the order stack's.

    .venv/bin/python benchmarks/bench_monitoring.py [--seconds 300]    # after a deploy to the local test host

Reads, through the monitoring host's Docker API (``GET /containers/<id>/stats?stream=false`` over
SSH, the Engine API's ``ContainerStats`` shape), each container's cumulative CPU time
(``cpu_stats.cpu_usage.total_usage``, ns) at the start and the end of the window and its memory
(``memory_stats.usage`` minus page cache: ``stats.inactive_file`` on cgroup v2, ``total_inactive_file``
on v1, as ``docker stats`` computes it). Reports CPU as % of one core averaged over the window,
per container, for the monitoring project and, side by side, the order stack at rest, plus the
machine's load average at start and end (a shared machine inflates both stacks alike).

The issue's goal is at most 5 % of one core for the monitoring stack; it is printed next to the
figure, never gated. Uses the first host of group ``monitoring`` of ``inventories/local.py``
(``--inventory`` for another).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from deploys.contract.compose import PROJECT_LABEL, SERVICE_LABEL  # noqa: E402
from inventories.loader import load_hosts  # noqa: E402
from inventories.schema import build_settings  # noqa: E402

GOAL_PERCENT = 5.0


def _ssh(data: dict, command: str) -> str:
    proc = subprocess.run(
        ["ssh", "-q", "-i", str(data["ssh_key"]), "-p", str(data["ssh_port"]), "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}",
         f"{data['ssh_user']}@{data['ssh_hostname']}", command],
        capture_output=True, text=True, timeout=300, check=True)
    return proc.stdout


def snapshot(data: dict, projects: list[str]) -> dict[tuple[str, str], dict]:
    """``{(project, service): {"t": host seconds, "cpu_ns": int, "mem_bytes": int}}`` of the projects'
    running containers, read in one SSH call (each container with the host's clock at its read)."""
    script = (
        f"for p in {' '.join(shlex.quote(p) for p in projects)}; do "
        f"for id in $(docker ps -q --filter label={PROJECT_LABEL}=$p); do "
        "printf '%s %s %s ' \"$p\" \"$(docker inspect -f '{{json .Config.Labels}}' $id | tr -d ' ')\" \"$(date +%s.%N)\"; "
        "curl -s --unix-socket /var/run/docker.sock 'http://localhost/containers/'$id'/stats?stream=false&one-shot=true'; "
        "echo; done; done"
    )
    out = {}
    for line in _ssh(data, f"sudo sh -c {shlex.quote(script)}").splitlines():
        if not line.strip():
            continue
        project, labels, stamp, raw = line.split(" ", 3)
        service = json.loads(labels).get(SERVICE_LABEL, "?")
        stats = json.loads(raw)
        mem = stats["memory_stats"]
        cache = mem.get("stats", {}).get("inactive_file", mem.get("stats", {}).get("total_inactive_file", 0))
        out[(project, service)] = {"t": float(stamp), "cpu_ns": int(stats["cpu_stats"]["cpu_usage"]["total_usage"]),
                                   "mem_bytes": int(mem.get("usage", 0)) - int(cache)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "300")))
    parser.add_argument("--inventory", default="inventories/local.py")
    args = parser.parse_args(argv)

    hosts = load_hosts(REPO_ROOT / args.inventory, cwd=REPO_ROOT)
    mon = next((h for h in hosts if "monitoring" in h.groups), None)
    if mon is None:
        print("no host in group 'monitoring'", file=sys.stderr)
        return 2
    data = dict(mon.data)
    settings = build_settings(mon.name, data, mon.groups)
    projects = [settings.monitoring.compose_project, settings.compose_project]

    load_start = os.getloadavg()
    t0 = time.monotonic()
    before = snapshot(data, projects)
    time.sleep(max(0, args.seconds - (time.monotonic() - t0)))
    after = snapshot(data, projects)
    elapsed = time.monotonic() - t0
    load_end = os.getloadavg()

    print(f"window {elapsed:.0f} s on {mon.name}; machine load average (1/5/15 min) "
          f"start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
          f"end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}, {os.cpu_count()} CPUs")
    print(f"{'project':<22} {'service':<20} {'CPU % of one core':>18} {'memory MiB':>11}")
    totals: dict[str, list[float]] = {}
    for key in sorted(after):
        if key not in before:
            continue
        window = after[key]["t"] - before[key]["t"]  # this container's own interval (host clock)
        cpu = (after[key]["cpu_ns"] - before[key]["cpu_ns"]) / 1e9 / window * 100
        mem = after[key]["mem_bytes"] / 2**20
        totals.setdefault(key[0], [0.0, 0.0])
        totals[key[0]][0] += cpu
        totals[key[0]][1] += mem
        print(f"{key[0]:<22} {key[1]:<20} {cpu:>18.2f} {mem:>11.1f}")
    for project, (cpu, mem) in totals.items():
        goal = f"  (goal for monitoring: <= {GOAL_PERCENT:g} %)" if project == projects[0] else ""
        print(f"{project:<22} {'TOTAL':<20} {cpu:>18.2f} {mem:>11.1f}{goal}")
    if len(totals) == 2 and totals[projects[1]][0] > 0:
        print(f"monitoring / order stack CPU at rest: {totals[projects[0]][0] / totals[projects[1]][0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
