"""Backup benchmark: the backup program's pipe vs raw ``pg_dump`` / ``pg_restore``, side by side.

    .venv/bin/python benchmarks/bench_backup.py        # ~5 minutes on 2 cores (BENCH_ORDERS=1000000)

Starts its own PostgreSQL 15 (Debian's binaries, tests/support/postgres.py), creates the order
service's tables (SQLAlchemy metadata) and fills ``BENCH_ORDERS`` orders (default 1,000,000)
with two lines each and one status transition for every other order, then measures in one run:

- raw dump: ``pg_dump -Fc -Z0 > /dev/null`` (and to a file, for its size and the raw restore);
- the backup program's database backup (``deploys/backup_tool/backup.py create_backup``:
  snapshot session + counts, dump, ``pg_restore --list`` check, compression, ``age``,
  SHA-256, fsync, rename) for each compression (:data:`VARIANTS`): ``zstd`` at levels 1 and 3 (``-Z0 | zstd -N -T2``)
  and ``gzip`` (``-Z1`` inside pg_dump);
- the upload of the zstd backup to moto's S3 server on loopback, measured apart;
- raw restore: ``pg_restore -j2`` of the raw dump file into an empty database;
- the program's restore (``restore_db``: decrypt, decompress, stage, ``pg_restore -j2``) of
  each backup, and the streaming single-job restore of the zstd one.

Each figure is the minimum of ``BENCH_REPEAT`` (2) runs, raw and program interleaved.
Prints wall times, ratios against the raw figures (targets: backup <= 1.3x, restore <= 1.2x)
and sizes against the raw dump's. Client and server share the machine's cores, as on the
database host. Not a test: nothing is gated. ``BENCH_KEEP=1`` keeps the temporary directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from deploys.backup_tool import restore  # noqa: E402
from deploys.backup_tool.backup import create_backup  # noqa: E402
from deploys.backup_tool.config import Config, S3Config  # noqa: E402
from deploys.backup_tool.manifest import inspect_local  # noqa: E402
from order_service.models import Base  # noqa: E402
from tests.support.postgres import local_postgres  # noqa: E402

ORDERS = int(os.environ.get("BENCH_ORDERS", "1000000"))
#: each figure is the minimum of this many runs, raw and program interleaved (the machine is shared)
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
PASSWORD = "bench-backup-password"
#: the compressions compared: name -> (Config.compression, Config.zstd_level)
VARIANTS = {"zstd-1": ("zstd", 1), "zstd-3": ("zstd", 3), "gzip": ("gzip", 3)}
#: the inventory default (inventories/schema.py backup_compression / backup_zstd_level)
DEFAULT = "zstd-1"


def timed(fn):
    t0 = time.monotonic()
    result = fn()
    return time.monotonic() - t0, result


def run(argv, env, stdout=subprocess.DEVNULL):
    proc = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode()[-500:]}")


def fill(port: int) -> None:
    engine = create_engine(f"postgresql+psycopg://orderops:{PASSWORD}@127.0.0.1:{port}/orders")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('0002')"))
        conn.execute(text("INSERT INTO users (id, email, hashed_password, role) VALUES (gen_random_uuid(), 'bench@x.test', 'x', 'admin')"))
        conn.execute(text(
            "INSERT INTO orders (id, customer, currency, total_minor, status, owner_id, created_at) "
            "SELECT gen_random_uuid(), 'customer-' || g, 'EUR', 2 * 1250 + 799, CASE WHEN g % 2 = 0 THEN 'paid' ELSE 'pending' END::order_status, "
            "(SELECT id FROM users LIMIT 1), now() - make_interval(secs => g) FROM generate_series(1, :n) g"), {"n": ORDERS})
        conn.execute(text("INSERT INTO order_lines (order_id, sku, quantity, unit_price_minor) "
                          "SELECT id, 'SKU-' || (abs(hashtext(id::text)) % 5000), 2, 1250 FROM orders"))
        conn.execute(text("INSERT INTO order_lines (order_id, sku, quantity, unit_price_minor) SELECT id, 'SHIP', 1, 799 FROM orders"))
        conn.execute(text("INSERT INTO order_transitions (order_id, from_status, to_status, actor_email) "
                          "SELECT id, 'pending', 'paid', 'bench@x.test' FROM orders WHERE status = 'paid'"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def main() -> int:
    for tool in ("age", "age-keygen", "zstd", "pg_dump", "pg_restore"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: make prereqs (tools/packages.txt)")
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    os.chmod(work, 0o755)
    try:
        subprocess.run(["age-keygen", "-o", str(work / "key")], check=True, capture_output=True)
        identity = (work / "key").read_bytes()
        public = next(ln.split(": ", 1)[1] for ln in identity.decode().splitlines() if ln.startswith("# public key: "))
        with local_postgres("orderops", PASSWORD) as pg:
            env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGPASSWORD": PASSWORD, "PGUSER": "orderops"}
            db_exec = ("env", "PGHOST=127.0.0.1", f"PGPORT={pg.port}", f"PGPASSWORD={PASSWORD}")
            pg.create_database("orders")
            t_fill, _ = timed(lambda: fill(pg.port))
            print(f"filled {ORDERS} orders in {t_fill:.1f} s", flush=True)

            raw_file = work / "raw.dump"
            raw_null, raw_to_file = [], []
            backups: dict[str, tuple] = {}
            times: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for r in range(REPEAT):
                raw_null.append(timed(lambda: run(["pg_dump", "-d", "orders", "-Fc", "-Z0"], env))[0])
                with open(raw_file, "wb") as f:
                    raw_to_file.append(timed(lambda: run(["pg_dump", "-d", "orders", "-Fc", "-Z0"], env, stdout=f))[0])
                for name, (compression, level) in VARIANTS.items():
                    cfg = Config(host="bench", db_exec=db_exec, backup_dir=str(work / f"backups-{name}"),
                                 recipients=(public,), compression=compression, zstd_level=level)
                    Path(cfg.backup_dir).mkdir(exist_ok=True)
                    if name in backups:
                        shutil.rmtree(backups[name][1])
                    time.sleep(1.1)  # backup ids are per second
                    t, (path, manifest, _) = timed(lambda: create_backup(cfg, log=lambda m: None))
                    backups[name] = (cfg, path, manifest)
                    times[name].append(t)
            t_raw_null = min(raw_null)
            raw_size = raw_file.stat().st_size
            print(f"raw pg_dump -Fc -Z0 > /dev/null: {t_raw_null:.2f} s (runs {', '.join(f'{t:.1f}' for t in raw_null)}; "
                  f"to a file {min(raw_to_file):.2f} s, {raw_size} bytes)", flush=True)
            for name, (cfg, path, manifest) in backups.items():
                t = min(times[name])
                size = manifest["files"]["db"]["bytes"]
                print(f"backup {name}: {t:.2f} s = {t / t_raw_null:.2f}x raw (target <= 1.3; runs "
                      f"{', '.join(f'{x:.1f}' for x in times[name])}); size {size} = {size / raw_size:.3f} of the raw dump", flush=True)

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            try:
                import boto3

                from deploys.backup_tool.offsite import Offsite

                host, port = moto.get_host_and_port()
                endpoint = f"http://{host}:{port}"
                creds = work / "s3.json"
                creds.write_text('{"aws_access_key_id": "bench", "aws_secret_access_key": "bench-secret"}')
                creds.chmod(0o600)
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                             aws_secret_access_key="bench-secret").create_bucket(Bucket="bench")
                off = Offsite(S3Config(bucket="bench", credentials_file=str(creds), endpoint_url=endpoint))
                cfg, path, manifest = backups[DEFAULT]
                t_up, sent = timed(lambda: off.upload(path, manifest))
                print(f"upload ({DEFAULT} backup, moto on loopback, apart): {t_up:.2f} s for {sent} bytes", flush=True)
            finally:
                moto.stop()

            variants = [*((name, 2) for name in VARIANTS), (DEFAULT, 1)]
            raw_restore: list[float] = []
            ours: dict[tuple, list[float]] = {v: [] for v in variants}
            for r in range(REPEAT):
                pg.create_database("raw_restore")
                raw_restore.append(timed(lambda: run(["pg_restore", "-j2", "-d", "raw_restore", "--exit-on-error", str(raw_file)], env))[0])
                pg.admin().execute('DROP DATABASE "raw_restore"')
                for name, jobs in variants:
                    cfg, path, manifest = backups[name]
                    info = inspect_local(path)
                    target = f"r_{name.replace('-', '_')}_{jobs}"
                    t, _ = timed(lambda: restore.restore_db(cfg, info, identity, target, jobs=jobs))
                    counts = restore.count_rows(cfg, target, cfg.key_tables)
                    assert restore.compare_counts(manifest["row_counts"], counts) == [], counts
                    ours[(name, jobs)].append(t)
                    pg.admin().execute(f'DROP DATABASE "{target}"')
            t_raw_restore = min(raw_restore)
            print(f"raw pg_restore -j2: {t_raw_restore:.2f} s (runs {', '.join(f'{t:.1f}' for t in raw_restore)})", flush=True)
            for (name, jobs), ts in ours.items():
                t = min(ts)
                print(f"restore {name} jobs={jobs}: {t:.2f} s = {t / t_raw_restore:.2f}x raw (target <= 1.2; runs "
                      f"{', '.join(f'{x:.1f}' for x in ts)})", flush=True)
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
