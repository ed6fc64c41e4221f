"""Backups and restores on the local test host, real PostgreSQL in the order stack.

Full cycle: 10,000 orders (9,700 inserted in bulk, 300 through the API, which keeps its rate
limits), `orderops-backup now`, the data destroyed, `emergency-restore` of the latest backup,
identical counts and sample rows. Failure cases: database stopped, disk full (a 96 KiB tmpfs
mounted at the backup directory *inside the test host*, never this machine's disk), a
corrupted archive, a wrong key, missing S3 credentials, a restore target holding data; the
data-integrity runbook finding an injected violation.

The offsite tests use moto's S3 server mode in a container (``<prefix>-moto``) started by these
tests on the test hosts' Docker network, so the test host reaches it by IP; it runs moto from
this checkout's virtualenv (mounted read-only) on the local Python image (no image is pulled).
It is a stand-in for S3, named as such.
"""

from __future__ import annotations

import json
import os
import shlex
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from deploys.contract.backups import BACKUP_COMMAND, CONFIG_FILE, CREDENTIALS_FILE, SERVICE, TIMER
from deploys.contract.compose import COMPOSE_PROJECT, compose_command
from deploys.contract.paths import STACK_DIR
from deploys.contract.services import ATTACHMENTS_VOLUME, DB_NAME, DB_USER, volume_name
from tests.integration.conftest import ROOT, host_network, run_pyinfra, ssh, ssh_argv
from tests.integration.test_deploy import _admin_token
from tests.integration.test_runbooks import runbook

pytestmark = pytest.mark.integration

STATE = Path(os.environ.get("ORDEROPS_STATE_DIR", ROOT / ".orderops"))
IDENTITY = STATE / "keys" / "backup_age.key"
PREFIX = os.environ.get("ORDEROPS_HOST_PREFIX", "orderops")
COMPOSE = compose_command(COMPOSE_PROJECT, STACK_DIR)
BACKUP = f"sudo {BACKUP_COMMAND}"
BULK, VIA_API = 9_700, 300


def sql(data: dict, query: str, database: str = DB_NAME, check: bool = True) -> str:
    return ssh(data, f"sudo {COMPOSE} exec -T postgres psql -X -U {DB_USER} -d {database} -v ON_ERROR_STOP=1 -tA -c "
                     + shlex.quote(query), check=check).stdout.strip()


def backup_now(data: dict, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(data, f"{BACKUP} now", check=check)


def backup_ids(data: dict) -> list[str]:
    out = ssh(data, f"{BACKUP} list --json").stdout
    return [b["id"] for b in json.loads(out) if b["state"] == "valid"]


def prom(data: dict) -> str:
    return ssh(data, "cat /var/lib/prometheus/node-exporter/orderops_backup.prom", check=False).stdout


def wait_healthy(data: dict, service: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ssh(data, f"sudo {COMPOSE} ps --format '{{{{.Service}}}} {{{{.Health}}}}'", check=False).stdout
        if f"{service} healthy" in out:
            return
        time.sleep(2)
    raise AssertionError(f"{service} not healthy after {timeout} s")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("backup-runs")


def _api_orders(data: dict, n: int) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    token = _admin_token(data, ctx)
    for i in range(n):
        body = json.dumps({"customer": f"api-{i}", "currency": "EUR",
                           "lines": [{"sku": "API-1", "quantity": 2, "unit_price_minor": 450}]}).encode()
        req = urllib.request.Request(f"{data['probe_https_url']}/api/orders", data=body, method="POST", headers={
            "Content-Type": "application/json", "Host": data["domain"], "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            assert resp.status == 201


def _sample(data: dict) -> str:
    return sql(data, "SELECT o.id, o.customer, o.total_minor, o.status, o.version, count(l.id) FROM orders o "
                     "JOIN order_lines l ON l.order_id = o.id GROUP BY o.id ORDER BY o.id LIMIT 40")


def _pre_restore(data: dict) -> set[str]:
    """Databases kept by emergency-restore swaps (``<db>_pre_restore_<stamp>``)."""
    names = sql(data, "SELECT string_agg(datname, ',') FROM pg_database", database="postgres").split(",")
    return {n for n in names if n.startswith(f"{DB_NAME}_pre_restore_")}


def _counts(data: dict) -> dict[str, int]:
    return json.loads(ssh(data, f"{BACKUP} counts {DB_NAME}").stdout)


def test_installed_with_timer_and_backup_now_writes_metrics(app):
    assert TIMER in ssh(app, f"systemctl list-timers --all --no-legend {TIMER}").stdout
    assert ssh(app, f"sudo stat -c %a {CONFIG_FILE}").stdout.strip() == "600"
    manifest = json.loads(backup_now(app).stdout)
    assert manifest["id"] in backup_ids(app)
    assert 'orderops_backup_last_success_timestamp_seconds{kind="db"}' in prom(app)
    assert "orderops_backup_last_run_success 1" in prom(app)
    # the service ran with systemd's empty environment: same unit as the timer's
    assert ssh(app, f"systemctl show -p Result --value {SERVICE}").stdout.strip() == "success"


def test_full_cycle_10000_orders_restored_identically(app, runs_dir):
    sql(app, "TRUNCATE orders CASCADE")
    sql(app, "INSERT INTO orders (id, customer, currency, total_minor, status, owner_id) "
             f"SELECT gen_random_uuid(), 'bulk-' || g, 'EUR', 2 * 1250 + 300, 'pending', (SELECT id FROM users LIMIT 1) "
             f"FROM generate_series(1, {BULK}) g; "
             "INSERT INTO order_lines (order_id, sku, quantity, unit_price_minor) SELECT id, 'B-1', 2, 1250 FROM orders; "
             "INSERT INTO order_lines (order_id, sku, quantity, unit_price_minor) SELECT id, 'B-2', 1, 300 FROM orders")
    _api_orders(app, VIA_API)
    before = _counts(app)
    assert before["orders"] == BULK + VIA_API == 10_000
    sample = _sample(app)
    manifest = json.loads(backup_now(app).stdout)
    assert manifest["row_counts"] == before

    kept_before = _pre_restore(app)
    sql(app, "TRUNCATE orders CASCADE")  # the disaster
    assert _counts(app)["orders"] == 0
    proc, result = runbook("run", "emergency-restore", "-i", "inventories/local.py", "-p", "backup=latest",
                           "-p", f"identity={IDENTITY}", "--yes", runs_dir=runs_dir, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:]
    final = next(s for s in result["steps"] if s["name"] == "Start the API and compare with the manifest")["results"]
    (host_result,) = final.values()
    assert host_result["data"]["rto_seconds"] > 0 and host_result["data"]["backup"] == manifest["id"]
    assert _counts(app) == before
    assert _sample(app) == sample
    # this run's old database is dropped after the final check (one kept by an earlier, failed run stays)
    assert _pre_restore(app) <= kept_before
    wait_healthy(app, "api")
    report = next(runs_dir.glob(f"{result['run_id']}/report.md")).read_text()
    assert "AGE-SECRET-KEY" not in report and "RTO" in report


def test_restore_check_mode_and_no_volume_removed(app, runs_dir):
    proc, result = runbook("run", "emergency-restore", "-i", "inventories/local.py", "--check", runs_dir=runs_dir)
    assert proc.returncode == 0
    text = json.dumps(result)
    assert "would restore" in text and "would stop the api service" in text
    assert "down -v" not in (runs_dir / result["run_id"] / "events.jsonl").read_text()
    vols = ssh(app, "sudo docker volume ls -q").stdout.split()
    assert {volume_name(COMPOSE_PROJECT, v) for v in ("pgdata", ATTACHMENTS_VOLUME, "redisdata")} <= set(vols)


def test_restore_into_a_database_holding_data_is_refused(app):
    proc = subprocess.run(ssh_argv(app, f"{BACKUP} restore-db latest --into {DB_NAME}"),
                          input=IDENTITY.read_bytes(), capture_output=True, check=False, timeout=120)
    assert proc.returncode == 1 and b"refusing to restore into the live database" in proc.stderr
    assert _counts(app)["orders"] == 10_000


def test_database_stopped_fails_loudly_and_notifies(app):
    ids = backup_ids(app)
    ssh(app, f"sudo {COMPOSE} stop postgres")
    try:
        proc = backup_now(app, check=False)
        assert proc.returncode != 0
        journal = ssh(app, f"sudo journalctl -u {SERVICE} -n 30 -o cat --no-pager").stdout
        assert "orderops-backup: psql exited" in journal or "is not running" in journal, journal
        assert backup_ids(app) == ids
        assert ssh(app, "ls /var/backups/orderops | grep -c partial || true").stdout.strip() == "0"
        assert "orderops_backup_last_run_success 0" in prom(app)
        time.sleep(2)
        notify = ssh(app, "sudo journalctl -u 'orderops-backup-notify@*' -n 20 -o cat --no-pager").stdout
        assert "orderops-backup.service failed" in notify, notify
    finally:
        ssh(app, f"sudo {COMPOSE} start postgres")
        wait_healthy(app, "postgres")
        wait_healthy(app, "api")


def test_disk_full_leaves_no_backup_under_a_final_name(app):
    ids = backup_ids(app)
    ssh(app, "sudo mkdir -p /run/ob-keep && sudo cp -a /var/backups/orderops/. /run/ob-keep/ && "
             "sudo mount -t tmpfs -o size=96k,mode=0700 ob-full /var/backups/orderops")
    try:
        proc = backup_now(app, check=False)
        assert proc.returncode != 0
        journal = ssh(app, f"sudo journalctl -u {SERVICE} -n 30 -o cat --no-pager").stdout
        assert "No space left on device" in journal, journal
        assert ssh(app, "sudo ls -A /var/backups/orderops").stdout.split() in ([], [".lock"], [".lock", ".metrics.json"], [".metrics.json", ".lock"])
        assert "orderops_backup_last_run_success 0" in prom(app)
    finally:
        ssh(app, "sudo umount /var/backups/orderops && sudo rm -rf /run/ob-keep")
    assert backup_ids(app) == ids


def test_corrupted_archive_and_wrong_key_fail_the_drill(app, runs_dir, tmp_path):
    latest = backup_ids(app)[-1]
    f = f"/var/backups/orderops/{latest}/db.dump.zst.age"
    flip = f"sudo python3 -c \"import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=255; open(p,'wb').write(b)\" {f}"
    ssh(app, flip)
    try:
        proc, result = runbook("run", "restore-drill", "-i", "inventories/local.py", "-p", f"identity={IDENTITY}", runs_dir=runs_dir)
        assert proc.returncode == 1
        assert "SHA-256 differs" in json.dumps(result)
    finally:
        ssh(app, flip)  # the same flip restores the byte
    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    proc, result = runbook("run", "restore-drill", "-i", "inventories/local.py", "-p", f"identity={other}", runs_dir=runs_dir)
    assert proc.returncode == 1 and "age -d exited" in json.dumps(result)
    assert "orders_drill_" not in sql(app, "SELECT string_agg(datname, ',') FROM pg_database", database="postgres")
    proc, result = runbook("run", "restore-drill", "-i", "inventories/local.py", "-p", f"identity={IDENTITY}", runs_dir=runs_dir)
    assert proc.returncode == 0, json.dumps(result)[-2000:]
    assert _counts(app)["orders"] == 10_000  # production untouched


def test_data_integrity_names_the_broken_rows(app, runs_dir):
    proc, _ = runbook("run", "data-integrity", "-i", "inventories/local.py", runs_dir=runs_dir)
    assert proc.returncode == 0
    victim = sql(app, "SELECT id FROM orders ORDER BY id LIMIT 1")
    sql(app, f"UPDATE orders SET total_minor = total_minor + 1 WHERE id = '{victim}'")
    try:
        proc, result = runbook("run", "data-integrity", "-i", "inventories/local.py", runs_dir=runs_dir)
        assert proc.returncode == 1
        assert f"orders row {victim}" in json.dumps(result)
    finally:
        sql(app, f"UPDATE orders SET total_minor = total_minor - 1 WHERE id = '{victim}'")


@pytest.fixture(scope="module")
def moto(app):
    """moto's S3 server mode in a container on the test hosts' network (stand-in for S3)."""
    name = f"{PREFIX}-moto"
    venv = ROOT / ".venv"
    images = json.loads((STATE / "images.json").read_text())
    image = images.get("python") or images["order_service"]
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    site = next(venv.glob("lib/python3*/site-packages"))
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", host_network(app), "-v", f"{venv}:{venv}:ro", "-e", f"PYTHONPATH={site}",
                    "--entrypoint", "python3", image, "-m", "moto.server", "-H", "0.0.0.0", "-p", "5000"],
                   check=True, capture_output=True)
    try:
        ip = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                            check=True, capture_output=True, text=True).stdout.strip()
        endpoint = f"http://{ip}:5000"
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        for _ in range(100):
            try:
                s3.create_bucket(Bucket="orderops-backups")
                break
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.3)
        yield endpoint, s3
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_offsite_copy_and_missing_credentials(app, moto, tmp_path):
    endpoint, s3 = moto
    creds = tmp_path / "s3.json"
    creds.write_text(json.dumps({"aws_access_key_id": "test", "aws_secret_access_key": "test-secret-for-moto"}))
    creds.chmod(0o600)
    extra = ["--data", "backup_s3_bucket=orderops-backups", "--data", f"backup_s3_endpoint_url={endpoint}",
             "--data", f"backup_s3_credentials_file={creds}"]
    try:
        result = run_pyinfra(*extra)
        assert result.returncode == 0, result.output[-3000:]
        assert "test-secret-for-moto" not in result.output
        assert ssh(app, f"sudo stat -c '%a %U' {CREDENTIALS_FILE}").stdout.strip() == "600 root"
        manifest = json.loads(backup_now(app).stdout)
        head = s3.head_object(Bucket="orderops-backups", Key=f"{_prefix(app)}{manifest['id']}/db.dump.zst.age")
        assert head["Metadata"]["sha256"] == manifest["files"]["db"]["sha256"] and head["ServerSideEncryption"] == "AES256"
        assert 'kind="offsite"' in prom(app)
        ssh(app, f"sudo mv {CREDENTIALS_FILE} /root/s3.moved")
        proc = backup_now(app, check=False)
        assert proc.returncode != 0
        journal = ssh(app, f"sudo journalctl -u {SERVICE} -n 20 -o cat --no-pager").stdout
        assert f"S3 credentials file {CREDENTIALS_FILE} is missing" in journal
        ssh(app, f"sudo mv /root/s3.moved {CREDENTIALS_FILE}")
    finally:
        result = run_pyinfra()  # back to the inventory's state (no bucket)
        assert result.returncode == 0, result.output[-3000:]


def _prefix(app) -> str:
    # the role's default prefix is "<inventory host name>/"
    import runpy

    ns = runpy.run_path(str(ROOT / "inventories" / "local.py"))
    return f"{ns['app'][0][0]}/"
