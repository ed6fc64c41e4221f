"""Alert receivers for the live monitoring test: an HTTP webhook and an SMTP sink (aiosmtpd).

    python3 alert_sink.py --http-port 9099 --smtp-port 2525 --out /data/received.jsonl

Each received item is appended to ``--out`` as one JSON line and flushed:

* webhook (any ``POST``): ``{"kind": "webhook", "path": "/alerts", "body": <the JSON body>}``
  (Alertmanager's webhook payload: ``status``, ``alerts[]`` with ``labels``, ``startsAt``, ...)
* mail: ``{"kind": "smtp", "from": "...", "to": ["..."], "subject": "...", "text": "<whole message>"}``

A test image only (images/alert-sink); needs aiosmtpd (Debian: python3-aiosmtpd; PyPI: aiosmtpd).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import http.server
import json
import signal
import threading
from pathlib import Path

_lock = threading.Lock()


def record(out: Path, item: dict) -> None:
    """Append ``item`` to ``out`` as one JSON line (thread-safe)."""
    with _lock, out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(item, sort_keys=True) + "\n")


def webhook_server(port: int, out: Path) -> http.server.ThreadingHTTPServer:
    """A started HTTP server on 0.0.0.0:``port`` recording every POSTed JSON body (answers 200)."""

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            record(out, {"kind": "webhook", "path": self.path, "body": body})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802 - health probe
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def smtp_server(port: int, out: Path):
    """A started aiosmtpd ``Controller`` on 0.0.0.0:``port`` recording every message."""
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
            text = envelope.content.decode("utf-8", "replace")
            message = email.message_from_string(text, policy=email.policy.default)
            record(out, {"kind": "smtp", "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                         "subject": str(message.get("Subject", "")), "text": text})
            return "250 OK"

    controller = Controller(Sink(), hostname="0.0.0.0", port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, default=9099)
    parser.add_argument("--smtp-port", type=int, default=2525)
    parser.add_argument("--out", type=Path, default=Path("received.jsonl"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.touch()
    web = webhook_server(args.http_port, args.out)
    smtp = smtp_server(args.smtp_port, args.out)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"alert-sink: webhook :{args.http_port}, smtp :{args.smtp_port}, writing {args.out}", flush=True)
    stop.wait()
    smtp.stop()
    web.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
