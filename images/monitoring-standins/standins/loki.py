"""Loki stand-in (contract of the official grafana/loki 3.x image; test images only).

    /usr/bin/loki -config.file=/etc/loki/local-config.yaml [-config.expand-env=true]
                  [-verify-config] [-print-config-stderr] [-version] [other -flags are ignored]

Configuration is YAML, checked strictly like Loki: an unknown top-level key, an unknown key under
``server``/``compactor``/``limits_config``/``common``, a bad duration, a ``schema_config`` entry
without ``from``/``store``/``object_store``/``schema``, or ``compactor.retention_enabled`` without
``compactor.delete_request_store`` exit 1 with ``level=error msg="validating config" err=...``.

HTTP (``server.http_listen_port``, default 3100): ``GET /ready``, ``GET /metrics``,
``GET /loki/api/v1/status/buildinfo``, ``POST /loki/api/v1/push`` (JSON, optionally gzip; 204),
``GET /loki/api/v1/query_range`` and ``/query`` (stream selector ``=``, ``!=``, ``=~``, ``!~`` and line
filters ``|=``, ``!=``, ``|~``, ``!~``), ``GET /loki/api/v1/labels``, ``/loki/api/v1/label/<name>/values``.

Entries live in memory and in ``<common.path_prefix or /loki>/standin-entries.jsonl``; with
``compactor.retention_enabled`` the compactor drops entries older than
``limits_config.retention_period`` every ``compactor.compaction_interval`` (``retention_deletes_total``
in /metrics counts them).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from standins.common import expand_env, log, parse_go_flags, serve, wait_forever, Metrics

VERSION = "3.4.2-orderops-standin"

TOP_LEVEL = {
    "target", "auth_enabled", "ballast_bytes", "server", "internal_server", "distributor", "querier",
    "query_scheduler", "frontend", "query_range", "ruler", "ingester_client", "ingester", "pattern_ingester",
    "index_gateway", "bloom_build", "bloom_gateway", "storage_config", "chunk_store_config", "schema_config",
    "compactor", "limits_config", "frontend_worker", "table_manager", "memberlist", "runtime_config",
    "operational_config", "tracing", "analytics", "common", "shutdown_delay", "metrics_namespace",
    "kafka_config", "ui",
}
SECTIONS = {
    "server": {"http_listen_address", "http_listen_port", "grpc_listen_address", "grpc_listen_port", "log_level",
               "log_format", "http_server_read_timeout", "http_server_write_timeout", "http_server_idle_timeout",
               "grpc_server_max_recv_msg_size", "grpc_server_max_send_msg_size", "register_instrumentation",
               "http_path_prefix"},
    "compactor": {"working_directory", "compaction_interval", "retention_enabled", "retention_delete_delay",
                  "retention_delete_worker_count", "delete_request_store", "delete_request_cancel_period",
                  "apply_retention_interval", "max_compaction_parallelism"},
    "limits_config": {"retention_period", "reject_old_samples", "reject_old_samples_max_age", "ingestion_rate_mb",
                      "ingestion_burst_size_mb", "max_query_lookback", "allow_structured_metadata",
                      "volume_enabled", "max_streams_per_user", "max_global_streams_per_user",
                      "max_line_size", "max_entries_limit_per_query", "split_queries_by_interval",
                      "retention_stream", "max_query_series"},
    "common": {"path_prefix", "storage", "replication_factor", "ring", "instance_addr", "compactor_address"},
}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d|w|y))+$")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class ConfigError(ValueError):
    pass


def parse_duration(value: Any, field: str) -> float:
    """Prometheus/Loki duration (``1h30m``, ``31d``, ``0s``) -> seconds. Raises :class:`ConfigError`."""
    text = str(value)
    if not _DURATION.match(text):
        raise ConfigError(f"{field}: not a valid duration string: {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)", text))


def check_config(cfg: Any) -> dict:
    """Validate a parsed Loki config; returns it. Raises :class:`ConfigError` naming the field."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError("config must be a YAML mapping")
    for key in cfg:
        if key not in TOP_LEVEL:
            raise ConfigError(f"field {key} not found in type loki.ConfigWrapper")
    for section, keys in SECTIONS.items():
        value = cfg.get(section) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: must be a mapping")
        for key in value:
            if key not in keys:
                raise ConfigError(f"field {key} not found in type {section}")
    server = cfg.get("server") or {}
    port = server.get("http_listen_port", 3100)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"server.http_listen_port: invalid port {port!r}")
    schema = (cfg.get("schema_config") or {}).get("configs") or []
    if not schema:
        raise ConfigError("schema_config.configs: at least one period config is required")
    for i, period in enumerate(schema):
        for key in ("from", "store", "object_store", "schema"):
            if key not in (period or {}):
                raise ConfigError(f"schema_config.configs[{i}].{key}: required")
        if period["schema"] == "v13" and period["store"] != "tsdb":
            raise ConfigError(f"schema_config.configs[{i}]: schema v13 requires the tsdb store")
    compactor = cfg.get("compactor") or {}
    limits = cfg.get("limits_config") or {}
    for field, section in (("compaction_interval", compactor), ("retention_delete_delay", compactor),
                           ("retention_period", limits), ("reject_old_samples_max_age", limits)):
        if field in section:
            parse_duration(section[field], field)
    if compactor.get("retention_enabled") and not compactor.get("delete_request_store"):
        raise ConfigError("compactor.delete-request-store should be configured when retention is enabled")
    return cfg


def load_config(path: str, expand: bool) -> dict:
    """Read, expand (``-config.expand-env``) and validate; raises :class:`ConfigError`/``OSError``."""
    text = Path(path).read_text()
    if expand:
        text = expand_env(text)
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"parsing config: {exc}") from None
    return check_config(cfg)


_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_FILTER = re.compile(r'\s*(\|=|!=|\|~|!~)\s*"((?:[^"\\]|\\.)*)"')


def parse_query(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """``{a="b", c=~"x.*"} |= "y"`` -> (matchers, line filters). Raises ``ValueError`` on bad syntax."""
    query = query.strip()
    if not query.startswith("{") or "}" not in query:
        raise ValueError(f"parse error: queries must start with a stream selector: {query!r}")
    inner, rest = query[1:].split("}", 1)
    matchers = []
    pos = 0
    while pos < len(inner.strip()) and inner[pos:].strip():
        m = _MATCHER.match(inner, pos)
        if not m:
            raise ValueError(f"parse error in stream selector at {inner[pos:]!r}")
        matchers.append((m.group(1), m.group(2), json.loads(f'"{m.group(3)}"')))
        pos = m.end()
    if not matchers:
        raise ValueError("parse error: queries require at least one matcher")
    filters = []
    pos = 0
    while rest[pos:].strip():
        m = _FILTER.match(rest, pos)
        if not m:
            raise ValueError(f"parse error: unsupported expression {rest[pos:]!r} (stand-in supports line filters only)")
        filters.append((m.group(1), json.loads(f'"{m.group(2)}"')))
        pos = m.end()
    return matchers, filters


def _matches(labels: dict[str, str], matchers) -> bool:
    for name, op, value in matchers:
        actual = labels.get(name, "")
        if op == "=" and actual != value or op == "!=" and actual == value:
            return False
        if op == "=~" and not re.fullmatch(value, actual) or op == "!~" and re.fullmatch(value, actual):
            return False
    return True


def _line_ok(line: str, filters) -> bool:
    for op, value in filters:
        if op == "|=" and value not in line or op == "!=" and value in line:
            return False
        if op == "|~" and not re.search(value, line) or op == "!~" and re.search(value, line):
            return False
    return True


class Store:
    """Entries ``(ns, labels_key, line)`` in memory, appended to a JSON-lines file."""

    def __init__(self, directory: Path):
        self.lock = threading.Lock()
        self.streams: dict[str, list[tuple[int, str]]] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.directory = directory
        self.file = directory / "standin-entries.jsonl"
        self.deleted = 0
        self.received = 0
        directory.mkdir(parents=True, exist_ok=True)
        if self.file.exists():
            for raw in self.file.read_text().splitlines():
                try:
                    rec = json.loads(raw)
                    self._add(rec["l"], int(rec["t"]), rec["v"])
                except (ValueError, KeyError):
                    continue

    def _add(self, labels: dict[str, str], ns: int, line: str) -> None:
        key = json.dumps(labels, sort_keys=True)
        self.labels[key] = labels
        self.streams.setdefault(key, []).append((ns, line))

    def push(self, streams: list[dict]) -> None:
        with self.lock, open(self.file, "a") as fh:
            for stream in streams:
                labels = {str(k): str(v) for k, v in (stream.get("stream") or {}).items()}
                for ns, line, *_ in stream.get("values") or []:
                    self._add(labels, int(ns), str(line))
                    fh.write(json.dumps({"l": labels, "t": int(ns), "v": str(line)}) + "\n")
                    self.received += 1

    def query(self, matchers, filters, start: int, end: int, limit: int, forward: bool) -> list[dict]:
        result = []
        with self.lock:
            for key, entries in self.streams.items():
                labels = self.labels[key]
                if not _matches(labels, matchers):
                    continue
                values = [(ns, line) for ns, line in entries if start <= ns <= end and _line_ok(line, filters)]
                if values:
                    result.append((labels, values))
        merged = sorted(((ns, line, labels) for labels, values in result for ns, line in values),
                        key=lambda e: e[0], reverse=not forward)[:limit]
        out: dict[str, dict] = {}
        for ns, line, labels in merged:
            key = json.dumps(labels, sort_keys=True)
            out.setdefault(key, {"stream": labels, "values": []})["values"].append([str(ns), line])
        return list(out.values())

    def compact(self, retention_s: float, now: float | None = None) -> int:
        """Drop entries older than ``retention_s``; returns how many were deleted."""
        cutoff = int(((now or time.time()) - retention_s) * 1e9)
        removed = 0
        with self.lock:
            for key in list(self.streams):
                kept = [e for e in self.streams[key] if e[0] >= cutoff]
                removed += len(self.streams[key]) - len(kept)
                if kept:
                    self.streams[key] = kept
                else:
                    del self.streams[key]
                    del self.labels[key]
            if removed:
                tmp = self.file.with_suffix(".tmp")
                with open(tmp, "w") as fh:
                    for key, entries in self.streams.items():
                        for ns, line in entries:
                            fh.write(json.dumps({"l": self.labels[key], "t": ns, "v": line}) + "\n")
                os.replace(tmp, self.file)
            self.deleted += removed
        return removed


class LokiApp:
    def __init__(self, cfg: dict, store: Store):
        self.cfg = cfg
        self.store = store
        self.started = time.time()

    def handle(self, method, path, query, headers, body):
        q = {k: v[-1] for k, v in query.items()}
        if path == "/ready":
            return 200, {"Content-Type": "text/plain"}, "ready\n"
        if path == "/metrics":
            m = Metrics()
            m.add("loki_build_info", 1, {"version": VERSION})
            m.add("loki_distributor_lines_received_total", self.store.received, {}, kind="counter")
            m.add("loki_compactor_retention_deletes_total", self.store.deleted, {}, "entries deleted by retention", "counter")
            m.add("loki_ingester_memory_streams", len(self.store.streams))
            return 200, {"Content-Type": "text/plain; version=0.0.4"}, m.text()
        if path == "/loki/api/v1/status/buildinfo":
            return 200, {}, {"version": VERSION, "revision": "standin", "branch": "standin"}
        if path == "/loki/api/v1/push" and method == "POST":
            ctype = headers.get("Content-Type", "")
            if "json" not in ctype:
                return 415, {}, "the stand-in accepts application/json pushes only\n"
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                data = json.loads(body)
                streams = data["streams"]
                for s in streams:
                    if not s.get("stream"):
                        return 400, {}, "error at least one label pair is required per stream\n"
                self.store.push(streams)
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {}, f"error parsing push request: {exc}\n"
            return 204, {}, b""
        if path in ("/loki/api/v1/query_range", "/loki/api/v1/query"):
            try:
                matchers, filters = parse_query(q.get("query", ""))
            except ValueError as exc:
                return 400, {}, f"{exc}\n"
            now = time.time_ns()
            end = int(q.get("end", now))
            start = int(q.get("start", end - 3600 * 10**9)) if path.endswith("range") else 0
            limit = int(q.get("limit", 100))
            result = self.store.query(matchers, filters, start, end, limit, q.get("direction", "backward") == "forward")
            return 200, {}, {"status": "success", "data": {"resultType": "streams", "result": result,
                                                            "stats": {}}}
        if path == "/loki/api/v1/labels":
            names = sorted({k for labels in self.store.labels.values() for k in labels})
            return 200, {}, {"status": "success", "data": names}
        m = re.fullmatch(r"/loki/api/v1/label/([^/]+)/values", path)
        if m:
            values = sorted({labels[m.group(1)] for labels in self.store.labels.values() if m.group(1) in labels})
            return 200, {}, {"status": "success", "data": values}
        return 404, {}, "404 page not found\n"


def main(argv: list[str] | None = None) -> int:
    flags, _ = parse_go_flags(sys.argv[1:] if argv is None else argv, {
        "config.file": "/etc/loki/local-config.yaml", "config.expand-env": False, "verify-config": False,
        "print-config-stderr": False, "version": False,
    })
    if flags["version"]:
        print(f"loki, version {VERSION}")
        return 0
    try:
        cfg = load_config(flags["config.file"], bool(flags["config.expand-env"]))
    except (ConfigError, OSError) as exc:
        log("error", "validating config", err=str(exc))
        return 1
    if flags["print-config-stderr"]:
        print(yaml.safe_dump(cfg), file=sys.stderr)
    if flags["verify-config"]:
        log("info", "config is valid")
        return 0
    server = cfg.get("server") or {}
    prefix = Path((cfg.get("common") or {}).get("path_prefix") or "/loki")
    store = Store(prefix)
    compactor = cfg.get("compactor") or {}
    if compactor.get("retention_enabled"):
        retention = parse_duration((cfg.get("limits_config") or {}).get("retention_period", "0s"), "retention_period")
        interval = parse_duration(compactor.get("compaction_interval", "10m"), "compaction_interval")

        def compact_loop() -> None:
            while True:
                time.sleep(interval)
                if retention > 0:
                    removed = store.compact(retention)
                    if removed:
                        log("info", "retention applied", deleted=removed)

        threading.Thread(target=compact_loop, daemon=True).start()
    port = int(server.get("http_listen_port", 3100))
    serve(LokiApp(cfg, store), server.get("http_listen_address", "0.0.0.0") or "0.0.0.0", port)
    log("info", "Loki started", version=VERSION, port=port)
    wait_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
