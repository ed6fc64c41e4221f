"""Grafana Alloy stand-in (contract of the official grafana/alloy 1.x image; test images only).

    /bin/alloy run [--server.http.listen-addr=127.0.0.1:12345] [--storage.path=/var/lib/alloy/data] <file>
    /bin/alloy validate <file>
    /bin/alloy --version

Only the components the orderops configuration uses exist; any other component (or an unknown
argument or block of these) is an error, as an unknown component is for real Alloy::

    discovery.docker "<l>"   { host, refresh_interval }                                  exports targets
    discovery.relabel "<l>"  { targets, rule { source_labels, separator, regex, target_label,
                                               replacement, action } }                    exports output, rules
    loki.source.docker "<l>" { host, targets, forward_to, labels, relabel_rules, refresh_interval }
    loki.write "<l>"         { endpoint { url, batch_wait }, external_labels }            exports receiver

Functions: ``sys.env("NAME")`` (and the older ``env("NAME")``), ``constants.hostname``.
``loki.source.docker`` tails every discovered container's logs through the Docker API
(``/containers/<id>/logs?follow=1&timestamps=1``), applies ``relabel_rules``, drops ``__``-labels,
adds ``labels`` and forwards to ``loki.write``, which pushes JSON to Loki's push API (real Alloy
sends protobuf). Read positions are kept in ``<storage.path>/positions.json``.
HTTP: ``/-/ready``, ``/-/healthy``, ``/metrics``, ``POST /-/reload``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import struct
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from standins.alloy_syntax import Block, Call, Ref, SyntaxError_, parse
from standins.common import DockerClient, Metrics, log, parse_go_flags, serve, wait_forever

VERSION = "v1.7.5-orderops-standin"


class ConfigError(ValueError):
    pass


# component -> (arguments: {name: required}, blocks: {name: {arg: required}}, exports)
COMPONENTS: dict[str, tuple[dict[str, bool], dict[str, dict[str, bool]], set[str]]] = {
    "discovery.docker": ({"host": True, "refresh_interval": False, "port": False}, {}, {"targets"}),
    "discovery.relabel": ({"targets": True},
                          {"rule": {"source_labels": False, "separator": False, "regex": False, "modulus": False,
                                    "target_label": False, "replacement": False, "action": False}},
                          {"output", "rules"}),
    "loki.source.docker": ({"host": True, "targets": True, "forward_to": True, "labels": False,
                            "relabel_rules": False, "refresh_interval": False}, {}, set()),
    "loki.write": ({"external_labels": False}, {"endpoint": {"url": True, "batch_wait": False, "name": False}},
                   {"receiver"}),
}
ACTIONS = {"replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep"}


def _duration(text: Any, where: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text))
    if not m:
        raise ConfigError(f"{where}: invalid duration {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _rule(attrs: dict) -> dict:
    rule = {"source_labels": attrs.get("source_labels", []), "separator": attrs.get("separator", ";"),
            "regex": attrs.get("regex", "(.*)"), "target_label": attrs.get("target_label", ""),
            "replacement": attrs.get("replacement", "$1"), "action": attrs.get("action", "replace")}
    if rule["action"] not in ACTIONS:
        raise ConfigError(f"unknown relabel action {rule['action']!r}")
    if rule["action"] == "replace" and not rule["target_label"]:
        raise ConfigError("relabel rule: target_label is required for action replace")
    try:
        re.compile(rule["regex"])
    except re.error as exc:
        raise ConfigError(f"relabel rule: invalid regex {rule['regex']!r}: {exc}") from None
    return rule


def relabel(labels: dict[str, str], rules: list[dict]) -> dict[str, str] | None:
    """Prometheus relabelling of one label set; ``None`` when a keep/drop rule drops it."""
    labels = dict(labels)
    for r in rules:
        pattern = re.compile(f"^(?:{r['regex']})$")
        value = r["separator"].join(labels.get(s, "") for s in r["source_labels"])
        action = r["action"]
        if action == "keep" and not pattern.match(value) or action == "drop" and pattern.match(value):
            return None
        if action == "replace":
            m = pattern.match(value)
            if m:
                new = m.expand(re.sub(r"\$(\d+)|\$\{(\d+)\}", lambda g: "\\" + (g.group(1) or g.group(2)), r["replacement"]))
                target = m.expand(re.sub(r"\$(\d+)", lambda g: "\\" + g.group(1), r["target_label"]))
                if new:
                    labels[target] = new
                else:
                    labels.pop(target, None)
        elif action == "labelmap":
            for name in list(labels):
                m = pattern.match(name)
                if m:
                    labels[m.expand(re.sub(r"\$(\d+)", lambda g: "\\" + g.group(1), r["replacement"]))] = labels[name]
        elif action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not pattern.match(k)}
        elif action == "labelkeep":
            labels = {k: v for k, v in labels.items() if pattern.match(k)}
    return labels


class Component:
    def __init__(self, kind: str, label: str, args: dict, blocks: dict[str, list[dict]], graph: Graph):
        self.kind, self.label, self.args, self.blocks, self.graph = kind, label, args, blocks, graph

    def export(self, name: str) -> Any:
        raise ConfigError(f"{self.kind}.{self.label} does not export {name!r}")


class DiscoveryDocker(Component):
    def __init__(self, *a):
        super().__init__(*a)
        self.client = DockerClient(self.args["host"])

    def export(self, name):
        return Targets(self.discover)

    def discover(self) -> list[dict[str, str]]:
        out = []
        for c in self.client.get_json("/containers/json"):
            base = {"__meta_docker_container_id": c["Id"], "__meta_docker_container_name": (c.get("Names") or ["/"])[0],
                    "__meta_docker_container_network_mode": (c.get("HostConfig") or {}).get("NetworkMode", "")}
            for k, v in (c.get("Labels") or {}).items():
                base["__meta_docker_container_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
            nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
            for net, info in nets.items() or [("", {})]:
                labels = dict(base, __meta_docker_network_name=net, __meta_docker_network_ip=info.get("IPAddress", ""))
                labels["__address__"] = f"{info.get('IPAddress', '')}:{self.args.get('port', 80)}"
                out.append(labels)
                break  # one target per container is enough for log tailing
            if not nets:
                out.append(dict(base, __address__=""))
        return out


class Targets:
    """A lazily evaluated list of targets (discovery results change over time)."""

    def __init__(self, fn):
        self.fn = fn

    def get(self) -> list[dict[str, str]]:
        return self.fn()


class DiscoveryRelabel(Component):
    def __init__(self, *a):
        super().__init__(*a)
        self.rules = [_rule(r) for r in self.blocks.get("rule", [])]

    def export(self, name):
        if name == "rules":
            return self.rules
        if name == "output":
            source = self.args["targets"]
            return Targets(lambda: [t for t in (relabel(x, self.rules) for x in _targets(source)) if t is not None])
        return super().export(name)


def _targets(value: Any) -> list[dict[str, str]]:
    if isinstance(value, Targets):
        return value.get()
    if isinstance(value, list):
        return [dict(v) for v in value]
    raise ConfigError(f"targets: expected a list of targets, got {type(value).__name__}")


class LokiWrite(Component):
    def __init__(self, *a):
        super().__init__(*a)
        if not self.blocks.get("endpoint"):
            raise ConfigError(f"loki.write.{self.label}: at least one endpoint block is required")
        self.endpoints = [e["url"] for e in self.blocks["endpoint"]]
        self.wait = min(_duration(e.get("batch_wait", "1s"), "batch_wait") for e in self.blocks["endpoint"])
        self.external = {str(k): str(v) for k, v in (self.args.get("external_labels") or {}).items()}
        self.queue: queue.Queue = queue.Queue()
        self.sent = 0
        self.failed = 0

    def export(self, name):
        if name == "receiver":
            return self
        return super().export(name)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True).start()

    def send(self, labels: dict[str, str], ns: int, line: str) -> None:
        self.queue.put(({**labels, **self.external}, ns, line))

    def _loop(self) -> None:
        pending: list = []
        while True:
            deadline = time.monotonic() + self.wait
            while time.monotonic() < deadline:
                try:
                    pending.append(self.queue.get(timeout=max(0.01, deadline - time.monotonic())))
                except queue.Empty:
                    pass
            if not pending:
                continue
            streams: dict[str, dict] = {}
            for labels, ns, line in pending:
                key = json.dumps(labels, sort_keys=True)
                streams.setdefault(key, {"stream": labels, "values": []})["values"].append([str(ns), line])
            body = json.dumps({"streams": list(streams.values())}).encode()
            ok = True
            for url in self.endpoints:
                try:
                    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
                    urllib.request.urlopen(req, timeout=10).read()
                except OSError as exc:
                    ok = False
                    log("warn", "error sending batch, will retry", component=f"loki.write.{self.label}", err=str(exc))
            if ok:
                self.sent += len(pending)
                pending = []
            else:
                self.failed += 1
                time.sleep(1)


class LokiSourceDocker(Component):
    def __init__(self, *a):
        super().__init__(*a)
        self.client = DockerClient(self.args["host"])
        self.receivers = self.args["forward_to"]
        if not isinstance(self.receivers, list) or not all(isinstance(r, LokiWrite) for r in self.receivers):
            raise ConfigError(f"loki.source.docker.{self.label}: forward_to must be a list of loki receivers")
        self.rules = self.args.get("relabel_rules") or []
        self.labels = {str(k): str(v) for k, v in (self.args.get("labels") or {}).items()}
        self.refresh = _duration(self.args.get("refresh_interval", "60s"), "refresh_interval")
        self.tailing: dict[str, threading.Thread] = {}
        self.lines = 0
        self.positions_lock = threading.Lock()

    def start(self, storage: Path) -> None:
        self.positions_file = storage / "positions.json"
        try:
            self.positions = json.loads(self.positions_file.read_text())
        except (OSError, ValueError):
            self.positions = {}
        threading.Thread(target=self._discover_loop, daemon=True).start()

    def _save_position(self, cid: str, ns: int) -> None:
        with self.positions_lock:
            self.positions[cid] = ns
            tmp = self.positions_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.positions))
            os.replace(tmp, self.positions_file)

    def _discover_loop(self) -> None:
        while True:
            try:
                for target in _targets(self.args["targets"]):
                    cid = target.get("__meta_docker_container_id")
                    if not cid or (cid in self.tailing and self.tailing[cid].is_alive()):
                        continue
                    labels = relabel(target, self.rules) if self.rules else dict(target)
                    if labels is None:
                        continue
                    final = {k: v for k, v in labels.items() if not k.startswith("__")}
                    final.update(self.labels)
                    thread = threading.Thread(target=self._tail, args=(cid, final), daemon=True)
                    self.tailing[cid] = thread
                    thread.start()
            except (OSError, RuntimeError, ConfigError) as exc:
                log("warn", "docker discovery failed", component=f"loki.source.docker.{self.label}", err=str(exc))
            time.sleep(self.refresh)

    def _tail(self, cid: str, labels: dict[str, str]) -> None:
        try:
            tty = bool(self.client.get_json(f"/containers/{cid}/json")["Config"].get("Tty"))
            since = self.positions.get(cid, 0) / 1e9
            resp = self.client.stream(f"/containers/{cid}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since={since:.9f}")
            buf = b""
            while True:
                if tty:
                    chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
                    if not chunk:
                        return
                    buf += chunk
                else:
                    header = resp.read(8)
                    if len(header) < 8:
                        return
                    _, size = struct.unpack(">BxxxL", header)
                    buf += resp.read(size)
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    self._emit(cid, labels, raw.decode("utf-8", "replace"))
        except (OSError, RuntimeError, KeyError, socket.timeout) as exc:
            log("warn", "tailing stopped", container=cid[:12], err=str(exc))

    def _emit(self, cid: str, labels: dict[str, str], raw: str) -> None:
        stamp, _, line = raw.partition(" ")
        ns = _rfc3339_ns(stamp) or time.time_ns()
        if ns <= self.positions.get(cid, 0):
            return
        for receiver in self.receivers:
            receiver.send(labels, ns, line)
        self.lines += 1
        self._save_position(cid, ns)


def _rfc3339_ns(stamp: str) -> int | None:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", stamp)
    if not m:
        return None
    seconds = int(datetime.strptime(m.group(1) + "+0000", "%Y-%m-%dT%H:%M:%S%z").timestamp())
    return seconds * 10**9 + int((m.group(2) or "0").ljust(9, "0"))


CLASSES = {"discovery.docker": DiscoveryDocker, "discovery.relabel": DiscoveryRelabel,
           "loki.source.docker": LokiSourceDocker, "loki.write": LokiWrite}


class Graph:
    """The loaded configuration: components by ``kind.label``, evaluated in dependency order."""

    def __init__(self, blocks: list[Block]):
        self.blocks: dict[str, Block] = {}
        self.components: dict[str, Component] = {}
        for block in blocks:
            if block.name not in COMPONENTS:
                raise ConfigError(f"{block.line}: unrecognized block name {block.name!r} (the stand-in implements "
                                  + ", ".join(sorted(COMPONENTS)) + ")")
            if block.label is None:
                raise ConfigError(f"{block.line}: component {block.name!r} must have a label")
            key = f"{block.name}.{block.label}"
            if key in self.blocks:
                raise ConfigError(f"{block.line}: block {key} already declared")
            self.blocks[key] = block
        self._resolving: set[str] = set()
        for key in self.blocks:
            self.component(key)

    def component(self, key: str) -> Component:
        if key in self.components:
            return self.components[key]
        if key in self._resolving:
            raise ConfigError(f"cycle detected involving {key}")
        self._resolving.add(key)
        block = self.blocks[key]
        args_spec, blocks_spec, _ = COMPONENTS[block.name]
        args = {}
        for attr in block.attributes:
            if attr.name not in args_spec:
                raise ConfigError(f"{attr.line}: unrecognized attribute name {attr.name!r} in {key}")
            args[attr.name] = self.evaluate(attr.value)
        for name, required in args_spec.items():
            if required and name not in args:
                raise ConfigError(f"{block.line}: missing required attribute {name!r} in {key}")
        blocks: dict[str, list[dict]] = {}
        for sub in block.blocks:
            if sub.name not in blocks_spec:
                raise ConfigError(f"{sub.line}: unrecognized block name {sub.name!r} in {key}")
            values = {}
            for attr in sub.attributes:
                if attr.name not in blocks_spec[sub.name]:
                    raise ConfigError(f"{attr.line}: unrecognized attribute name {attr.name!r} in {key} {sub.name}")
                values[attr.name] = self.evaluate(attr.value)
            for name, required in blocks_spec[sub.name].items():
                if required and name not in values:
                    raise ConfigError(f"{sub.line}: missing required attribute {name!r} in {key} {sub.name}")
            blocks.setdefault(sub.name, []).append(values)
        try:
            comp = CLASSES[block.name](block.name, block.label, args, blocks, self)
        except ConfigError as exc:
            raise ConfigError(f"{block.line}: {key}: {exc}") from None
        self.components[key] = comp
        self._resolving.discard(key)
        return comp

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        if isinstance(value, dict):
            return {k: self.evaluate(v) for k, v in value.items()}
        if isinstance(value, Call):
            if value.func in (("sys", "env"), ("env",)) and len(value.args) == 1:
                return os.environ.get(str(self.evaluate(value.args[0])), "")
            raise ConfigError(f"{value.line}: unknown function {'.'.join(value.func)!r}")
        if isinstance(value, Ref):
            if value.path == ("constants", "hostname"):
                return socket.gethostname()
            for n in (2, 3):
                key = ".".join(value.path[:n])
                if key in self.blocks and len(value.path) == n + 1:
                    exports = COMPONENTS[self.blocks[key].name][2]
                    if value.path[n] not in exports:
                        raise ConfigError(f"{value.line}: {key} has no export {value.path[n]!r}")
                    return self.component(key).export(value.path[n])
            raise ConfigError(f"{value.line}: component {'.'.join(value.path)!r} does not exist or is out of scope")
        return value


def load(path: str) -> Graph:
    """Parse and check a configuration file; raises :class:`ConfigError` (syntax errors included)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"reading config file {path}: {exc.strerror}") from None
    try:
        return Graph(parse(text))
    except SyntaxError_ as exc:
        raise ConfigError(f"{path}:{exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}:{exc}") from None


class AlloyApp:
    def __init__(self, graph: Graph):
        self.graph = graph

    def handle(self, method, path, query, headers, body):
        if path in ("/-/ready", "/-/healthy"):
            return 200, {"Content-Type": "text/plain"}, "Alloy is ready.\n"
        if path == "/-/reload" and method == "POST":
            return 200, {}, "config reloaded\n"  # the stand-in re-reads nothing; restart to change config
        if path == "/metrics":
            m = Metrics()
            m.add("alloy_build_info", 1, {"version": VERSION})
            for key, comp in self.graph.components.items():
                if isinstance(comp, LokiSourceDocker):
                    m.add("loki_source_docker_target_entries_total", comp.lines, {"component_id": key}, kind="counter")
                if isinstance(comp, LokiWrite):
                    m.add("loki_write_sent_entries_total", comp.sent, {"component_id": key}, kind="counter")
            return 200, {"Content-Type": "text/plain; version=0.0.4"}, m.text()
        return 404, {}, "404 page not found\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-v", "--version", "-version"):
        print(f"alloy, version {VERSION}")
        return 0 if args else 1
    command, rest = args[0], args[1:]
    flags, positional = parse_go_flags(rest, {"server.http.listen-addr": "127.0.0.1:12345",
                                              "storage.path": "data-alloy/", "stability.level": "generally-available"})
    if command not in ("run", "validate") or len(positional) != 1:
        print("usage: alloy run|validate [flags] <path>", file=sys.stderr)
        return 1
    try:
        graph = load(positional[0])
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if command == "validate":
        return 0
    storage = Path(flags["storage.path"])
    storage.mkdir(parents=True, exist_ok=True)
    for comp in graph.components.values():
        if isinstance(comp, LokiWrite):
            comp.start()
    for comp in graph.components.values():
        if isinstance(comp, LokiSourceDocker):
            comp.start(storage)
    host, _, port = flags["server.http.listen-addr"].rpartition(":")
    serve(AlloyApp(graph), host or "0.0.0.0", int(port))
    log("info", "now listening for http traffic", service="http", addr=flags["server.http.listen-addr"])
    wait_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
