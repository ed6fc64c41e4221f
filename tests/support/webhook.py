"""A real HTTP webhook receiver on loopback for tests (stdlib ``http.server`` in a thread)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def webhook_receiver(status: int = 204) -> Iterator[tuple[str, list[Any]]]:
    """``(url, received)``: every JSON body POSTed to ``url`` is appended to ``received``; each
    POST is answered with ``status``. The server stops when the block ends."""
    received: list[Any] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()
