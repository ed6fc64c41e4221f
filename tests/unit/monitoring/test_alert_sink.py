"""The live alert test's receivers (images/alert-sink/alert_sink.py) on loopback: a webhook body and
a mail sent with smtplib are both recorded, one JSON line each. Real aiosmtpd (test dependency)."""

import json
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

SINK = Path(__file__).resolve().parents[3] / "images" / "alert-sink" / "alert_sink.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def test_webhook_and_mail_are_recorded(tmp_path):
    http_port, smtp_port, out = _free_port(), _free_port(), tmp_path / "received.jsonl"
    proc = subprocess.Popen([sys.executable, str(SINK), "--http-port", str(http_port), "--smtp-port", str(smtp_port),
                             "--out", str(out)])
    try:
        _wait_port(http_port)
        _wait_port(smtp_port)
        body = {"status": "firing", "alerts": [{"labels": {"alertname": "TargetDown"}}]}
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}/alerts", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        assert urllib.request.urlopen(req, timeout=5).status == 200
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "am@order.test", "ops@order.test", "[FIRING:1] TargetDown"
        msg.set_content("order-service is down")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.send_message(msg)
        items = [json.loads(line) for line in out.read_text().splitlines()]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert items[0] == {"kind": "webhook", "path": "/alerts", "body": body}
    assert items[1]["kind"] == "smtp" and items[1]["to"] == ["ops@order.test"]
    assert items[1]["subject"] == "[FIRING:1] TargetDown" and "order-service is down" in items[1]["text"]
    assert proc.returncode == 0
