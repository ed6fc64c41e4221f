"""Streaming a source through a check, a compressor and ``age`` into a file, failing loudly.

:func:`encrypt_stream` runs::

    source ──┬──► check (reads the plaintext: the first TOC_PREFIX bytes for ``pg_restore --list``,
             │         all of it for ``tar -t``; own thread, bounded queue, output to a file)
             └──► compressor (optional: ``zstd``) ──► age -r KEY... ──► Python: SHA-256, size ──► file

Every stage's exit status is checked; a stage that fails, a file that cannot be written (disk
full) or a check that finds nothing raises :class:`~.errors.BackupError` naming the stage and its
last stderr lines, after the other stages have been stopped and the partial file removed.
The file is written under the given temporary name and fsynced; renaming is the caller's
business (:mod:`.backup` renames the whole backup directory).

:func:`decrypt_stream` is the reverse for restores: ``age -d`` with the identity handed over on
a pipe (``-i /dev/fd/N``, never written to disk) ──► decompressor ──► a sink process.
:func:`check_identity` decrypts only the head of a file and stops, so a wrong key is found before
a restore writes anything.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import select
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BackupError

__all__ = ["StreamResult", "encrypt_stream", "decrypt_stream", "check_identity", "age_encrypt_argv", "plain_magic",
           "CHUNK", "TOC_PREFIX"]

CHUNK = 1 << 20
_TOC_LINE = re.compile(r"^\d+;")
#: Plaintext bytes ``pg_restore --list`` is given. It reads the archive header and the table of
#: contents, which ``pg_dump -Fc`` writes before any data, and stops there (PostgreSQL's
#: pg_backup_archiver.c: ``ReadHead``, ``ReadToc``, then ``PrintTOCSummary``); a TOC larger than
#: this fails the check loudly (pg_restore: unexpected end of file), it is never skipped.
TOC_PREFIX = 16 << 20
#: Seconds a check may take no input after the stream ended before its stdin is closed.
CHECK_GRACE = 5.0
#: Seconds a whole-stream check may block the data path before it is killed and the run fails.
CHECK_STALL = 300.0
#: Blocks a whole-stream check may have waiting before the data path waits for it.
QUEUE_BLOCKS = 64
_HAVE_SPLICE = hasattr(os, "splice")


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


class _CheckFeeder(threading.Thread):
    """Feeds the check's stdin from a bounded queue, so the data path never waits on the check.

    ``limit``: bytes of the stream the check gets (``None``: all of it). With a limit the queue
    may hold the whole prefix, so :meth:`offer` never blocks; without one it blocks while
    :data:`QUEUE_BLOCKS` blocks wait (back-pressure from a check that reads everything, ``tar -t``).

    The check's stdin is written non-blocking under ``select``, and closed early when
    + the limit is reached (``pg_restore --list`` reads only the header and table of contents,
      which pg_dump writes first), or
    + the stream ended and the check took nothing for ``grace`` seconds: it stopped reading
      without exiting, as ``docker compose exec`` does once ``pg_restore`` has exited but stdin is
      still open; closing its input lets it exit with the inner exit status, or
    + the check took nothing for ``stall`` seconds while the data path waits on it: the check is
      then killed and :attr:`problem` says so (the backup fails instead of hanging).
    A check that exits (``EPIPE``) gets nothing more; the queue is still drained.
    """

    def __init__(self, stage: _Stage, what: str, limit: int | None, grace: float, stall: float,
                 ending: threading.Event):
        super().__init__(name=f"check-{what}", daemon=True)
        self._ending = ending  # set by the feeder when the stream ended
        self.stage, self.limit, self.grace, self.stall = stage, limit, grace, stall
        # with a limit the queued bytes are bounded by it (any number of blocks); without one, by
        # QUEUE_BLOCKS reads of at most CHUNK bytes
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=0 if limit is not None else QUEUE_BLOCKS)
        self.offered = 0
        self.fed = 0
        self.problem = ""
        self._fd = stage.proc.stdin.fileno()
        os.set_blocking(self._fd, False)
        self._closed_offering = False

    def offer(self, block: bytes) -> None:
        """Hand ``block`` (the next bytes of the stream) to the check; cut at the limit."""
        if self._closed_offering:
            return
        if self.limit is not None and self.offered + len(block) >= self.limit:
            block = block[: self.limit - self.offered]
            self._closed_offering = True
        self.offered += len(block)
        if block:
            self.queue.put(block)
        if self._closed_offering:
            self.queue.put(None)

    def end(self) -> None:
        """The stream ended (or failed): nothing more will be offered."""
        if not self._closed_offering:
            self._closed_offering = True
            self.queue.put(None)

    def _write(self, block: bytes, ending: threading.Event) -> bool:
        """Write ``block``; ``False`` when the check stopped reading (exited, or stalled)."""
        view = memoryview(block)
        idle_since = time.monotonic()
        while view:
            _, ready, _ = select.select([], [self._fd], [], 0.2)
            if ready:
                try:
                    n = os.write(self._fd, view)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError):
                    return False  # the check exited: its status and output are judged later
                view = view[n:]
                self.fed += n
                idle_since = time.monotonic()
                continue
            idle = time.monotonic() - idle_since
            if ending.is_set() and idle >= self.grace:
                return False  # stream over, the check reads no more: close its input
            if self.queue.full() and self.limit is None and idle >= self.stall:
                self.problem = f"check stopped reading its input for {self.stall:.0f} s"
                self.stage.kill()
                return False
        return True

    @property
    def done_offering(self) -> bool:
        """The check has all it will get (limit reached, or the stream ended)."""
        return self._closed_offering

    def run(self) -> None:
        writing = True
        try:
            while (block := self.queue.get()) is not None:
                if writing:
                    writing = self._write(block, self._ending)
        finally:
            try:
                self.stage.proc.stdin.close()
            except OSError:
                pass


def encrypt_stream(source: Sequence[str], dest: Path, recipients: Sequence[str], *, what: str,
                   check: Sequence[str] | None = None, compressor: Sequence[str] | None = None,
                   check_line: re.Pattern[str] | None = None, check_bytes: int | None = None,
                   check_grace: float = CHECK_GRACE, check_stall: float = CHECK_STALL) -> StreamResult:
    """Stream ``source``'s stdout through ``check``/``compressor``/age into ``dest`` (created,
    must not exist). ``what`` names the stream in errors (``db``, ``attachments``).
    ``check_line``: pattern of the check's output lines to count (default: any non-comment line).
    ``check_bytes``: the check reads only this many leading bytes (``None``: the whole stream);
    ``check_grace`` / ``check_stall`` (seconds): see :class:`_CheckFeeder`.

    The source is copied to the compressor (or age) by a feeder thread: ``os.splice`` (no copy
    through Python) once the check has its bytes, ``os.read``/``os.write`` before. The check has
    its own thread and bounded queue and writes its output to a file, so no pipe can fill and
    block the data path. Raises :class:`BackupError`; ``dest`` is removed on failure."""
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
        src = _Stage(f"{what}: {_tool_name(source)}", source, stdout=subprocess.PIPE, bufsize=0)
        stages.append(src)
        chk = (_Stage(f"{what}: check ({_tool_name(check)})", check, stdin=subprocess.PIPE, stdout=check_out, bufsize=0)
               if check else None)
        if chk:
            stages.append(chk)
        comp = (_Stage(f"{what}: {_tool_name(compressor)}", compressor, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
                if compressor else None)
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

    ending = threading.Event()
    checker = _CheckFeeder(chk, what, check_bytes, check_grace, check_stall, ending) if chk else None
    if checker:
        checker.start()

    def feed() -> None:
        in_fd, out_fd = src.proc.stdout.fileno(), sink.fileno()
        try:
            # the check's part of the stream passes through Python (two consumers) ...
            while checker is not None and not checker.done_offering:
                block = os.read(in_fd, CHUNK)
                if not block:
                    return
                counts["plain"] += len(block)
                checker.offer(block)
                _write_all(out_fd, block)
            # ... the rest goes from pipe to pipe in the kernel
            while True:
                n = _splice(in_fd, out_fd, CHUNK)
                if n == 0:
                    return
                counts["plain"] += n
        except (BrokenPipeError, OSError):
            note(f"{what}: the compressor/encryption stopped reading")
            kill_all()
        finally:
            ending.set()
            if checker is not None:
                checker.end()
            try:
                sink.close()
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
        feeder.join()
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
    if checker is not None:
        checker.join()
        if checker.problem:
            note(f"{what}: check ({_tool_name(check)}): {checker.problem}")
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _splice(in_fd: int, out_fd: int, count: int) -> int:
    """Move up to ``count`` bytes from pipe ``in_fd`` to pipe ``out_fd`` (``os.splice``, Linux,
    Python >= 3.10; else read + write). Returns the bytes moved, 0 at end of input."""
    if _HAVE_SPLICE:
        return os.splice(in_fd, out_fd, count)
    block = os.read(in_fd, count)
    _write_all(out_fd, block)
    return len(block)


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


#: First bytes of the plaintext inside the age file: a zstd frame, or pg_dump's custom format
#: (``-Z1``: the archive compresses its own data blocks). zstd's frame format (RFC 8878, 3.1.1);
#: pg_backup_archiver.c ``WriteHead`` ("PGDMP").
_MAGIC = {"zstd": b"\x28\xb5\x2f\xfd", "gzip": b"PGDMP"}


def plain_magic(compression: str | None) -> bytes:
    """The bytes a backup's decrypted db file starts with for the manifest's ``compression``."""
    return _MAGIC.get(compression or "gzip", b"PGDMP")


def _pipe_identity(identity: bytes) -> int:
    """A pipe's read end holding ``identity`` (the writer is closed); the key never touches a disk."""
    if len(identity) > 60000:
        raise BackupError("identity too large")
    r, w = os.pipe()
    try:
        os.write(w, identity)
    finally:
        os.close(w)
    return r


def check_identity(src: Path, identity: bytes, *, what: str, magic: bytes = b"") -> None:
    """Decrypt the head of ``src`` (``age -d``, identity on a pipe) and stop: nothing is written
    anywhere. Raises :class:`BackupError` when age refuses the identity (``no identity matched any
    of the recipients``) or the plaintext does not start with ``magic`` (see :func:`plain_magic`)."""
    r = _pipe_identity(identity)
    try:
        with open(src, "rb") as f:
            dec = _Stage(f"{what}: age -d", ["age", "-d", "-i", f"/dev/fd/{r}"], stdin=f, stdout=subprocess.PIPE,
                         pass_fds=(r,))
    finally:
        os.close(r)
    head = b""
    try:
        want = max(len(magic), 1)
        while len(head) < want and (block := dec.proc.stdout.read(want - len(head))):
            head += block
    finally:
        dec.kill()
        dec.proc.stdout.close()
        rc = dec.proc.wait()
    if not head or len(head) < len(magic):
        tail = dec.stderr_tail()
        raise BackupError(f"{what}: age -d exited {rc}" + (f": {tail}" if tail else ": no plaintext"))
    if magic and not head.startswith(magic):
        raise BackupError(f"{what}: the decrypted file does not start like a {magic!r} stream")
