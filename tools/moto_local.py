"""A local AWS endpoint for trying ``orderops-aws`` without an account: moto's server with the shims.

Stock ``moto_server`` cannot create the main stack (``Ref`` of a DBParameterGroup answers 500);
this starts moto's server on 127.0.0.1 with the three shims of ``tests/support/moto_aws.py`` (the
same server the tests use), then prepares what the tests prepare:

* the Route 53 hosted zone ``example.com`` (``inventories/aws_local.py``'s domain is in it),
* ACM issuing DNS-validated certificates at once and ECS reporting services at their desired count
  (moto settings; AWS takes minutes for both),
* an ElastiCache replication group ``<name>-redis`` (``--name``, default ``orderops-t``: the
  ``name`` of ``inventories/aws_local.py``; moto's CloudFormation skips that type, the
  ``aws-daily`` runbook reads it),
* a loopback stand-in answering ``/api/ready`` (no ALB exists locally).

Usage (from the repository root)::

    eval "$(.venv/bin/python tools/moto_local.py start)"   # background server; prints the exports
    .venv/bin/python tools/moto_local.py stop

``start`` prints ``export`` lines: ``ORDEROPS_AWS_ENDPOINT``, dummy ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``ORDEROPS_AWS_ZONE`` and ``ORDEROPS_AWS_READY_URL`` (what
``inventories/aws_local.py`` reads), and ``ORDEROPS_AWS_REGISTRY`` when ``--registry HOST:PORT``
names a Docker registry for ``release`` (moto serves the ECR API, not the registry protocol). State
lives in memory: ``stop`` discards it. The server's log and pid are in ``.orderops/moto-local.*``.
Nothing here can reach AWS: the endpoint is loopback and the credentials are dummies.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("ORDEROPS_STATE_DIR", ROOT / ".orderops"))
PID_FILE, LOG_FILE, ENV_FILE = (STATE / f"moto-local.{ext}" for ext in ("pid", "log", "env"))
DUMMY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        ok = self.path == "/api/ready"
        body = b'{"status":"ready"}' if ok else b""
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(port: int, registry: str | None, name: str = "orderops-t") -> None:
    """Run the shimmed server on ``127.0.0.1:port`` in the foreground; writes :data:`ENV_FILE` when ready."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(DUMMY, MOTO_ECS_SERVICE_RUNNING="1", MOTO_ACM_VALIDATION_WAIT="0")
    import boto3
    import moto.settings
    from moto.server import ThreadedMotoServer

    from tests.support.moto_aws import apply_shims

    moto.settings.ACM_VALIDATION_WAIT = 0
    apply_shims()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    kw = {"endpoint_url": url, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    zone = boto3.client("route53", region_name="us-east-1", **kw).create_hosted_zone(
        Name="example.com", CallerReference=f"moto-local-{time.time()}")["HostedZone"]["Id"].split("/")[-1]
    boto3.client("elasticache", region_name="eu-west-1", **kw).create_replication_group(
        ReplicationGroupId=f"{name}-redis", ReplicationGroupDescription="moto-local stand-in",
        Engine="redis", CacheNodeType="cache.t4g.small", NumCacheClusters=1)
    ready = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=ready.serve_forever, daemon=True).start()
    exports = {"ORDEROPS_AWS_ENDPOINT": url, **DUMMY, "AWS_DEFAULT_REGION": "eu-west-1",
               "ORDEROPS_AWS_ZONE": zone,
               "ORDEROPS_AWS_READY_URL": f"http://127.0.0.1:{ready.server_address[1]}/api/ready"}
    if registry:
        exports["ORDEROPS_AWS_REGISTRY"] = registry
    lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
    lines += ["unset AWS_PROFILE AWS_SESSION_TOKEN"]
    if not registry:
        lines += ["unset ORDEROPS_AWS_REGISTRY  # release: start again with --registry HOST:PORT (a Docker registry)"]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    print(f"moto-local: serving {url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ready.shutdown()
        server.stop()
        ENV_FILE.unlink(missing_ok=True)


def _running() -> int | None:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start(port: int, registry: str | None, name: str = "orderops-t", timeout: float = 60.0) -> int:
    """Start :func:`serve` in its own session; prints the exports once it answers (exit 1 at once
    when the port is taken)."""
    if (pid := _running()) is not None:
        if ENV_FILE.is_file():
            print(ENV_FILE.read_text(), end="")
            print(f"moto-local: already running (pid {pid})", file=sys.stderr)
            return 0
        print(f"moto-local: pid {pid} in {PID_FILE} is starting or stuck; stop it first", file=sys.stderr)
        return 1
    if not _port_free(port):
        print(f"moto-local: 127.0.0.1:{port} is in use by another program; choose one with --port", file=sys.stderr)
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "serve", "--port", str(port), "--name", name,
           *(["--registry", registry] if registry else [])]
    with LOG_FILE.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)
    PID_FILE.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not ENV_FILE.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"moto-local: the server did not start (see {LOG_FILE})", file=sys.stderr)
            if proc.poll() is None:
                proc.terminate()
            PID_FILE.unlink(missing_ok=True)
            return 1
        time.sleep(0.2)
    print(ENV_FILE.read_text(), end="")
    print(f"moto-local: pid {proc.pid}, log {LOG_FILE}; stop with: .venv/bin/python tools/moto_local.py stop",
          file=sys.stderr)
    return 0


def stop() -> int:
    """Stop the server :func:`start` started (its pid file); its state is gone."""
    pid = _running()
    if pid is None:
        print("moto-local: not running", file=sys.stderr)
        PID_FILE.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if _running() is None:
            break
        time.sleep(0.1)
    PID_FILE.unlink(missing_ok=True)
    print(f"moto-local: stopped pid {pid}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("start", "serve"):
        c = sub.add_parser(name, help="background server, prints exports" if name == "start" else "foreground")
        c.add_argument("--port", type=int, default=5000, help="loopback port (default 5000)")
        c.add_argument("--registry", help="HOST:PORT of a Docker registry releases push to (ORDEROPS_AWS_REGISTRY)")
        c.add_argument("--name", default="orderops-t", help="the inventory's aws name (ElastiCache stand-in <name>-redis)")
    sub.add_parser("stop", help="stop the background server")
    args = p.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.registry, args.name)
        return 0
    return start(args.port, args.registry, args.name) if args.command == "start" else stop()


if __name__ == "__main__":
    sys.exit(main())
