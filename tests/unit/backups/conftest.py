"""Fixtures of the backup-program tests: a real PostgreSQL 15 (Debian's binaries, started by the
tests), the order service's tables filled with orders, and a real age key pair (``age-keygen``).

The backup program reaches this server with ``db_exec = env PGHOST=... PGPORT=... PGPASSWORD=...``
(the production prefix is ``docker compose exec -T postgres``; the same pipeline code runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from deploys.backup_tool.config import Config
from order_service.models import Base
from tests.support.postgres import local_postgres

PASSWORD = "backup-test-password-1"


@pytest.fixture(scope="session")
def pg():
    for tool in ("age", "age-keygen", "zstd", "pg_dump"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: `make prereqs` installs it (tools/packages.txt)")
    with local_postgres("orderops", PASSWORD) as server:
        yield server


def fill(server, database: str, orders: int) -> None:
    """The service's tables (SQLAlchemy metadata) + alembic_version, ``orders`` orders with 2 lines each."""
    engine = create_engine(f"postgresql+psycopg://orderops:{PASSWORD}@127.0.0.1:{server.port}/{database}")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0002')"))
        user = uuid.uuid4()
        conn.execute(text("INSERT INTO users (id, email, hashed_password, role) VALUES (:id, 'a@b.test', 'x', 'admin')"), {"id": user})
        conn.execute(text(
            "INSERT INTO orders (id, customer, currency, total_minor, status, owner_id) "
            "SELECT gen_random_uuid(), 'c' || g, 'EUR', 3000, 'paid', :u FROM generate_series(1, :n) g"), {"u": user, "n": orders})
        conn.execute(text("INSERT INTO order_lines (order_id, sku, quantity, unit_price_minor) "
                          "SELECT id, 'A-' || k, 1, 1500 FROM orders, generate_series(1, 2) k"))
        conn.execute(text("INSERT INTO order_transitions (order_id, from_status, to_status, actor_email) "
                          "SELECT id, 'pending', 'paid', 'a@b.test' FROM orders"))
    engine.dispose()


@pytest.fixture(scope="session")
def age_key(tmp_path_factory):
    """``(identity bytes, public key)`` of a fresh age key pair."""
    d = tmp_path_factory.mktemp("age")
    subprocess.run(["age-keygen", "-o", str(d / "key")], check=True, capture_output=True)
    identity = (d / "key").read_bytes()
    public = next(line.split(": ", 1)[1] for line in identity.decode().splitlines() if line.startswith("# public key: "))
    return identity, public


def make_config(server, database: str, backup_dir: Path, recipient: str, **over) -> Config:
    db_exec = ["env", "PGHOST=127.0.0.1", f"PGPORT={over.pop('port', server.port)}", f"PGPASSWORD={PASSWORD}"]
    att = over.pop("attachments_dir", None)
    return Config(host="unit", db_exec=tuple(db_exec), backup_dir=str(backup_dir), recipients=(recipient,),
                  db_name=database, attachments_dir=str(att) if att else None, textfile_dir=str(backup_dir.parent / "textfile"),
                  **over)


@pytest.fixture
def orders_db(pg, request):
    name = f"orders_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    fill(pg, name, getattr(request, "param", 300))
    yield name
    with pg.admin() as conn:
        for (db,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)).fetchall():
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')


@pytest.fixture
def attachments(tmp_path):
    d = tmp_path / "attachments"
    (d / "ab").mkdir(parents=True)
    (d / "ab" / "invoice.pdf").write_bytes(os.urandom(5000))
    (d / "note.txt").write_text("delivery note\n")
    return d
