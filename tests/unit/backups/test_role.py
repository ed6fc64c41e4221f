"""The backups role's rendered files: configuration accepted by the program, units, the command."""

from __future__ import annotations

import json

from deploys.backup_tool.config import Config
from deploys.contract.backups import CONFIG_FILE as CONFIG
from deploys.contract.backups import LIB_DIR
from deploys.roles.backups import config_data, unit_texts
from templates import render


def test_config_is_what_the_program_reads(make_settings, tmp_path):
    s = make_settings()
    data = config_data(s)
    cfg = Config.from_dict(json.loads(json.dumps(data)))
    assert cfg.db_exec[-3:] == ("exec", "-T", "postgres") and "orderops" in cfg.db_exec
    assert cfg.keep == {"daily": 7, "weekly": 4, "monthly": 6}
    assert cfg.recipients == s.backup_age_recipients and cfg.s3 is None
    assert cfg.attachments_volume == "orderops_attachments"
    creds = tmp_path / "c.json"
    creds.write_text(json.dumps({"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s3cret-value-not-in-config"}))
    creds.chmod(0o600)
    s3 = make_settings(backup_s3_bucket="orders-backups", backup_s3_credentials_file=str(creds), backup_s3_endpoint_url="http://10.0.0.2:5000")
    data = config_data(s3)
    assert "s3cret-value-not-in-config" not in json.dumps(data)
    cfg = Config.from_dict(data)
    assert cfg.s3.prefix == "app-1/" and cfg.s3.endpoint_url == "http://10.0.0.2:5000" and cfg.s3.sse == "AES256"


def test_units(make_settings):
    units = unit_texts(make_settings(backup_schedule="*-*-* 03:15:00"))
    service = units["orderops-backup.service"]
    assert "OnFailure=orderops-backup-notify@%n.service" in service
    assert f"ExecStart=/usr/bin/python3 -m orderops_backup --config {CONFIG} run" in service
    assert "EnvironmentFile" not in service  # credentials are read by the program from the root-only file
    assert "OnCalendar=*-*-* 03:15:00" in units["orderops-backup.timer"] and "Persistent=true" in units["orderops-backup.timer"]
    assert "notify --unit %i" in units["orderops-backup-notify@.service"]
    wrapper = render("backups/orderops-backup.sh.j2", lib_dir=LIB_DIR, config=CONFIG)
    assert wrapper.startswith("#!/bin/sh") and '"$@"' in wrapper
