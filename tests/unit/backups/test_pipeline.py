"""The encrypt pipe with a check that stops reading its input without exiting.

``docker compose exec -T postgres pg_restore --list`` does that: once pg_restore has read the
table of contents and exited, the compose client holds its stdin open and reads no more until
it is closed (the ``backup now`` hang on 10,000 orders). ``HOLDER`` is a faithful stand-in for
that client, run on this machine: it relays its stdin to the real ``pg_restore --list`` until
pg_restore exits, then stops reading and waits, without reading, for its stdin to be closed
(``POLLHUP``), and exits with pg_restore's status. The dump is real (PostgreSQL 15, 3,000
orders: more than any pipe buffer holds).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from deploys.backup_tool.errors import BackupError
from deploys.backup_tool.pipeline import _TOC_LINE, TOC_PREFIX, decrypt_stream, encrypt_stream

from .conftest import PASSWORD

HOLDER = r"""
import os, select, subprocess, sys
inner = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE)
try:
    while inner.poll() is None:
        block = os.read(0, 65536)
        if not block:
            break
        inner.stdin.write(block)
        inner.stdin.flush()
except BrokenPipeError:
    pass
rc = inner.wait()
p = select.poll()
p.register(0, select.POLLHUP)
while not any(ev & select.POLLHUP for _, ev in p.poll()):
    pass
sys.exit(rc)
"""


def _env(pg) -> list[str]:
    return ["env", "PGHOST=127.0.0.1", f"PGPORT={pg.port}", f"PGPASSWORD={PASSWORD}", "PGUSER=orderops"]


def _run_bounded(fn, seconds: float):
    """``fn()`` in a thread; fails the test (instead of hanging it) after ``seconds``."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"the pipe still runs after {seconds} s (hang)"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("orders_db", [3000], indirect=True)
def test_a_check_holding_its_input_open_does_not_hang_the_backup(pg, orders_db, age_key, tmp_path):
    identity, public = age_key
    dest = tmp_path / "db.dump.zst.age"
    dump = [*_env(pg), "pg_dump", "-d", orders_db, "-Fc", "-Z0"]
    check = [sys.executable, "-c", HOLDER, *_env(pg), "pg_restore", "--list"]
    result = _run_bounded(lambda: encrypt_stream(dump, dest, [public], what="db", check=check, check_bytes=TOC_PREFIX,
                                                 compressor=["zstd", "-q", "-3", "-c"], check_line=_TOC_LINE), 120)
    assert result.plain_bytes > 1 << 20 and result.check_lines >= 5  # tables, sequences, constraints
    # the stored file is the whole dump: it restores into a fresh database
    pg.create_database(f"{orders_db}_r")
    decrypt_stream(dest, identity, [*_env(pg), "pg_restore", "-d", f"{orders_db}_r", "--exit-on-error"], what="restore",
                   decompressor=["zstd", "-q", "-d", "-c"])
    count = subprocess.run([*_env(pg), "psql", "-tA", "-d", f"{orders_db}_r", "-c", "SELECT count(*) FROM orders"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert count == "3000"


@pytest.mark.parametrize("orders_db", [30000], indirect=True)  # ~10x any buffer on the path, whatever the scheduling
def test_a_whole_stream_check_that_stops_reading_fails_loudly(pg, orders_db, age_key, tmp_path):
    """Without the prefix bound the same check blocks the data path: after ``check_stall`` the
    run fails naming the check, and leaves no file."""
    _, public = age_key
    dest = tmp_path / "db.age"
    dump = [*_env(pg), "pg_dump", "-d", orders_db, "-Fc", "-Z0"]
    check = [sys.executable, "-c", HOLDER, *_env(pg), "pg_restore", "--list"]
    with pytest.raises(BackupError, match=r"check \(pg_restore\): check stopped reading its input for 2 s"):
        _run_bounded(lambda: encrypt_stream(dump, dest, [public], what="db", check=check, check_stall=2,
                                            check_line=_TOC_LINE), 120)
    assert not dest.exists()


def test_a_toc_beyond_the_prefix_fails_the_check(age_key, tmp_path):
    """A stream whose head is no complete archive (here: cut at 4 KiB) fails in pg_restore."""
    _, public = age_key
    dest = tmp_path / "x.age"
    with pytest.raises(BackupError, match=r"check \(pg_restore\) exited 1"):
        encrypt_stream(["sh", "-c", "printf 'PGDMP'; head -c 3000000 /dev/urandom"], dest, [public], what="db",
                       check=["pg_restore", "--list"], check_bytes=4096, check_line=_TOC_LINE)
    assert not dest.exists()


def test_check_identity_reads_only_the_head_and_names_a_wrong_key(age_key, tmp_path):
    """Real age and zstd: the right key passes (the plaintext starts like a zstd frame), the wrong
    compression's magic and another key are refused, and nothing is written but the test's file."""
    from deploys.backup_tool.pipeline import check_identity, plain_magic

    identity, public = age_key
    dest = tmp_path / "db.dump.zst.age"
    encrypt_stream(["sh", "-c", "head -c 300000 /dev/urandom"], dest, [public], what="db", compressor=["zstd", "-q", "-c"])
    check_identity(dest, identity, what="identity", magic=plain_magic("zstd"))
    with pytest.raises(BackupError, match="does not start like"):
        check_identity(dest, identity, what="identity", magic=plain_magic("gzip"))
    other = subprocess.run(["age-keygen"], capture_output=True, check=True).stdout
    with pytest.raises(BackupError, match="identity: age -d exited 1: .*no identity matched"):
        check_identity(dest, other, what="identity", magic=plain_magic("zstd"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.dump.zst.age"]
