"""validated_config.tree on fake facts: changed files go to a staging copy, every check runs against
the staging copy, and only after the last check is the copy installed; nothing changes -> noop.
(The shell runs the yielded commands in order and stops at the first failing one, so a failing
check leaves ``dest`` as it was.)"""

import hashlib

import pytest
from pyinfra.facts.files import Sha256File

from deploys.operations import validated_config
from tests.unit.deploys.fake_host import run_op

FILES = {"prometheus/prometheus.yml": "global: {}\n", "loki.yaml": "auth_enabled: false\n"}


def _hashes(current: dict):
    return lambda path: current.get(path)


@pytest.mark.parametrize(("current", "uploaded"), [
    ({}, ["prometheus/prometheus.yml", "loki.yaml"]),
    ({"/c/loki.yaml": hashlib.sha256(FILES["loki.yaml"].encode()).hexdigest()}, ["prometheus/prometheus.yml"]),
])
def test_checks_run_on_the_staging_copy_before_it_is_installed(current, uploaded):
    commands, noops = run_op(validated_config.tree, {Sha256File: _hashes(current)}, dest="/c", files=FILES,
                             checks=["promtool check config {dir}/prometheus/prometheus.yml", "loki -verify-config {dir}/loki.yaml"])
    assert noops == []
    assert commands[0] == "rm -rf /c.staging && mkdir -p /c && cp -a /c /c.staging"
    assert [c for c in commands if c.startswith("upload ")] == [f"upload /c.staging/{p}" for p in uploaded]
    checks = [i for i, c in enumerate(commands) if c.startswith(("promtool", "loki"))]
    assert [commands[i] for i in checks] == ["promtool check config /c.staging/prometheus/prometheus.yml",
                                             "loki -verify-config /c.staging/loki.yaml"]
    install = commands.index("cp -a /c.staging/. /c/ && rm -rf /c.staging")
    assert install == len(commands) - 1 and install > max(checks)
    assert all(not c.startswith(("upload /c/", "cp -a /c.staging/.")) for c in commands[:checks[0]])


def test_nothing_changed_is_a_noop():
    current = {f"/c/{p}": hashlib.sha256(t.encode()).hexdigest() for p, t in FILES.items()}
    commands, noops = run_op(validated_config.tree, {Sha256File: _hashes(current)}, dest="/c", files=FILES,
                             checks=["false"])
    assert commands == [] and noops == ["/c: 2 files up to date"]
