"""Host data of the runbook tooling (controller role): defaults and validation."""

import pytest

from deploys.contract.images import check_immutable as check_image_ref
from inventories.schema import InventoryError
from deploys.contract.paths import RUNBOOK_DIR


def test_runbook_defaults(make_settings):
    s = make_settings(groups=("controller",))
    assert s.runbook_schedules == {"daily": "*-*-* 06:00:00", "weekly": "Sun *-*-* 04:00:00", "monthly": "Sun *-*-01..07 05:00:00"}
    assert s.runbook_dir == RUNBOOK_DIR
    assert s.runbook_textfile_dir == "/var/lib/prometheus/node-exporter"
    assert s.runbook_webhook_url is None and s.controller_ssh_key is None
    assert s.runbook_schedule_args == {}


def test_adding_a_schedule_is_data(make_settings):
    s = make_settings(runbook_schedules={"daily": "*-*-* 06:00:00", "diagnose": "Mon *-*-* 07:00"},
                      runbook_schedule_args={"daily": ["-p", "drift=false"]}, runbook_webhook_url="http://127.0.0.1:9000/hook")
    assert s.runbook_schedules["diagnose"] == "Mon *-*-* 07:00"
    assert s.runbook_schedule_args["daily"] == ["-p", "drift=false"]


@pytest.mark.parametrize(("override", "field"), [
    ({"runbook_schedules": {"Daily!": "daily"}}, "runbook_schedules"),
    ({"runbook_schedules": {"daily": "daily; rm -rf /"}}, "runbook_schedules"),
    ({"runbook_schedules": {"daily": ""}}, "runbook_schedules"),
    ({"runbook_schedules": {"dialy": "daily"}}, "runbook_schedules"),
    ({"runbook_schedule_args": {"daily": ["$(reboot)"]}}, "runbook_schedule_args"),
    ({"runbook_webhook_url": "ftp://x"}, "runbook_webhook_url"),
    ({"runbook_webhook_url": "http://x/a b"}, "runbook_webhook_url"),
    ({"runbook_dir": "relative"}, "runbook_dir"),
    ({"runbook_textfile_dir": "/"}, "runbook_textfile_dir"),
    ({"runbook_schedule": {}}, "runbook_schedule"),
])
def test_bad_runbook_data_names_the_field(make_settings, override, field):
    with pytest.raises(InventoryError) as e:
        make_settings(**override)
    assert e.value.field.split(".")[0] == field


def test_check_image_ref_is_public():
    assert check_image_ref("a/b:1.0") == "a/b:1.0"
    with pytest.raises(ValueError):
        check_image_ref("a/b:latest")
