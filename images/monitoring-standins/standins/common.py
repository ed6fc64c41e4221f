"""Shared parts of the stand-ins: a threaded HTTP server, Go-style flags, a Docker API client, logs.

Logs are logfmt lines on stderr (``level=info ts=... msg="..." key=value``), like the real
programs, so ``docker logs`` of a stand-in reads like the original.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["log", "expand_env", "parse_go_flags", "Handler", "serve", "DockerClient", "Metrics"]


_NEEDS_QUOTES = re.compile(r'[\s"=]')


def log(level: str, msg: str, **fields: Any) -> None:
    """One logfmt line on stderr: ``level=<level> ts=<RFC 3339> msg="<msg>" k=v ...``."""
    parts = [f"level={level}", "ts=" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), f"msg={json.dumps(msg)}"]
    for key, value in fields.items():
        text = str(value)
        quoted = json.dumps(text) if (not text or _NEEDS_QUOTES.search(text)) else text
        parts.append(f"{key}={quoted}")
    print(" ".join(parts), file=sys.stderr, flush=True)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}``, ``${VAR:default}`` and ``$VAR`` (Loki's -config.expand-env, Grafana provisioning)."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        if name in env:
            return env[name]
        return m.group(2) if m.group(2) is not None else ""

    return _ENV_REF.sub(sub, text)


def parse_go_flags(argv: list[str], known: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parse Go ``flag``/kingpin style arguments (``-a=b``, ``--a=b``, ``-a b``, ``-flag`` for booleans).

    + known: ``{name: default}``; a bool default makes the flag boolean.
    Returns ``(values, positional)``. Unknown flags are accepted and ignored (compose files may pass
    flags of newer versions); their values are kept under their names.
    """
    values = dict(known)
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg not in ("-", "--"):
            name, eq, value = arg.lstrip("-").partition("=")
            default = known.get(name)
            if isinstance(default, bool):
                values[name] = value.lower() not in ("false", "0") if eq else True
            elif eq:
                values[name] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                values[name] = argv[i + 1]
                i += 1
            else:
                values[name] = True
        else:
            positional.append(arg)
        i += 1
    return values, positional


class Handler(BaseHTTPRequestHandler):
    """Routes requests to ``server.app.handle(method, path, query, headers, body) -> (status, headers, body)``."""

    protocol_version = "HTTP/1.1"
    server_version = "orderops-standin"

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.server.app.handle(  # type: ignore[attr-defined]
                method, parts.path, parse_qs(parts.query), self.headers, body)
        except Exception as exc:  # noqa: BLE001 - a stand-in bug must show as a 500, not a dead thread
            log("error", "request failed", path=parts.path, err=repr(exc))
            status, headers, payload = 500, {"Content-Type": "text/plain"}, b"internal error\n"
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        elif isinstance(payload, str):
            payload = payload.encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet, like the real servers at info level
        return


def serve(app: Any, address: str, port: int) -> ThreadingHTTPServer:
    """Start a threaded HTTP server for ``app`` on ``address:port`` in a daemon thread; returns it.

    Raises ``OSError`` when the port cannot be bound.
    """
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((address, port), Handler)
    server.app = app  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerClient:
    """Minimal Docker Engine API client over the unix socket (API paths without a version prefix).

    + host: ``unix:///var/run/docker.sock`` (the only scheme supported)
    Raises ``OSError``/``http.client.HTTPException`` on connection problems, ``RuntimeError`` on HTTP errors.
    """

    def __init__(self, host: str = "unix:///var/run/docker.sock"):
        if not host.startswith("unix://"):
            raise ValueError(f"only unix:// docker hosts are supported, got {host!r}")
        self.path = host[len("unix://"):]

    def get_json(self, path: str, timeout: float = 30) -> Any:
        conn = _UnixConnection(self.path, timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"docker API {path}: HTTP {resp.status}: {data[:200]!r}")
            return json.loads(data)
        finally:
            conn.close()

    def stream(self, path: str, timeout: float | None = None):
        """Open a streaming GET (e.g. ``/containers/<id>/logs?follow=1``); returns the response."""
        conn = _UnixConnection(self.path, timeout or 3600 * 24 * 365)
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status >= 400:
            data = resp.read()
            conn.close()
            raise RuntimeError(f"docker API {path}: HTTP {resp.status}: {data[:200]!r}")
        return resp


class Metrics:
    """A tiny Prometheus text exposition builder: ``add(name, value, labels, help, type)``, ``text()``."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, value: float, labels: dict[str, str] | None = None, help: str = "", kind: str = "gauge") -> None:
        fam = self._families.setdefault(name, (help or name, kind, []))
        label_text = ""
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            label_text = "{" + inner + "}"
        fam[2].append(f"{name}{label_text} {value}")

    def text(self) -> str:
        out = []
        for name, (help_text, kind, samples) in self._families.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def wait_forever(on_signal: Callable[[], None] | None = None) -> None:
    """Block until SIGTERM/SIGINT, then call ``on_signal`` and exit 0."""
    import signal

    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(3600):
        pass
    if on_signal:
        on_signal()
    sys.exit(0)
