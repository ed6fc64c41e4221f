"""The backup runbooks on the fake executor: what they run, check mode, violations named.
(Against real hosts with their faults injected: tests/integration/test_backups.py.)"""

from __future__ import annotations

import json
import re

from runbooks.engine.runner import run
from runbooks.core.types import CommandResult
from runbooks.executors.fake import FakeExecutor
from runbooks.library import get_runbook
from tests.unit.runbooks.conftest import make_host
from tests.unit.runbooks.test_library import _executors, _result, _step

MANIFEST = {"id": "20261203T023000Z", "alembic_revision": "0002", "postgres": {"server_version": "15.10"},
            "row_counts": {"orders": 10, "order_lines": 20}, "duration_seconds": 2.0,
            "files": {"db": {"name": "db.dump.zst.age", "bytes": 100}}}


def test_data_integrity_names_table_and_rows(tmp_path):
    rb = get_runbook("data-integrity")
    fake = (FakeExecutor()
            .on(r"HAVING o.total_minor", "orders|7c9e-11|total 3000 <> lines 2500\n")
            .on(r"orderops-backup show latest", json.dumps(MANIFEST))
            .on(r"orderops-backup counts orders", json.dumps({"orders": 9, "order_lines": 20})))
    data = _result(run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path))
    inv = _step(data, "Invariants")
    assert inv["status"] == "failed" and "order totals: orders row 7c9e-11 (total 3000 <> lines 2500)" in inv["message"]
    counts = _step(data, "Row counts not below the latest backup")
    assert counts["status"] == "failed" and "orders: manifest 10, database 9" in counts["message"]


def test_data_integrity_passes_on_clean_data(tmp_path):
    rb = get_runbook("data-integrity")
    fake = (FakeExecutor().on(r"orderops-backup show latest", json.dumps(MANIFEST))
            .on(r"orderops-backup counts orders", json.dumps({"orders": 12, "order_lines": 25})))
    data = _result(run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path))
    assert data["status"] == "ok"


def test_restore_check_mode_says_what_it_would_do_and_changes_nothing(tmp_path):
    rb = get_runbook("emergency-restore")
    fake = FakeExecutor().on(r"orderops-backup verify latest", json.dumps(MANIFEST))
    data = _result(run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path, check=True))
    assert _step(data, "Find and verify the backup")["status"] == "ok"
    assert "would restore 20261203T023000Z into orders_restore_" in _step(data, "Restore into a fresh database")["message"]
    assert _step(data, "Stop the writers (API)")["message"] == "check mode: would stop the api service"
    cmds = fake.commands()
    # words, not substrings: the run id in the lock commands may read "...-emergency-restore-db49f1"
    assert not any(re.search(r"(^|\s)(stop|restore-db|restore-attachments|swap-db|swap-attachments|down)(\s|$)", c) for c in cmds), cmds


def test_restore_without_yes_skips_destructive_steps_and_needs_identity(tmp_path):
    rb = get_runbook("emergency-restore")
    fake = FakeExecutor().on(r"orderops-backup verify latest", json.dumps(MANIFEST))
    data = _result(run(rb, [make_host("h1")], rb.params(), _executors(fake), runs_dir=tmp_path))
    assert _step(data, "Find and verify the backup")["status"] == "failed"
    assert "identity" in _step(data, "Find and verify the backup")["message"]
    key = tmp_path / "k"
    key.write_text("AGE-SECRET-KEY-1FAKE\n")
    data = _result(run(rb, [make_host("h1")], rb.params(identity=str(key)), _executors(fake), runs_dir=tmp_path))
    assert _step(data, "Stop the writers (API)")["status"] == "skipped"
    assert not any(" stop " in c for c in fake.commands())


def test_restore_of_a_bad_backup_stops_before_the_api(tmp_path):
    rb = get_runbook("emergency-restore")
    key = tmp_path / "k"
    key.write_text("AGE-SECRET-KEY-1FAKE\n")
    fake = FakeExecutor().on(r"orderops-backup verify", CommandResult(1, "", "orderops-backup: backup 20261203T023000Z is corrupt: db.dump.zst.age: SHA-256 differs from the manifest"))
    data = _result(run(rb, [make_host("h1")], rb.params(identity=str(key)), _executors(fake), runs_dir=tmp_path, approve=True))
    assert "SHA-256 differs" in _step(data, "Find and verify the backup")["message"]
    assert _step(data, "Stop the writers (API)")["message"] == "an earlier step failed"
    assert not any(" stop " in c for c in fake.commands())
