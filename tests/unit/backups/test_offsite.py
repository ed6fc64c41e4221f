"""The offsite copy against moto's S3 *server mode* (a real HTTP endpoint, started by this test
as a subprocess on 127.0.0.1, with IAM authentication switched on so wrong keys are refused):
upload with SSE and SHA-256 metadata, multipart, aborting unfinished uploads, retention on the
bucket, fetching a backup back, and missing/wrong credentials failing loudly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from deploys.backup_tool import backup as backup_mod
from deploys.backup_tool import restore
from deploys.backup_tool.config import S3Config
from deploys.backup_tool.errors import BackupError
from deploys.backup_tool.manifest import list_local
from deploys.backup_tool.offsite import Offsite
from tests.support.postgres import free_port

from .conftest import make_config


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory):
    """``(endpoint, {"aws_access_key_id", "aws_secret_access_key"})`` of an authenticated moto server."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}  # the IAM bootstrap below; then keys are checked
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="boot", aws_secret_access_key="boot")
        for _ in range(100):
            try:
                iam.create_user(UserName="backup")
                break
            except Exception:  # noqa: BLE001 - server still starting
                time.sleep(0.1)
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(Bucket="backups")
        yield endpoint, creds
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _s3cfg(tmp_path, endpoint, creds, prefix, **over) -> S3Config:
    cred_file = tmp_path / "s3.json"
    cred_file.write_text(json.dumps(creds))
    cred_file.chmod(0o600)
    return S3Config(bucket="backups", credentials_file=str(cred_file), prefix=prefix, endpoint_url=endpoint,
                    multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, **over)


def _client(endpoint, creds):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)


def test_backup_goes_offsite_with_sse_checksum_and_multipart(pg, orders_db, age_key, tmp_path, moto_s3):
    endpoint, creds = moto_s3
    identity, public = age_key
    att = tmp_path / "att"
    att.mkdir()
    (att / "big.bin").write_bytes(os.urandom(7 * 1024 * 1024))  # incompressible: > 5 MiB encrypted -> multipart
    s3 = _s3cfg(tmp_path, endpoint, creds, "t1/")
    cfg = make_config(pg, orders_db, tmp_path / "backups", public, attachments_dir=att, s3=s3)
    client = _client(endpoint, creds)
    # a dead earlier run's unfinished upload is aborted
    client.create_multipart_upload(Bucket="backups", Key="t1/20200101T000000Z/db.dump.zst.age")

    manifest = backup_mod.run_backup(cfg, log=lambda m: None)
    assert client.list_multipart_uploads(Bucket="backups", Prefix="t1/").get("Uploads", []) == []
    for entry in manifest["files"].values():
        head = client.head_object(Bucket="backups", Key=f"t1/{manifest['id']}/{entry['name']}")
        assert head["Metadata"]["sha256"] == entry["sha256"]
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == entry["bytes"]
    big = client.head_object(Bucket="backups", Key=f"t1/{manifest['id']}/attachments.tar.zst.age")
    assert big["ETag"].strip('"').endswith("-2")  # two parts
    assert [b.state for b in Offsite(s3).list()] == ["valid"]
    assert "orderops_backup_last_success_timestamp_seconds{kind=\"offsite\"}" in (Path(cfg.textfile_dir) / "orderops_backup.prom").read_text()

    # lost locally: restore fetches it from the bucket and checks it
    import shutil

    shutil.rmtree(Path(cfg.backup_dir) / manifest["id"])
    info = restore.resolve(cfg, "latest", log=lambda m: None)
    assert info.id == manifest["id"] and info.valid
    restore.restore_db(cfg, info, identity, f"{orders_db}_from_s3", jobs=1)
    assert restore.count_rows(cfg, f"{orders_db}_from_s3", ["orders"]) == {"orders": 300}


def test_bucket_retention_and_invalid_objects(pg, orders_db, age_key, tmp_path, moto_s3):
    endpoint, creds = moto_s3
    _, public = age_key
    s3 = _s3cfg(tmp_path, endpoint, creds, "t2/")
    cfg = make_config(pg, orders_db, tmp_path / "backups", public, s3=s3, keep={"daily": 2, "weekly": 0, "monthly": 0})
    start = datetime(2026, 11, 1, 2, 30, tzinfo=timezone.utc)
    ids = [backup_mod.run_backup(cfg, now=start + timedelta(days=d), log=lambda m: None)["id"] for d in range(4)]
    client = _client(endpoint, creds)
    # a copy whose db object lost its checksum metadata does not count
    key = f"t2/{ids[2]}/db.dump.zst.age"
    client.copy_object(Bucket="backups", Key=key, CopySource={"Bucket": "backups", "Key": key},
                       Metadata={"sha256": "0" * 64}, MetadataDirective="REPLACE")
    found = {b.id: b.state for b in Offsite(s3).list()}
    assert found == {ids[2]: "corrupt", ids[3]: "valid"}
    assert [b.id for b in list_local(Path(cfg.backup_dir))] == ids[2:]


def test_missing_and_wrong_credentials_fail_before_the_dump(pg, orders_db, age_key, tmp_path, moto_s3):
    endpoint, creds = moto_s3
    _, public = age_key
    missing = S3Config(bucket="backups", credentials_file=str(tmp_path / "nope.json"), endpoint_url=endpoint)
    cfg = make_config(pg, orders_db, tmp_path / "backups", public, s3=missing)
    with pytest.raises(BackupError, match="credentials file .* is missing"):
        backup_mod.run_backup(cfg, log=lambda m: None)
    wrong = _s3cfg(tmp_path, endpoint, {**creds, "aws_secret_access_key": "wrong" * 8}, "t3/")
    cfg = make_config(pg, orders_db, tmp_path / "backups", public, s3=wrong)
    with pytest.raises(BackupError, match="S3 access to bucket backups failed: 403"):
        backup_mod.run_backup(cfg, log=lambda m: None)
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps(creds))
    loose.chmod(0o644)
    with pytest.raises(BackupError, match="must be 0600"):
        Offsite(S3Config(bucket="backups", credentials_file=str(loose), endpoint_url=endpoint))
    assert list_local(Path(cfg.backup_dir)) == []  # nothing dumped
    assert "orderops_backup_last_run_success 0" in (Path(cfg.textfile_dir) / "orderops_backup.prom").read_text()
