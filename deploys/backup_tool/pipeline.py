"""Streaming a source through a check, a compressor and ``age`` into a file, failing loudly.

:func:`encrypt_stream` runs::

    source ──┬──► check (reads the plaintext: ``pg_restore --list`` / ``tar -t``)
             └──► compressor (optional: ``zstd``) ──► age -r KEY... ──► Python: SHA-256, size ──► file

Every stage's exit status is checked; a stage that fails, a file that cannot be written (disk
full) or a check that finds nothing raises :class:`~.errors.BackupError` naming the stage and its
last stderr lines, after the other stages have been stopped and the partial file removed.
The file is written under the given temporary name and fsynced; renaming is the caller's
business (:mod:`.backup` renames the whole backup directory).

:func:`decrypt_stream` is the reverse for restores: ``age -d`` with the identity handed over on
a pipe (``-i /dev/fd/N``, never written to disk) ──► decompressor ──► a sink process.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BackupError

__all__ = ["StreamResult", "encrypt_stream", "decrypt_stream", "age_encrypt_argv", "CHUNK"]

CHUNK = 1 << 20
_TOC_LINE = re.compile(r"^\d+;")


@dataclass(frozen=True)
class StreamResult:
    """What was written: ``bytes`` and ``sha256`` of the file, ``plain_bytes`` read from the
    source, ``check_lines`` the check's non-comment output lines (TOC entries, tar members)."""

    bytes: int
    sha256: str
    plain_bytes: int
    check_lines: int


def age_encrypt_argv(recipients: Sequence[str]) -> list[str]:
    """``age -r R1 -r R2 ...`` (binary output to stdout)."""
    argv = ["age"]
    for r in recipients:
        argv += ["-r", r]
    return argv


class _Stage:
    def __init__(self, name: str, argv: Sequence[str], **kw):
        self.name = name
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(list(argv), stderr=self.err, **kw)
        except OSError as e:
            raise BackupError(f"{name}: cannot start {argv[0]}: {e.strerror}") from None
        self.killed = False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait()

    def stderr_tail(self) -> str:
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip()
        return " ".join(text.splitlines()[-3:])[-400:]

    def problem(self) -> str:
        rc = self.wait()
        if rc == 0:
            return ""
        return f"{self.name} exited {rc}" + (f": {self.stderr_tail()}" if self.stderr_tail() else "")


def encrypt_stream(source: Sequence[str], dest: Path, recipients: Sequence[str], *, what: str,
                   check: Sequence[str] | None = None, compressor: Sequence[str] | None = None,
                   check_line: re.Pattern[str] | None = None) -> StreamResult:
    """Stream ``source``'s stdout through ``check``/``compressor``/age into ``dest`` (created,
    must not exist). ``what`` names the stream in errors (``db``, ``attachments``).
    ``check_line``: pattern of the check's output lines to count (default: any non-comment line).
    Raises :class:`BackupError`; ``dest`` is removed on failure."""
    stages: list[_Stage] = []
    problems: list[str] = []
    lock = threading.Lock()
    counts = {"plain": 0}
    check_out = tempfile.TemporaryFile(mode="w+b")

    def note(msg: str) -> None:
        with lock:
            problems.append(msg)

    def kill_all() -> None:
        for s in stages:
            s.kill()

    try:
        src = _Stage(f"{what}: {_tool_name(source)}", source, stdout=subprocess.PIPE)
        stages.append(src)
        chk = _Stage(f"{what}: check ({_tool_name(check)})", check, stdin=subprocess.PIPE, stdout=check_out) if check else None
        if chk:
            stages.append(chk)
        comp = _Stage(f"{what}: {_tool_name(compressor)}", compressor, stdin=subprocess.PIPE, stdout=subprocess.PIPE) if compressor else None
        if comp:
            stages.append(comp)
        enc = _Stage(f"{what}: age", age_encrypt_argv(recipients), stdin=comp.proc.stdout if comp else subprocess.PIPE,
                     stdout=subprocess.PIPE)
        stages.append(enc)
        if comp:
            comp.proc.stdout.close()  # age holds it now; EOF propagates when zstd exits
        sink = comp.proc.stdin if comp else enc.proc.stdin
    except BackupError:
        for s in stages:
            s.kill()
        raise

    def feed() -> None:
        check_in = chk.proc.stdin if chk else None
        try:
            while block := src.proc.stdout.read(CHUNK):
                counts["plain"] += len(block)
                if check_in is not None:
                    try:
                        check_in.write(block)
                    except (BrokenPipeError, OSError):
                        # pg_restore --list stops after the table of contents: that is fine,
                        # its exit status and output are judged below
                        check_in = None
                try:
                    sink.write(block)
                except (BrokenPipeError, OSError):
                    note(f"{what}: the compressor/encryption stopped reading")
                    kill_all()
                    return
        finally:
            for f in (check_in, sink):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass

    feeder = threading.Thread(target=feed, name=f"feed-{what}", daemon=True)
    feeder.start()
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        kill_all()
        raise BackupError(f"{what}: cannot create {dest}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            while block := enc.proc.stdout.read(CHUNK):
                digest.update(block)
                size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        note(f"{what}: writing {dest} failed: {e.strerror or e}")
        kill_all()
    feeder.join()
    for s in stages:
        p = s.problem()
        if p and not (s.killed and problems):
            note(p)
    check_lines = 0
    if chk:
        check_out.seek(0)
        pattern = check_line
        lines = [ln for ln in check_out.read().decode(errors="replace").splitlines() if ln.strip() and not ln.startswith(";")]
        check_lines = sum(1 for ln in lines if pattern.match(ln)) if pattern else len(lines)
        if not problems and check_lines == 0:
            note(f"{what}: check ({_tool_name(check)}) found no entries in the stream")
    check_out.close()
    if problems:
        dest.unlink(missing_ok=True)
        raise BackupError("; ".join(problems))
    return StreamResult(size, digest.hexdigest(), counts["plain"], check_lines)


def _tool_name(argv: Sequence[str] | None) -> str:
    """The client tool of an argv (``pg_dump`` in ``docker compose ... exec -T postgres pg_dump ...``)."""
    if not argv:
        return ""
    for tool in ("pg_dump", "pg_restore", "psql", "tar", "zstd", "age"):
        if tool in argv:
            return tool
    return Path(argv[0]).name


def decrypt_stream(src: Path, identity: bytes, sink: Sequence[str], *, what: str,
                   decompressor: Sequence[str] | None = None, sink_stdout=None) -> None:
    """``age -d -i /dev/fd/N < src | decompressor | sink``; raises :class:`BackupError` naming
    the failing stage (a wrong key fails in ``age``). The identity never touches a disk."""
    r, w = os.pipe()
    try:
        if len(identity) > 60000:
            raise BackupError("identity too large")
        os.write(w, identity)
    finally:
        os.close(w)
    stages: list[_Stage] = []
    try:
        with open(src, "rb") as f:
            dec = _Stage(f"{what}: age -d", ["age", "-d", "-i", f"/dev/fd/{r}"], stdin=f, stdout=subprocess.PIPE, pass_fds=(r,))
            stages.append(dec)
        os.close(r)
        r = -1
        upstream = dec.proc.stdout
        if decompressor:
            comp = _Stage(f"{what}: {_tool_name(decompressor)} -d", decompressor, stdin=upstream, stdout=subprocess.PIPE)
            stages.append(comp)
            upstream.close()
            upstream = comp.proc.stdout
        last = _Stage(f"{what}: {_tool_name(sink)}", sink, stdin=upstream, stdout=sink_stdout if sink_stdout is not None else subprocess.DEVNULL)
        stages.append(last)
        upstream.close()
    finally:
        if r >= 0:
            os.close(r)
    problems = [p for p in (s.problem() for s in stages) if p]
    if problems:
        raise BackupError("; ".join(problems))
