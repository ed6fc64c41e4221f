"""result.json: pydantic models, a published generated schema, old run directories still read."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from runbooks import cli
from runbooks.engine.model import Runbook, Step
from runbooks.engine.results import SCHEMA_FILE, SCHEMA_VERSION, load_result, result_schema
from runbooks.engine.runner import run
from tests.unit.runbooks.conftest import SECRETS

#: A run directory's result.json as the engine wrote it before schema version 2 (verbatim shape).
V1 = {
    "schema_version": 1, "run_id": "20261120T060000Z-daily-abc123", "runbook": "daily", "title": "Daily check",
    "inventory": "inventories/local.py", "check": False, "approved": False, "params": {"drift": True}, "limit": None,
    "started_at": "2026-11-20T06:00:00Z", "finished_at": "2026-11-20T06:00:12Z", "duration_s": 12.345,
    "status": "aborted", "hosts": ["h1"],
    "steps": [
        {"name": "Take the host lock", "doc": "", "target": "all", "executor": "remote", "changes": False,
         "destructive": False, "on_failure": "stop-host",
         "results": {"h1": {"status": "ok", "message": "acquired", "data": {}, "tables": [], "attempts": 1,
                            "duration_s": 0.2, "started_at": "2026-11-20T06:00:00Z"}}},
        {"name": "Service status", "doc": "Every service...", "target": "app", "executor": "remote", "changes": False,
         "destructive": False, "on_failure": "continue",
         "results": {"h1": {"status": "failed", "message": "api: exited", "data": {"restarts": {"api": 2}},
                            "tables": [{"title": "containers", "columns": ["service"], "rows": [["api"]]}],
                            "attempts": 2, "duration_s": 1.5, "started_at": "2026-11-20T06:00:01Z"}}},
    ],
    "summary": {"ok": 1, "changed": 0, "failed": 1, "skipped": 0},
}


def test_published_schema_is_current():
    assert SCHEMA_FILE.read_text() == result_schema(), (
        "runbooks/engine/result.schema.json is stale: run `python -m runbooks.engine.results`")
    schema = json.loads(SCHEMA_FILE.read_text())
    assert {"schema_version", "steps", "summary", "status"} <= set(schema["properties"])
    assert "run_dir" not in schema["properties"]


def test_a_version_1_result_is_read_and_upgraded(tmp_path):
    d = tmp_path / V1["run_id"]
    d.mkdir()
    (d / "result.json").write_text(json.dumps(V1))
    r = load_result(d)
    assert r.schema_version == SCHEMA_VERSION and r.aborted and r.status == "aborted"
    assert [s.kind for s in r.steps] == ["lock", "step"]
    assert r.summary == V1["summary"] and r.steps[1].results["h1"].tables[0].rows == [["api"]]
    (d / "report.md").write_text("# Daily check (`daily`)\n\nold report\n")
    out = CliRunner().invoke(cli.app, ["history", "--runs-dir", str(tmp_path)], terminal_width=200)
    assert out.exit_code == 0 and V1["run_id"] in out.output and "aborted" in out.output and "12.3" in out.output
    out = CliRunner().invoke(cli.app, ["show", "abc123", "--runs-dir", str(tmp_path)], terminal_width=200)
    assert out.exit_code == 0 and "old report" in out.output


def test_a_newer_version_is_refused_not_misread(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({**V1, "schema_version": SCHEMA_VERSION + 1}))
    import pytest

    with pytest.raises(ValueError, match="newer"):
        load_result(tmp_path / "result.json")


def test_run_returns_the_masked_result(hosts, executors, tmp_path):
    rb = Runbook("t", "T", "", (Step("leak", lambda ctx: ctx.ok(f"value {SECRETS[0]}", {"k": SECRETS[1]})),))
    res = run(rb, hosts[:1], rb.params(), executors, runs_dir=tmp_path)
    [hr] = [s for s in res.steps if s.name == "leak"][0].results.values()
    assert SECRETS[0] not in hr.message and SECRETS[1] not in json.dumps(hr.data)
    assert res.model_dump(mode="json") == json.loads((tmp_path / res.run_id / "result.json").read_text())
    assert res.run_dir == str(tmp_path / res.run_id)
