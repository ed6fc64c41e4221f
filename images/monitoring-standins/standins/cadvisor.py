"""cAdvisor stand-in (contract of the official gcr.io/cadvisor/cadvisor 0.49 image; test images only).

    /usr/bin/cadvisor [-port=8080] [--docker=unix:///var/run/docker.sock] [--docker_only] [other flags ignored]

``GET /healthz`` -> ``ok``; ``GET /metrics``: per running Docker container (Docker Engine API
``/containers/json`` and ``/containers/<id>/stats?stream=false&one-shot=true``), with cAdvisor's names
and labels (``id="/docker/<id>"``, ``name``, ``image``, ``container_label_<label>``):
``container_cpu_usage_seconds_total{cpu="total"}``, ``container_memory_usage_bytes``,
``container_memory_working_set_bytes``, ``container_memory_rss``, ``container_spec_memory_limit_bytes``,
``container_network_{receive,transmit}_bytes_total{interface}``, ``container_start_time_seconds``,
``container_last_seen``; plus ``cadvisor_version_info``. A container restarted by its restart policy
keeps its id and gets a new ``container_start_time_seconds``, as with cAdvisor.
"""

from __future__ import annotations

import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from standins.common import DockerClient, Metrics, log, parse_go_flags, serve, wait_forever

VERSION = "v0.49.1-orderops-standin"


def _start_time(text: str) -> float:
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text or "")
    if not m:
        return 0.0
    base = datetime.strptime(m.group(1) + "+0000", "%Y-%m-%dT%H:%M:%S%z").timestamp()
    return base + float("0." + (m.group(2) or "0"))


class CadvisorApp:
    def __init__(self, client: DockerClient, housekeeping_s: float = 10.0):
        self.client = client
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.housekeeping_s = housekeeping_s
        self.cached: str | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Collect every ``housekeeping_s`` in the background; /metrics serves the last collection
        (as cAdvisor does: scrapes never wait for the Docker API)."""
        import threading

        def loop() -> None:
            while True:
                try:
                    self.cached, self.error = self.metrics(), None
                except (OSError, RuntimeError) as exc:
                    self.error = str(exc)
                    log("error", "failed to collect container metrics", err=str(exc))
                time.sleep(self.housekeeping_s)

        threading.Thread(target=loop, daemon=True).start()

    def _one(self, c: dict) -> tuple[dict, dict, dict]:
        stats = self.client.get_json(f"/containers/{c['Id']}/stats?stream=false&one-shot=true")
        inspect = self.client.get_json(f"/containers/{c['Id']}/json")
        return c, stats, inspect

    def metrics(self) -> str:
        m = Metrics()
        m.add("cadvisor_version_info", 1, {"cadvisorVersion": VERSION, "dockerVersion": "", "kernelVersion": ""},
              "cAdvisor version info")
        containers = self.client.get_json("/containers/json")
        now = time.time()
        for c, stats, inspect in self.pool.map(self._one, containers):
            labels = {"id": f"/docker/{c['Id']}", "name": (c.get("Names") or ["/"])[0].lstrip("/"), "image": c.get("Image", "")}
            for k, v in (c.get("Labels") or {}).items():
                labels["container_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
            cpu = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
            mem = stats.get("memory_stats") or {}
            mstats = mem.get("stats") or {}
            usage = mem.get("usage", 0)
            inactive = mstats.get("total_inactive_file", mstats.get("inactive_file", 0))
            m.add("container_cpu_usage_seconds_total", cpu.get("total_usage", 0) / 1e9, {**labels, "cpu": "total"},
                  "Cumulative cpu time consumed in seconds.", "counter")
            m.add("container_memory_usage_bytes", usage, labels, "Current memory usage in bytes, including all memory regardless of when it was accessed")
            m.add("container_memory_working_set_bytes", max(0, usage - inactive), labels, "Current working set in bytes.")
            m.add("container_memory_rss", mstats.get("total_rss", mstats.get("rss", mstats.get("anon", 0))), labels, "Size of RSS in bytes.")
            limit = (inspect.get("HostConfig") or {}).get("Memory") or 0
            m.add("container_spec_memory_limit_bytes", limit, labels, "Memory limit for the container.")
            for iface, net in (stats.get("networks") or {}).items():
                m.add("container_network_receive_bytes_total", net.get("rx_bytes", 0), {**labels, "interface": iface},
                      "Cumulative count of bytes received", "counter")
                m.add("container_network_transmit_bytes_total", net.get("tx_bytes", 0), {**labels, "interface": iface},
                      "Cumulative count of bytes transmitted", "counter")
            m.add("container_start_time_seconds", _start_time((inspect.get("State") or {}).get("StartedAt", "")), labels,
                  "Start time of the container since unix epoch in seconds.")
            m.add("container_last_seen", now, labels, "Last time a container was seen by the exporter")
        return m.text()

    def handle(self, method, path, query, headers, body):
        if path == "/healthz":
            return 200, {"Content-Type": "text/plain"}, "ok"
        if path == "/metrics":
            if self.cached is None:
                return 500, {}, f"no collection yet: {self.error or 'starting'}\n"
            return 200, {"Content-Type": "text/plain; version=0.0.4"}, self.cached
        return 404, {}, "404 page not found\n"


def main(argv: list[str] | None = None) -> int:
    flags, _ = parse_go_flags(sys.argv[1:] if argv is None else argv,
                              {"port": "8080", "listen_ip": "", "docker": "unix:///var/run/docker.sock",
                               "docker_only": False, "version": False, "housekeeping_interval": "10s"})
    if flags["version"]:
        print(f"cAdvisor version {VERSION}")
        return 0
    try:
        client = DockerClient(str(flags["docker"]))
    except ValueError as exc:
        log("error", "bad --docker", err=str(exc))
        return 1
    text = str(flags["housekeeping_interval"])
    seconds = float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s")) * (60 if text.endswith("m") else 1)
    app = CadvisorApp(client, seconds)
    app.start()
    serve(app, str(flags["listen_ip"]) or "0.0.0.0", int(flags["port"]))
    log("info", "Starting cAdvisor", version=VERSION, port=flags["port"])
    wait_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
