"""Order-service benchmark: the real service vs a bare FastAPI INSERT/SELECT, side by side.

    .venv/bin/python benchmarks/bench_order_service.py           # ~2 minutes on 2 cores

Starts its own PostgreSQL 15 (Debian's binaries, initdb in a temporary directory, run as the
``postgres`` user when started as root) and redis-server (with a password), migrates with
``python -m order_service migrate``, then runs on loopback:

- the service with its production server settings: ``python -m order_service serve``
  (uvicorn, ``--workers WORKERS``, proxy headers, JSON logs, metrics, rate limiting on with
  limits high enough never to trigger, authentication on the path: one token, reused);
- ``benchmarks/bare_app.py`` under the same uvicorn flags and worker count, with the same
  engine settings (psycopg 3, same pool): one INSERT, one SELECT per request.

Measures with wrk (Debian's ``wrk``; closed loop, ``--latency``) the maximum rate and
p50/p99 of ``POST /api/orders`` vs ``POST /bare/orders`` and ``GET /api/orders/{id}`` vs
``GET /bare/orders/{id}``, and during each run the CPU time per request of the service's
processes, the bare app's, PostgreSQL's and Redis' (from /proc: unlike requests/s it hardly
moves with other load on a shared machine), prints the ratios, then offers the service half of each measured
maximum with a fixed-rate (open-loop) generator and reports p99 measured from each request's
scheduled start (no coordinated omission).

Environment: ``BENCH_WORKERS`` (default 2, the inventory default), ``BENCH_DURATION`` seconds
per wrk run (10), ``BENCH_CONNECTIONS`` (32), ``BENCH_FIXED_DURATION`` (15), ``BENCH_KEEP=1``
keeps the temporary directory with the servers' logs. ``BENCH_PROFILE=1`` also samples the
uvicorn workers with py-spy (``pip install -e '.[bench]' -c constraints.txt``) during the four
max-rate wrk runs and prints, service and bare app side by side, where their CPU time goes by
part of the request path (:data:`PROFILE_PARTS`); sampling costs CPU, so the rates of a
profiled run are lower.
Not a test: nothing is gated; the targets are printed next to the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.postgres import PG_BIN, die_with_parent, free_port, local_postgres  # noqa: E402

REDIS_SERVER = os.environ.get("ORDEROPS_TEST_REDIS_SERVER", "/usr/bin/redis-server")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
FIXED_DURATION = int(os.environ.get("BENCH_FIXED_DURATION", "15"))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
ORDER = {"customer": "ACME GmbH", "currency": "EUR",
         "lines": [{"sku": "WIDGET-1", "quantity": 3, "unit_price_minor": 1250}]}


def _wait_for(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    """Poll ``ready()`` (an ``OSError`` counts as not yet) every 0.2 s until it is true; exit when
    ``process`` dies or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} was not ready within {timeout:.0f} s")


def _listens(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


def _answers_200(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return answer.status == 200


@contextmanager
def postgres(root: Path, password: str) -> Iterator[int]:  # noqa: ARG001 - root kept for symmetry
    """A throw-away PostgreSQL 15 cluster on 127.0.0.1 (tests/support/postgres.py); yields its port."""
    with local_postgres("orderops", password, ["max_connections=200", "shared_buffers=128MB"]) as server:
        yield server.port


@contextmanager
def redis_server(root: Path, password: str) -> Iterator[int]:
    """A redis-server on 127.0.0.1 with ``password``, no persistence; yields its port."""
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
         "--save", "", "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent(signal.SIGTERM),
    )
    try:
        _wait_for(lambda: _listens(port), process, "redis-server")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def process(argv: list[str], env: dict[str, str], health_url: str, what: str, logfile: Path) -> Iterator[int]:
    """Run ``argv`` until the block ends (SIGTERM: uvicorn's graceful shutdown); yields its pid."""
    with logfile.open("wb") as log:
        child = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 preexec_fn=die_with_parent(signal.SIGTERM))
    try:
        _wait_for(lambda: _answers_200(health_url), child, what)
        yield child.pid
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """One request with urllib; returns the decoded JSON answer."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, user + system CPU seconds), from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        table[int(stat.parent.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def cpu_by_part(service_pid: int, bare_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the service's processes, the bare app's, PostgreSQL's and Redis'.

    Processes are found below this benchmark process: ``service_pid`` / ``bare_pid`` and their
    children (uvicorn workers), every ``postgres`` and ``redis-server`` process. CPU of processes
    that already exited (a PostgreSQL backend of a closed connection) is not counted.
    """
    table = _process_table()

    def below(root: int, pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = table.get(pid, (0, "", 0.0))[0]
        return False

    parts = {"service": 0.0, "bare app": 0.0, "PostgreSQL": 0.0, "Redis": 0.0}
    me = os.getpid()
    for pid, (_, name, cpu) in table.items():
        if below(service_pid, pid):
            parts["service"] += cpu
        elif below(bare_pid, pid):
            parts["bare app"] += cpu
        elif below(me, pid) and name == "postgres":
            parts["PostgreSQL"] += cpu
        elif below(me, pid) and name == "redis-server":
            parts["Redis"] += cpu
    return parts


def wrk(url: str, method: str, body: str | None, token: str | None, root: Path, name: str,
        profile_pid: int | None = None, cpu: Any = None) -> dict[str, Any]:
    """Closed-loop max-rate run; returns requests/s, p50 and p99 (ms) and non-2xx count.

    With ``cpu`` (a function returning :func:`cpu_by_part`), also ``cpu_ms``: CPU milliseconds
    per request of each part during the measured run (robust to other load on the machine,
    unlike requests/s).
    With ``profile_pid``, py-spy samples that process and its children during the measured run
    (raw collapsed stacks in ``root/<name>.pyspy``; :func:`profile_shares` leaves out the stacks
    of waiting threads, so its shares are of CPU time).
    """
    script = root / f"{name}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script.write_text(WRK_SCRIPT.format(method=method, body=json.dumps(body) if body else "nil", auth=auth))
    base = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "--latency", "-s", str(script)]
    subprocess.run([*base, "-d", "2s", url], capture_output=True, check=True)  # warm-up: workers, pools
    sampler = None
    if profile_pid is not None:
        sampler = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(profile_pid), "--subprocesses", "--nonblocking", "--rate", "100",
             "--duration", str(DURATION), "--format", "raw", "--output", str(root / f"{name}.pyspy")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # py-spy attaches before the load starts
    cpu_before = cpu() if cpu else None
    result = subprocess.run([*base, "-d", f"{DURATION}s", url], capture_output=True, text=True, check=True)
    cpu_after = cpu() if cpu else None
    if sampler is not None:
        sampler.wait(timeout=60)
    out = result.stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            raise SystemExit(f"cannot parse wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_ms = ({part: (cpu_after[part] - cpu_before[part]) * 1000 / max(requests, 1) for part in cpu_after}
              if cpu_before and cpu_after else {})
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "cpu_ms": cpu_ms,
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0, "socket_errors": errors.group(0) if errors else ""}


#: Parts of the request path, in the order they are matched: a sample belongs to the first part
#: whose pattern occurs in one of its frames (so the JSON encoding inside a log call counts as
#: logging); "service code" is what is left whose innermost frame is in order_service/.
PROFILE_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (JSON access and app log)", ("logging/__init__.py", "order_service/core/logging.py")),
    ("metrics (prometheus_client)", ("prometheus_client/", "order_service/metrics.py")),
    # py-spy sees only the innermost frames of a coroutine run by the event loop: the asyncio
    # Redis client's own frames count here (on the measured path only the limiter uses it)
    ("rate limit (Redis counters, asyncio client)", ("order_service/ratelimit.py", "limits/", "redis/asyncio/")),
    ("auth: JWT decode", ("decode_access_token",)),
    ("auth: user lookup (cache, query)", ("_load_principal", "UserCache")),
    ("idempotency (Redis)", ("order_service/idempotency.py",)),
    ("database (SQLAlchemy + psycopg)", ("sqlalchemy/", "psycopg/", "psycopg_binary/")),
    ("validation + serialisation (pydantic, JSON)", ("pydantic", "model_validate", "model_dump", "jsonable_encoder",
                                                     "serialize_response", "json/", "JSONResponse")),
    ("service code (own time)", ()),
    ("FastAPI/Starlette (routing, dependencies, body)", ("fastapi/", "starlette/")),
    ("thread hand-off (anyio)", ("anyio/", "threading.py", "concurrent/")),
    ("uvicorn, httptools, event loop", ("uvicorn/", "httptools", "asyncio/", "uvloop")),
)
#: Innermost frames of a thread that waits (py-spy's own idle detection misses these here):
#: thread-pool workers waiting for work, psycopg waiting for the server's answer, the event
#: loop in select, uvicorn's supervisor pipe. Such samples are waiting, not CPU: dropped.
IDLE_LEAVES = ("Condition.wait (threading.py", "Event.wait (threading.py", "Connection.wait (psycopg/",
               "Runner.run (asyncio/runners.py", "(selectors.py", "Connection._recv (multiprocessing/")
PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def _busy_samples(raw: Path) -> Iterator[tuple[list[str], int]]:
    """``(frames, count)`` of py-spy's raw output ``raw``, outermost frame first, waiting stacks left out."""
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit() or ";" not in stack:
            continue
        frames = stack.split(";")[1:]  # the first "frame" names the process
        if frames and not any(leaf in frames[-1] for leaf in IDLE_LEAVES):
            yield frames, int(number)


def sample_count(raw: Path) -> int:
    """Number of busy (CPU) samples in py-spy's raw output ``raw``."""
    return sum(count for _, count in _busy_samples(raw))


def profile_shares(raw: Path) -> dict[str, float]:
    """Share (0..1) of the busy samples in py-spy's raw output ``raw`` that fall to each part of
    :data:`PROFILE_PARTS`."""
    counts: dict[str, int] = {}
    for frames, number in _busy_samples(raw):
        part = "other"
        for name, patterns in PROFILE_PARTS:
            if not patterns:
                if frames and "order_service/" in frames[-1]:
                    part = name
                    break
            elif any(pattern in frame for frame in frames for pattern in patterns):
                part = name
                break
        counts[part] = counts.get(part, 0) + number
    total = sum(counts.values()) or 1
    return {name: counts.get(name, 0) / total for name, _ in (*PROFILE_PARTS, ("other", ()))}


async def _fixed_rate(host: str, port: int, request: bytes, rate: float, duration: float,
                      connections: int) -> tuple[list[float], int]:
    """Open-loop load: request *i* is due at ``t0 + i / rate``; latency counts from the due time."""
    total = int(rate * duration)
    queue: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            due = await queue.get()
            if due < 0:
                writer.close()
                return
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - due)
            if status >= 300:
                failures += 1

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter() + 0.2
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)
    for _ in workers:
        queue.put_nowait(-1.0)
    await asyncio.gather(*workers)
    return latencies, failures


def fixed_rate(url: str, method: str, body: str | None, token: str, rate: float) -> dict[str, float]:
    """p50/p99 (ms) of ``rate`` requests/s for ``FIXED_DURATION`` seconds."""
    parts = urllib.parse.urlsplit(url)
    payload = (body or "").encode()
    head = (f"{method} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    latencies, failures = asyncio.run(
        _fixed_rate(parts.hostname, parts.port, head + payload, rate, FIXED_DURATION, CONNECTIONS)
    )
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    achieved = len(latencies) / FIXED_DURATION
    return {"rate": rate, "achieved": achieved, "p50": pct(50), "p99": pct(99), "failures": failures}


def main() -> int:
    """Run the benchmark and print the table; returns 0 (figures are reported, not gated)."""
    for tool in (str(PG_BIN / "postgres"), REDIS_SERVER, shutil.which("wrk") or "/usr/bin/wrk"):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} missing: apt-get install postgresql-15 redis-server wrk")
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="orderops-bench-"))
    os.chmod(root, 0o755)
    pg_password, redis_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    admin_password = secrets.token_urlsafe(24)
    try:
        with postgres(root, pg_password) as pg_port, redis_server(root, redis_password) as redis_port:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "REDIS_"))},
                "PYTHONPATH": str(REPO_ROOT),
                "ENVIRONMENT": "local",
                "SECRET_KEY": secrets.token_urlsafe(32),
                "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(pg_port), "POSTGRES_USER": "orderops",
                "POSTGRES_PASSWORD": pg_password, "POSTGRES_DB": "postgres",
                "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port), "REDIS_PASSWORD": redis_password,
                "WORKERS": str(WORKERS), "LOG_LEVEL": "INFO",  # production default: one JSON access line per request
                "ADMIN_EMAIL": "bench@orderops.local", "ADMIN_PASSWORD": admin_password,
                # rate limiting stays on the path (two counters per request), never triggered
                "RATE_LIMIT_USER": "1000000000", "RATE_LIMIT_IP": "1000000000",
                "STORAGE_DIR": str(root / "attachments"),
            }
            subprocess.run([sys.executable, "-m", "order_service", "migrate"], env=env, cwd=REPO_ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            import psycopg  # noqa: PLC0415

            from benchmarks.bare_app import DDL  # noqa: PLC0415

            with psycopg.connect(host="127.0.0.1", port=pg_port, user="orderops", password=pg_password,
                                 dbname="postgres", autocommit=True) as conn:
                conn.execute(DDL)
            from order_service.core.config import Settings  # noqa: PLC0415
            from order_service.entrypoint import UVICORN_LOG_CONFIG  # noqa: PLC0415

            svc_port, bare_port = free_port(), free_port()
            service_argv = [sys.executable, "-m", "order_service", "serve", "--skip-migrations",
                            "--host", "127.0.0.1", "--port", str(svc_port)]
            # the bare app: uvicorn with exactly the flags `serve` uses (entrypoint.uvicorn_argv)
            settings = Settings(_env_file=None, **{k: v for k, v in env.items() if k in Settings.model_fields})
            from order_service.entrypoint import uvicorn_argv  # noqa: PLC0415

            bare_argv = uvicorn_argv(settings, host="127.0.0.1", port=bare_port)
            bare_argv[bare_argv.index("order_service.main:create_app")] = "benchmarks.bare_app:create_app"
            assert "--log-config" in bare_argv and str(UVICORN_LOG_CONFIG) in bare_argv
            svc, bare = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{bare_port}"
            with process(service_argv, env, f"{svc}/api/health", "order service", root / "service.log") as svc_pid, \
                 process(bare_argv, env, f"{bare}/docs", "bare app", root / "bare.log") as bare_pid:
                profiled = svc_pid if PROFILE else None

                def cpu() -> dict[str, float]:
                    return cpu_by_part(svc_pid, bare_pid)

                form = urllib.parse.urlencode({"username": env["ADMIN_EMAIL"], "password": admin_password}).encode()
                token = http("POST", f"{svc}/api/login/access-token", form,
                             {"Content-Type": "application/x-www-form-urlencoded"})["access_token"]
                auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                body = json.dumps(ORDER)
                order_id = http("POST", f"{svc}/api/orders", body.encode(), auth)["id"]
                bare_id = http("POST", f"{bare}/bare/orders", body.encode(), {"Content-Type": "application/json"})["id"]
                results = {
                    "service POST /api/orders": wrk(f"{svc}/api/orders", "POST", body, token, root, "svc_post", profiled, cpu),
                    "bare    POST /bare/orders": wrk(f"{bare}/bare/orders", "POST", body, None, root, "bare_post",
                                                 bare_pid if PROFILE else None, cpu),
                    "service GET  /api/orders/{id}": wrk(f"{svc}/api/orders/{order_id}", "GET", None, token, root,
                                                         "svc_get", profiled, cpu),
                    "bare    GET  /bare/orders/{id}": wrk(f"{bare}/bare/orders/{bare_id}", "GET", None, None, root,
                                                          "bare_get", bare_pid if PROFILE else None, cpu),
                }
                post_rate = results["service POST /api/orders"]["rps"] / 2
                get_rate = results["service GET  /api/orders/{id}"]["rps"] / 2
                fixed = {
                    "service POST /api/orders": fixed_rate(f"{svc}/api/orders", "POST", body, token, post_rate),
                    "bare    POST /bare/orders": fixed_rate(f"{bare}/bare/orders", "POST", body, token, post_rate),
                    "service GET  /api/orders/{id}": fixed_rate(f"{svc}/api/orders/{order_id}", "GET", None, token,
                                                                get_rate),
                    "bare    GET  /bare/orders/{id}": fixed_rate(f"{bare}/bare/orders/{bare_id}", "GET", None, token,
                                                                 get_rate),
                }
        cpu = os.cpu_count()
        print(f"\norder service benchmark: {WORKERS} uvicorn workers each, {cpu} CPUs, wrk -t2 -c{CONNECTIONS} "
              f"-d{DURATION}s on loopback, PostgreSQL 15 + Redis on the same machine\n")
        print(f"{'endpoint':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for name, r in results.items():
            print(f"{name:34} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['non2xx']:8.0f}")
        print(f"\nCPU ms per request during each run (from /proc; other load on the machine does not count)")
        parts = ("service", "bare app", "PostgreSQL", "Redis")
        print(f"{'endpoint':34} " + " ".join(f"{part:>10}" for part in parts))
        for name, r in results.items():
            print(f"{name:34} " + " ".join(f"{r['cpu_ms'].get(part, 0.0):10.2f}" for part in parts))
        post_ratio = results["service POST /api/orders"]["rps"] / results["bare    POST /bare/orders"]["rps"]
        get_ratio = results["service GET  /api/orders/{id}"]["rps"] / results["bare    GET  /bare/orders/{id}"]["rps"]
        print(f"\nratio POST service/bare: {post_ratio:.2f}  (target >= 0.5)")
        print(f"ratio GET  service/bare: {get_ratio:.2f}  (target >= 0.7)")
        print(f"\nfixed rate at half the service's measured maximum (the bare app gets the same rate, for "
              f"comparison), {FIXED_DURATION}s open loop, latency from scheduled start; target: service p99 < 50 ms")
        for name, r in fixed.items():
            print(f"  {name:34} offered {r['rate']:5.0f}/s achieved {r['achieved']:5.0f}/s  p50 {r['p50']:6.2f} ms  "
                  f"p99 {r['p99']:7.2f} ms  non-2xx {r['failures']}")
        if PROFILE:
            runs = ("svc_post", "svc_get", "bare_post", "bare_get")
            shares = {run: profile_shares(root / f"{run}.pyspy") for run in runs}
            print("\nwhere the workers' CPU time goes under wrk (py-spy, 100 Hz, waiting threads left out; "
                  "share of samples)")
            print(f"  {'part of the request path':50} " + " ".join(f"{run:>9}" for run in runs))
            for name in shares["svc_post"]:
                print(f"  {name:50} " + " ".join(f"{shares[run][name]:9.1%}" for run in runs))
            print("  " + " " * 50 + " " + " ".join(f"{sample_count(root / f'{run}.pyspy'):9d}" for run in runs)
                  + "  samples")
        load = os.getloadavg()
        print(f"\nload average before the run: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}, "
              f"after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {cpu} CPUs "
              "(other work on the machine skews every figure)")
        return 0
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {root} (service.log, bare.log, PostgreSQL log)")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
