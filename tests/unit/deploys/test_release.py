"""The release record (deploys/contract/release.py): parsing, the write command run for real, and
the one rule of which source names the running version, as the deploy applies it."""

from __future__ import annotations

import json
import subprocess

from deploys.contract import paths
from deploys.contract.release import ReleaseRecord, parse_release, running_version, write_command
from deploys.roles.order_stack import compose_text, effective_settings


def test_release_record_parsing():
    assert parse_release("") is None
    assert parse_release("not json") is None
    assert parse_release('{"other": 1}') is None
    assert parse_release('{"order_service": "bad ref!"}') is None
    record = parse_release('{"order_service": "a/b:2", "inventory_ref": "a/b:1", "future_key": 1}')
    assert (record.order_service, record.inventory_ref) == ("a/b:2", "a/b:1")


def test_write_command_writes_what_parse_reads(tmp_path, monkeypatch):
    record = ReleaseRecord(order_service="a/b:2", inventory_ref="a/b:1", previous="a/b:1", run_id="r1")
    # the command names the contract's paths; run it with those pointed at a temporary directory
    command = write_command(record).replace(paths.STATE_DIR, str(tmp_path / "state"))
    subprocess.run(["sh", "-c", command], check=True)
    text = (tmp_path / "state" / "release.json").read_text()
    assert parse_release(text) == record and json.loads(text)["run_id"] == "r1"
    assert (tmp_path / "state" / "release.json").stat().st_mode & 0o777 == 0o644


def test_running_version_names_the_source():
    rec = ReleaseRecord(order_service="a/b:2", inventory_ref="a/b:1", run_id="r1")
    assert running_version("a/b:1", None).source == "inventory"
    won = running_version("a/b:1", rec)
    assert (won.ref, won.source) == ("a/b:2", "release.json") and "r1" in won.reason
    moved = running_version("a/b:3", rec)
    assert (moved.ref, moved.source) == ("a/b:3", "inventory") and "moved" in moved.reason


def test_effective_settings_keeps_a_redeployed_version(make_settings):
    s = make_settings()
    inv_ref = s.images.order_service
    new = inv_ref.rsplit(":", 1)[0] + ":0.2.0"
    eff, version = effective_settings(s, ReleaseRecord(order_service=new, inventory_ref=inv_ref))
    assert eff.images.order_service == new and f"image: {new}" in compose_text(eff)
    assert version.source == "release.json"
    # the inventory moved on: a new deliberate release wins over the record
    assert effective_settings(s, ReleaseRecord(order_service=new, inventory_ref="other/ref:9"))[0] is s
    # no record (a broken one parses to none): the inventory's
    assert effective_settings(s, None) == (s, running_version(inv_ref, None))
