"""Throw-away local servers for the service tests and the benchmark: one implementation.

:func:`local_postgres` runs Debian's PostgreSQL binaries (``initdb`` + ``postgres``) in a
temporary directory on 127.0.0.1 with password (scram-sha-256) authentication. As root it runs
the server as ``postgres`` (or ``nobody``), since PostgreSQL refuses to run as root. The server is
a direct child that gets SIGQUIT (immediate shutdown) when its parent dies, even by SIGKILL, so an
interrupted run leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["PG_BIN", "PostgresServer", "free_port", "server_user", "die_with_parent", "local_postgres"]

#: Debian's PostgreSQL 15 binaries (``ORDEROPS_TEST_PG_BIN`` overrides).
PG_BIN = Path(os.environ.get("ORDEROPS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

_CHILD_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent(sig: int = signal.SIGQUIT) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies (PR_SET_PDEATHSIG)."""

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)

    return preexec


def server_user() -> pwd.struct_passwd | None:
    """``None`` when not root; else the unprivileged user servers run as. Raises ``RuntimeError``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster listening on 127.0.0.1:``port`` (password auth)."""

    port: int
    user: str
    password: str
    host: str = "127.0.0.1"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit connection to ``dbname`` (for CREATE/DROP DATABASE and checks)."""
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname, autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """Create the empty database ``name`` (dropping an old one) and return its name."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _wait_until_accepting(process: subprocess.Popen[bytes], server: PostgresServer, logfile: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{logfile.read_text()}")
        try:
            server.admin().close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections in 60 s:\n{logfile.read_text()}") from None
            time.sleep(0.1)


def _tls_only(root: Path, datadir: Path, run_as: pwd.struct_passwd | None) -> list[str]:
    """A self-signed server certificate in ``root`` and a ``pg_hba.conf`` of ``hostssl`` lines;
    returns the server arguments that turn TLS on."""
    key, crt = root / "server.key", root / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True, timeout=120)
    key.chmod(0o600)
    if run_as is not None:
        for f in (key, crt):
            os.chown(f, run_as.pw_uid, run_as.pw_gid)
    (datadir / "pg_hba.conf").write_text("local all all scram-sha-256\n"
                                         "hostssl all all 127.0.0.1/32 scram-sha-256\n")
    return ["-c", "ssl=on", "-c", f"ssl_cert_file={crt}", "-c", f"ssl_key_file={key}"]


@contextmanager
def local_postgres(user: str, password: str, settings: Sequence[str] = (), tls_only: bool = False) -> Iterator[PostgresServer]:
    """Run a throw-away cluster for the duration of the block; yields its :class:`PostgresServer`.

    + user: the superuser ``initdb`` creates
    + password: its password (any characters)
    + settings: extra ``name=value`` server settings, e.g. ``["max_connections=200"]``
    + tls_only: serve TLS (a self-signed certificate made with ``openssl``) and refuse TCP clients
      without it (``hostssl`` lines only in ``pg_hba.conf``), as RDS's ``rds.force_ssl=1`` does

    Raises ``RuntimeError`` when the binaries are missing, initdb fails or the server does not
    accept connections within 60 s (with the server log).
    """
    postgres, initdb = PG_BIN / "postgres", PG_BIN / "initdb"
    if not postgres.exists():
        raise RuntimeError(f"{postgres} not found: install Debian's postgresql-15 (or set ORDEROPS_TEST_PG_BIN)")
    run_as = server_user()
    root = Path(tempfile.mkdtemp(prefix="orderops-pg-"))
    datadir, logfile, pwfile = root / "data", root / "postgres.log", root / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as is not None:
        os.chown(root, run_as.pw_uid, run_as.pw_gid)
        os.chown(pwfile, run_as.pw_uid, run_as.pw_gid)
    try:
        result = subprocess.run(
            [str(initdb), "-D", str(datadir), "-U", user, "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
            cwd=root, env=_CHILD_ENV, capture_output=True, text=True, timeout=120, check=False, **_as_user(run_as),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        server = PostgresServer(port=free_port(), user=user, password=password)
        args = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}"]
        if tls_only:
            args += _tls_only(root, datadir, run_as)
        for setting in settings:
            args += ["-c", setting]
        with logfile.open("wb") as log:
            process = subprocess.Popen(
                [str(postgres), "-D", str(datadir), "-p", str(server.port), *args],
                cwd=root, env=_CHILD_ENV, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGQUIT), **_as_user(run_as),
            )
        try:
            _wait_until_accepting(process, server, logfile)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
