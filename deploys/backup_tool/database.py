"""Commands run next to PostgreSQL, through the configured ``db_exec`` argv prefix.

In production the prefix is ``docker compose ... exec -T postgres``, so ``pg_dump``,
``pg_restore`` and ``psql`` are the server's own version. Tests and the benchmark use a prefix
that reaches a local server (``env PGHOST=... PGPORT=...``).

:class:`SnapshotSession` holds one ``REPEATABLE READ`` transaction open while the dump runs:
``pg_dump --snapshot`` dumps exactly what the session sees, so the row counts recorded in the
manifest are those of the dump, even while orders keep arriving.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence

from .errors import BackupError

__all__ = ["SnapshotSession", "psql_command", "run_sql", "quote_ident"]

_END = "__orderops_end__"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_ident(name: str) -> str:
    """``name`` as a SQL identifier; only plain lower-case names are accepted (``BackupError``)."""
    if not _IDENT.match(name):
        raise BackupError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def psql_command(db_exec: Sequence[str], user: str, database: str, *extra: str) -> list[str]:
    """argv of ``psql`` (no psqlrc, tuples only, unaligned, stop on the first error)."""
    return [*db_exec, "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database, *extra]


def run_sql(db_exec: Sequence[str], user: str, database: str, sql: str, timeout: float = 600) -> list[str]:
    """Run ``sql`` (one or more statements) and return the output lines; ``BackupError`` on failure."""
    proc = subprocess.run(psql_command(db_exec, user, database, "-c", sql), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BackupError(f"psql on {database} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return [line for line in proc.stdout.splitlines() if line.strip()]


class SnapshotSession:
    """An open ``REPEATABLE READ READ ONLY`` transaction whose snapshot ``pg_dump`` reuses.

    Use as a context manager; :attr:`snapshot` is the exported snapshot id. :meth:`query` runs a
    statement in the transaction and returns its output lines. Raises :class:`BackupError`
    when psql fails or exits (e.g. the database is stopped).
    """

    def __init__(self, db_exec: Sequence[str], user: str, database: str):
        self._argv = psql_command(db_exec, user, database)
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc: subprocess.Popen[str] | None = None
        self.snapshot = ""

    def __enter__(self) -> SnapshotSession:
        try:
            self._proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, text=True)
        except OSError as e:
            raise BackupError(f"cannot start psql: {e}") from None
        self.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self.snapshot = self.query("SELECT pg_export_snapshot()")[0]
        return self

    def query(self, sql: str) -> list[str]:
        """Output lines of ``sql`` run in the open transaction."""
        self.send(sql)
        return self.receive()

    def send(self, sql: str) -> None:
        """Start ``sql`` in the open transaction without waiting; :meth:`receive` reads its
        output lines. One statement may be outstanding at a time."""
        assert self._proc and self._proc.stdin
        try:
            self._proc.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo " + _END + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise BackupError(f"psql exited: {self._error()}") from None

    def receive(self) -> list[str]:
        """Output lines of the statement :meth:`send` started (blocks until it ends)."""
        assert self._proc and self._proc.stdout
        lines = []
        while True:
            line = self._proc.stdout.readline()
            if not line:
                raise BackupError(f"psql exited: {self._error()}")
            if line.rstrip("\n") == _END:
                return lines
            if line.strip():
                lines.append(line.rstrip("\n"))

    def _error(self) -> str:
        if self._proc:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._stderr.seek(0)
        text = self._stderr.read().strip()
        return (text[-400:] or "no message") + (f" (exit {self._proc.returncode})" if self._proc else "")

    def __exit__(self, *exc) -> None:
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None and self._proc.stdin:
                self._proc.stdin.write("COMMIT;\n")
                self._proc.stdin.close()
            self._proc.wait(timeout=30)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()

    def describe(self, key_tables: Sequence[str]) -> tuple[dict, Callable[[], dict[str, int]]]:
        """``({"server_version", "alembic_revision"}, counts)`` as this snapshot sees them.

        The exact row counts of ``key_tables`` (tables that do not exist are left out) are
        started here and counted by the server while the caller goes on (the dump runs from the
        same snapshot meanwhile, so both see the same rows); ``counts()`` waits for them and
        returns ``{table: rows}``. Call it before any other :meth:`query`."""
        version = self.query("SHOW server_version")[0].split()[0]
        present = set(self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        revision = ""
        if "alembic_version" in present:
            revision = ",".join(sorted(self.query("SELECT version_num FROM alembic_version")))
        tables = [t for t in key_tables if t in present]
        if tables:
            self.send(" UNION ALL ".join(f"SELECT '{t}', count(*) FROM {quote_ident(t)}" for t in tables))

        def counts() -> dict[str, int]:
            found: dict[str, int] = {}
            for line in self.receive() if tables else []:
                name, _, n = line.partition("|")
                found[name] = int(n)
            return found

        return {"server_version": version, "alembic_revision": revision}, counts
