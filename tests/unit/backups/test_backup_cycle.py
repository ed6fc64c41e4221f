"""Backup and restore against a real PostgreSQL, age and zstd: the pipeline, the manifest, the
failure cases (database down, corrupted archive, wrong key, restore target holding data),
metrics and retention not running after a failure."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from deploys.backup_tool import backup as backup_mod
from deploys.backup_tool import restore
from deploys.backup_tool.errors import BackupError
from deploys.backup_tool.manifest import id_time, list_local, sha256_file
from deploys.backup_tool.metrics import PROM_FILE

from .conftest import PASSWORD, make_config


def _prom(cfg) -> str:
    return (Path(cfg.textfile_dir) / PROM_FILE).read_text()


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_backup_then_restore_into_a_fresh_database(pg, orders_db, age_key, attachments, tmp_path, compression):
    identity, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public, attachments_dir=attachments, compression=compression)
    manifest = backup_mod.run_backup(cfg, log=lambda m: None)

    path = Path(cfg.backup_dir) / manifest["id"]
    assert sorted(p.name for p in path.iterdir()) == sorted([manifest["files"]["db"]["name"], "attachments.tar.zst.age", "manifest.json"])
    assert not list(Path(cfg.backup_dir).glob("*.partial"))
    assert manifest["row_counts"] == {"users": 1, "orders": 300, "order_lines": 600, "order_transitions": 300, "attachments": 0}
    assert manifest["alembic_revision"] == "0002" and manifest["postgres"]["server_version"].startswith("15")
    assert manifest["files"]["db"]["toc_entries"] > 10
    assert manifest["files"]["attachments"]["entries"] >= 3
    for entry in manifest["files"].values():
        f = path / entry["name"]
        assert f.stat().st_size == entry["bytes"] and sha256_file(f) == entry["sha256"]
        assert f.read_bytes().startswith(b"age-encryption.org/v1")  # encrypted, no plaintext dump on disk
        assert oct(f.stat().st_mode & 0o777) == "0o600"
    prom = _prom(cfg)
    assert 'orderops_backup_last_success_timestamp_seconds{kind="db"}' in prom
    assert "orderops_backup_last_run_success 1" in prom

    info = restore.verify(path)
    restore.restore_db(cfg, info, identity, f"{orders_db}_restored", jobs=2 if compression == "zstd" else 1)
    counts = restore.count_rows(cfg, f"{orders_db}_restored", cfg.key_tables)
    assert restore.compare_counts(manifest["row_counts"], counts) == []

    staging = restore.restore_attachments(cfg, info, identity)
    assert (staging / "ab" / "invoice.pdf").read_bytes() == (attachments / "ab" / "invoice.pdf").read_bytes()
    old = restore.swap_attachments(cfg, "20260101T000000Z")
    assert Path(old).is_dir() and (attachments / "note.txt").read_text() == "delivery note\n"


def test_swap_keeps_the_old_database(pg, orders_db, age_key, tmp_path):
    identity, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    manifest = backup_mod.run_backup(cfg, log=lambda m: None)
    with pg.admin(orders_db) as conn:
        conn.execute("DELETE FROM orders WHERE customer LIKE 'c1%'")  # the "disaster"
    info = restore.resolve(cfg, "latest")
    restore.restore_db(cfg, info, identity, f"{orders_db}_new", jobs=1)
    old = restore.swap_db(cfg, f"{orders_db}_new", manifest["id"])
    assert restore.count_rows(cfg, orders_db, ["orders"]) == {"orders": 300}
    assert restore.count_rows(cfg, old, ["orders"])["orders"] < 300  # kept until the caller's check passes
    restore.drop_db(cfg, old)
    with pytest.raises(BackupError, match="refusing to drop"):
        restore.drop_db(cfg, orders_db)


def test_swap_succeeds_while_a_reader_keeps_reconnecting(pg, orders_db, age_key, tmp_path):
    # the postgres exporter holds a connection and reconnects at once when terminated; in CI it
    # got back in between the terminate and the rename, and ALTER DATABASE ... RENAME gave up
    # after its 5 s wait ("database is being accessed by other users")
    identity, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    manifest = backup_mod.run_backup(cfg, log=lambda m: None)
    restore.restore_db(cfg, restore.resolve(cfg, "latest"), identity, f"{orders_db}_new", jobs=1)
    stop, sessions = threading.Event(), []

    def exporter_like():
        while not stop.is_set():
            try:
                with psycopg.connect(host="127.0.0.1", port=pg.port, user="orderops", password=PASSWORD,
                                     dbname=orders_db, connect_timeout=2, autocommit=True) as conn:
                    sessions.append(1)
                    while not stop.is_set():
                        conn.execute("SELECT 1")
                        time.sleep(0.05)
            except psycopg.Error:
                time.sleep(0.01)

    reader = threading.Thread(target=exporter_like, daemon=True)
    reader.start()
    while not sessions:
        time.sleep(0.01)
    try:
        old = restore.swap_db(cfg, f"{orders_db}_new", manifest["id"])
    finally:
        stop.set()
        reader.join(5)
    assert len(sessions) >= 1
    with pg.admin() as conn:
        flags = dict(conn.execute("SELECT datname, datallowconn FROM pg_database WHERE datname IN (%s, %s)",
                                  (orders_db, old)).fetchall())
    assert flags == {orders_db: True, old: True}  # both take connections again
    assert restore.count_rows(cfg, orders_db, ["orders"]) == {"orders": 300}


def test_a_failed_rename_leaves_both_databases_taking_connections(pg, orders_db, age_key, tmp_path):
    identity, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    backup_mod.run_backup(cfg, log=lambda m: None)
    restore.restore_db(cfg, restore.resolve(cfg, "latest"), identity, f"{orders_db}_new", jobs=1)
    pg.create_database(f"{orders_db}_pre_restore_20260101t000000z")  # the old name is taken: the rename fails
    with pytest.raises(BackupError, match="already exists"):
        restore.swap_db(cfg, f"{orders_db}_new", "20260101T000000Z")
    with pg.admin() as conn:
        flags = dict(conn.execute("SELECT datname, datallowconn FROM pg_database WHERE datname LIKE %s",
                                  (orders_db + "%",)).fetchall())
    assert flags == {orders_db: True, f"{orders_db}_new": True, f"{orders_db}_pre_restore_20260101t000000z": True}


def test_database_down_fails_leaves_nothing_and_keeps_success_metrics(pg, orders_db, age_key, tmp_path):
    _, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    good = backup_mod.run_backup(cfg, log=lambda m: None)
    before = [line for line in _prom(cfg).splitlines() if "last_success" in line]
    down = make_config(pg, orders_db, tmp_path / "backups", public, port=1)  # nothing listens on port 1
    later = id_time(good["id"]) + timedelta(seconds=1)  # its own id even when both fall in one second
    with pytest.raises(BackupError, match="psql exited"):
        backup_mod.run_backup(down, now=later, log=lambda m: None)
    assert [b.id for b in list_local(Path(cfg.backup_dir))] == [good["id"]]
    assert not list(Path(cfg.backup_dir).glob("*.partial"))
    prom = _prom(cfg)
    assert "orderops_backup_last_run_success 0" in prom
    assert [line for line in prom.splitlines() if "last_success" in line] == before


def test_dump_failure_mid_pipe_is_reported(pg, orders_db, age_key, tmp_path):
    _, public = age_key
    # pg_dump of a database that does not exist: the snapshot session fails first; a bad
    # recipient makes age fail inside the pipe
    cfg = make_config(pg, orders_db, tmp_path / "backups", "age1notakey")
    with pytest.raises(BackupError, match="age exited"):
        backup_mod.run_backup(cfg, log=lambda m: None)
    assert list_local(Path(cfg.backup_dir)) == []


def test_corrupted_archive_and_wrong_key_fail(pg, orders_db, age_key, tmp_path):
    identity, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    manifest = backup_mod.run_backup(cfg, log=lambda m: None)
    path = Path(cfg.backup_dir) / manifest["id"]

    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    with pytest.raises(BackupError, match="age -d exited"):
        restore.restore_db(cfg, restore.verify(path), other.read_bytes(), f"{orders_db}_wrongkey", jobs=1)
    assert restore.count_rows(cfg, "postgres", ["orders"]) == {}  # half-restored target dropped

    f = path / manifest["files"]["db"]["name"]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="SHA-256 differs"):
        restore.verify(path)
    # even when the checksum is skipped, decryption detects the damage (age is authenticated)
    info = restore.inspect_local(path)
    with pytest.raises(BackupError, match="age -d exited"):
        restore.restore_db(cfg, info, identity, f"{orders_db}_corrupt", jobs=1)


def test_restore_into_a_database_holding_data_is_refused(pg, orders_db, age_key, tmp_path):
    identity, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    backup_mod.run_backup(cfg, log=lambda m: None)
    info = restore.resolve(cfg, "latest")
    with pytest.raises(BackupError, match="live database"):
        restore.restore_db(cfg, info, identity, orders_db)
    pg.create_database(f"{orders_db}_busy")
    with pytest.raises(BackupError, match="exists already"):
        restore.restore_db(cfg, info, identity, f"{orders_db}_busy")
    assert restore.count_rows(cfg, orders_db, ["orders"]) == {"orders": 300}


def test_truncated_file_makes_the_backup_invalid_and_prune_refuses(pg, orders_db, age_key, tmp_path):
    _, public = age_key
    cfg = make_config(pg, orders_db, tmp_path / "backups", public)
    manifest = backup_mod.run_backup(cfg, log=lambda m: None)
    f = Path(cfg.backup_dir) / manifest["id"] / manifest["files"]["db"]["name"]
    os.truncate(f, f.stat().st_size // 2)
    assert [b.state for b in list_local(Path(cfg.backup_dir))] == ["truncated"]
    with pytest.raises(BackupError, match="no valid backup"):
        restore.resolve(cfg, "latest")
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps({**cfg.__dict__, "db_exec": list(cfg.db_exec), "recipients": list(cfg.recipients),
                                    "key_tables": list(cfg.key_tables), "s3": None}))
    from deploys.backup_tool.cli import main

    assert main(["--config", str(cfg_path), "prune"]) == 1
    assert f.exists()


def test_the_plaintext_check_rejects_a_stream_that_is_no_dump(tmp_path, age_key):
    from deploys.backup_tool.pipeline import _TOC_LINE, encrypt_stream

    _, public = age_key
    dest = tmp_path / "x.age"
    with pytest.raises(BackupError, match=r"check \(pg_restore\) exited 1"):
        encrypt_stream(["sh", "-c", "head -c 100000 /dev/urandom"], dest, [public], what="db",
                       check=["pg_restore", "--list"], compressor=["zstd", "-q", "-c"], check_line=_TOC_LINE)
    assert not dest.exists()
    with pytest.raises(BackupError, match="db: sh exited 3"):
        encrypt_stream(["sh", "-c", "echo partial; exit 3"], dest, [public], what="db", compressor=["zstd", "-q", "-c"])
    assert not dest.exists()
