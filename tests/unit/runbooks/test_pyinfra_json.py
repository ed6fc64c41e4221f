"""Drift and deploy results from pyinfra's own ``--json`` output, produced by the real pyinfra on
its ``@local`` connector (a temporary directory, no test host): a pyinfra upgrade that changes
the JSON fails here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from runbooks.executors.pyinfra_exec import deploy_result, parse_run_json

DEPLOY = textwrap.dedent("""
    import os
    from pyinfra.operations import files, server

    d = os.environ["ORDEROPS_TEST_DIR"]
    made = files.file(name="make the marker", path=f"{d}/marker")
    files.file(name="already there", path=f"{d}/exists")
    server.shell(name="after a change", commands=["true"], _if=made.did_change)
    if os.environ.get("ORDEROPS_TEST_FAIL"):
        server.shell(name="a failing command", commands=["echo 'orderops: the service is unhealthy' >&2; exit 3"])
""")


@pytest.fixture
def local_deploy(tmp_path):
    (tmp_path / "exists").touch()
    (tmp_path / "deploy.py").write_text(DEPLOY)

    def run(*args: str, fail: bool = False) -> subprocess.CompletedProcess:
        env = {**os.environ, "ORDEROPS_TEST_DIR": str(tmp_path), **({"ORDEROPS_TEST_FAIL": "1"} if fail else {})}
        return subprocess.run([sys.executable, "-m", "pyinfra", "@local", "deploy.py", "--json", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120, check=False)

    return run


def test_dry_json_names_the_operations_that_would_change(local_deploy, tmp_path):
    proc = local_deploy("--dry")
    result = deploy_result("@local", proc.returncode, proc.stdout, proc.stderr, dry=True)
    assert result.ok and result.changes == ["make the marker"]  # conditional "after a change" is no drift
    assert not (tmp_path / "marker").exists()


def test_executed_json_lists_changes_then_none(local_deploy, tmp_path):
    proc = local_deploy("-y")
    first = deploy_result("@local", proc.returncode, proc.stdout, proc.stderr, dry=False)
    assert first.ok and "make the marker" in first.changes and "already there" not in first.changes
    proc = local_deploy("-y")
    again = deploy_result("@local", proc.returncode, proc.stdout, proc.stderr, dry=False)
    assert again.ok and again.changes == []


def test_a_failed_operation_is_reported_with_what_it_said(local_deploy):
    # the only host failed: pyinfra stops ("no hosts remaining") before printing its JSON
    proc = local_deploy("-y", fail=True)
    result = deploy_result("@local", proc.returncode, proc.stdout, proc.stderr, dry=False)
    assert not result.ok and proc.returncode != 0
    assert any("orderops: the service is unhealthy" in e for e in result.errors), result.errors


def test_failed_operations_in_the_json_are_named():
    payload = ('{"plan": [], "results": {"operations": [{"name": "compose up", "success": [], "error": ["h1"], '
               '"no_change": []}], "totals": {}, "failed_hosts": ["h1"]}}\n')
    result = deploy_result("h1", 1, payload, "[h1] orderops: api unhealthy\n", dry=False)
    assert not result.ok and result.errors == ["compose up", "[h1] orderops: api unhealthy"]


def test_output_without_json_is_a_failure_not_no_drift():
    assert parse_run_json("--> Loading\nnot json\n") is None
    result = deploy_result("h1", 0, "some text\n", "", dry=True)
    assert not result.ok and result.changes == []
    lines = 'print from the deploy {not json}\n{"plan": [{"name": "x", "hosts_with_change": ["h1"]}], "results": null}\n'
    assert deploy_result("h1", 0, lines, "", dry=True).changes == ["x"]
