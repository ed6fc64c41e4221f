"""The runbook registry and its names as data (runbooks/library/names.txt) agree, and the
inventory refuses a schedule for a runbook that does not exist with one clear error."""

import pytest

from inventories.schema import InventoryError, runbook_names
from runbooks.library import RUNBOOKS, all_runbooks


def test_names_file_lists_exactly_the_registered_host_runbooks():
    hosts = [rb.name for rb in all_runbooks() if rb.environment == "hosts"]
    assert sorted(runbook_names()) == hosts == ["backup", "capacity", "daily", "data-integrity", "diagnose", "emergency-redeploy",
                                                "emergency-restart", "emergency-restore", "monthly", "restore-drill", "weekly"]
    assert [rb.name for rb in all_runbooks()] == sorted(RUNBOOKS)
    aws = [rb.name for rb in all_runbooks() if rb.environment == "aws"]
    assert aws == ["aws-backup", "aws-daily", "aws-emergency", "aws-import-backup", "aws-restore"]  # never scheduled from a host


def test_a_schedule_for_an_unknown_runbook_is_an_inventory_error(make_settings):
    with pytest.raises(InventoryError) as e:
        make_settings(groups=("controller",), runbook_schedules={"dialy": "*-*-* 06:00:00"})
    assert e.value.field == "runbook_schedules"
    assert str(e.value) == ("inventory error: host 'app-1': runbook_schedules: unknown runbook 'dialy'; "
                            "known: backup, capacity, daily, data-integrity, diagnose, emergency-redeploy, emergency-restart, emergency-restore, "
                            "monthly, restore-drill, weekly")
