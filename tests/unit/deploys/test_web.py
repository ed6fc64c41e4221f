"""Front-end releases: the fact parser, the decision (data cases), and the switch/prune commands run for real with sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploys.facts.web import WebReleases, parse_web_releases
from deploys.operations.web import manifest_paths, plan, prune_command, switch_command


def sh(command) -> None:
    subprocess.run(["sh", "-c", command.get_raw_value()], check=True)


def test_parse_fact_output():
    lines = ["current releases/b", "previous ", "release 100 a", "release 200 b", "release x bad", "noise"]
    assert parse_web_releases(lines) == {"current": "b", "previous": None, "releases": {"a": 100, "b": 200}}
    assert parse_web_releases(["current /elsewhere/x"])["current"] is None


def test_fact_command_reads_a_real_tree(tmp_path):
    root = tmp_path / "web root"
    for rid in ("a", "b"):
        (root / "releases" / rid).mkdir(parents=True)
        (root / "releases" / rid / "RELEASE").write_text(rid)
    (root / "releases" / ".c.part").mkdir()
    (root / "current").symlink_to("releases/b")
    out = subprocess.run(["sh", "-c", WebReleases().command(str(root)).get_raw_value()], capture_output=True, text=True, check=True)
    facts = parse_web_releases(out.stdout.splitlines())
    assert facts["current"] == "b" and set(facts["releases"]) == {"a", "b"}
    missing = subprocess.run(["sh", "-c", WebReleases().command(str(tmp_path / "none")).get_raw_value()],
                             capture_output=True, text=True, check=True)
    assert missing.stdout == ""


PLAN_CASES = [
    # (name, facts, wanted, keep, expected)
    ("first deploy", {"current": None, "previous": None, "releases": {}}, "n", 3,
     {"upload": True, "switch": True, "previous": None, "prune": []}),
    ("already current: nothing", {"current": "n", "previous": "o", "releases": {"n": 2, "o": 1}}, "n", 3,
     {"upload": False, "switch": False, "previous": "o", "prune": []}),
    ("new release: old current becomes previous", {"current": "o", "previous": None, "releases": {"o": 1}}, "n", 3,
     {"upload": True, "switch": True, "previous": "o", "prune": []}),
    ("rollback to a kept release: no upload", {"current": "n", "previous": "o", "releases": {"n": 2, "o": 1}}, "o", 3,
     {"upload": False, "switch": True, "previous": "n", "prune": []}),
    ("prune oldest beyond keep; the old current stays as previous", {"current": "c", "previous": "b",
     "releases": {"a": 1, "b": 2, "c": 3}}, "n", 2,
     {"upload": True, "switch": True, "previous": "c", "prune": ["b", "a"]}),
    ("interrupted switch (current missing from releases) is redone", {"current": "n", "previous": None, "releases": {}},
     "n", 3, {"upload": True, "switch": True, "previous": None, "prune": []}),
]


@pytest.mark.parametrize(("name", "facts", "wanted", "keep", "expected"), PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan(name, facts, wanted, keep, expected):
    assert plan(facts, wanted, keep) == expected


def test_switch_and_prune_on_a_real_tree(tmp_path):
    root = tmp_path / "web"
    for rid in ("a", "b", "c"):
        (root / "releases" / rid / "site").mkdir(parents=True)
        (root / "releases" / rid / "site" / "index.html").write_text(rid)
    (root / "releases" / ".d.part").mkdir()
    sh(switch_command(str(root), "a", None))
    assert (root / "current" / "site" / "index.html").read_text() == "a"
    sh(switch_command(str(root), "b", "a"))
    assert (root / "current" / "site" / "index.html").read_text() == "b"
    assert (root / "previous" / "site" / "index.html").read_text() == "a"
    assert str((root / "current").readlink()) == "releases/b"  # relative: valid inside the nginx container too
    sh(prune_command(str(root), ["c"]))
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["a", "b"]


def test_manifest_paths_refuse_escapes(tmp_path):
    good = "0" * 64 + "  site/index.html\n"
    (tmp_path / "MANIFEST").write_text(good)
    assert manifest_paths(tmp_path) == ["site/index.html"]
    (tmp_path / "MANIFEST").write_text(good + "0" * 64 + "  ../etc/passwd\n")
    with pytest.raises(ValueError, match="bad line"):
        manifest_paths(tmp_path)
