"""``orderops-aws import-backup``: a real single-host backup into the environment's "RDS" database.

The AWS side is moto's server mode (the environment applied by the stack as in the other modules):
the RDS instance, its endpoint and the migrate task definition come from it through boto3. moto runs
no database, so the instance's endpoint is never connected to: the import's ``via`` seam (in
production the local end of a tunnel to the instance) points at a throw-away PostgreSQL 15 that
accepts TLS connections only (``hostssl``, as ``rds.force_ssl=1``) and stands in for the instance.
moto's CloudFormation skips ``AWS::SecretsManager::Secret`` (tests/unit/aws/test_environment_moto.py),
so the fixture does what CloudFormation does on AWS: it creates the ``<name>/postgres-password``
secret through the Secrets Manager API and registers the migrate task definition revision that
references it by ARN (recorded as the release's, as ``orderops-aws release`` records it).

The source is a second throw-away PostgreSQL (the single host's) filled with the service's tables;
the backup is made by the backup tooling (``run_backup``: pg_dump | zstd | age) with a real age key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from deploys.aws import environment
from deploys.aws.import_backup import ImportFailed, import_backup, params_from
from deploys.backup_tool import backup as backup_mod
from deploys.contract.services import DB_NAME, DB_USER
from tests.support.postgres import local_postgres
from tests.unit.backups.conftest import PASSWORD, fill, make_config

RDS_PASSWORD = "rds-master-password-7"


@pytest.fixture(scope="module")
def rds_pg():
    """The stand-in of the RDS instance: TLS only, the master user of the stack (``orderops``), and
    the app's database created empty (the instance's ``DBName``)."""
    for tool in ("age", "age-keygen", "zstd", "pg_dump", "pg_restore", "openssl"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: `make prereqs` installs it (tools/packages.txt)")
    with local_postgres(DB_USER, RDS_PASSWORD, tls_only=True) as server:
        server.create_database(DB_NAME)
        yield server


@pytest.fixture(scope="module")
def environment_up(aws, rds_pg):
    """The applied environment, plus the secret and task definition revision moto's CloudFormation skips."""
    assert environment.apply_environment(aws, approve=lambda t: True, log=lambda _: None)
    s = aws.settings
    arn = aws.client("secretsmanager").create_secret(Name=f"{s.name}/postgres-password",
                                                     SecretString=RDS_PASSWORD)["ARN"]
    ecs = aws.client("ecs")
    out = {o["OutputKey"]: o["OutputValue"] for o in aws.client("cloudformation").describe_stacks(
        StackName=s.stack_name)["Stacks"][0]["Outputs"]}
    spec = ecs.describe_task_definition(taskDefinition=out["MigrateTaskDefinition"])["taskDefinition"]
    for c in spec["containerDefinitions"]:
        c["secrets"] = [{**x, "valueFrom": arn} if x["name"] == "POSTGRES_PASSWORD" else x for x in c.get("secrets", [])]
    keep = ("family", "containerDefinitions", "requiresCompatibilities", "networkMode", "cpu", "memory",
            "executionRoleArn", "taskRoleArn")
    migrate = ecs.register_task_definition(**{k: spec[k] for k in keep if spec.get(k)})["taskDefinition"]["taskDefinitionArn"]
    aws.client("ssm").put_parameter(Name=s.release_parameter, Type="String", Overwrite=True, Value=json.dumps({
        "version": "0.1.0", "image": "img:0.1.0", "task_definition": out["ApiTaskDefinition"],
        "migrate_task_definition": migrate, "previous": None, "at": time.time()}))
    return aws


@pytest.fixture(scope="module")
def age_keys(tmp_path_factory):
    """Two age key files: the backup's recipient and another one (the wrong identity)."""
    d = tmp_path_factory.mktemp("age")
    keys = []
    for name in ("right", "wrong"):
        subprocess.run(["age-keygen", "-o", str(d / name)], check=True, capture_output=True)
        text = (d / name).read_text()
        keys.append((d / name, next(ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("# public key: "))))
    return keys


@pytest.fixture(scope="module")
def source_backup(tmp_path_factory, age_keys):
    """A backup made by the backup tooling from a seeded database of the single host's PostgreSQL;
    yields ``(backup directory, manifest, sample rows)``."""
    (_, public), _ = age_keys
    backups = tmp_path_factory.mktemp("host-backups")
    with local_postgres("orderops", PASSWORD) as host_pg:
        host_pg.create_database("orders_src")
        fill(host_pg, "orders_src", 250)
        cfg = make_config(host_pg, "orders_src", backups, public)
        manifest = backup_mod.run_backup(cfg, log=lambda m: None)
        with host_pg.admin("orders_src") as conn:
            sample = _sample(conn)
    yield backups / manifest["id"], manifest, sample


def _sample(conn) -> dict[str, list]:
    return {"orders": conn.execute("SELECT id, customer, currency, total_minor, status, owner_id FROM orders "
                                   "ORDER BY id LIMIT 25").fetchall(),
            "order_lines": conn.execute("SELECT order_id, sku, quantity, unit_price_minor FROM order_lines "
                                        "ORDER BY order_id, sku LIMIT 25").fetchall(),
            "users": conn.execute("SELECT id, email, role FROM users ORDER BY id").fetchall()}


def _databases(server) -> list[str]:
    with server.admin() as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")]


def _tables(server, database: str) -> list[str]:
    with server.admin(database) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def _params(source_backup, key, rds_pg, **over):
    return params_from(backup=str(over.pop("backup", source_backup[0])), identity=str(key),
                       via=f"127.0.0.1:{rds_pg.port}", **over)


def test_the_stand_in_refuses_connections_without_tls(rds_pg):
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry|SSL off"):
        psycopg.connect(host="127.0.0.1", port=rds_pg.port, user=DB_USER, password=RDS_PASSWORD, dbname="postgres",
                        sslmode="disable").close()


def test_check_mode_says_what_it_would_do_and_writes_nothing(environment_up, rds_pg, source_backup, age_keys):
    (key, _), _ = age_keys
    before = _databases(rds_pg)
    asked = []
    report = import_backup(environment_up, _params(source_backup, key, rds_pg), check=True,
                           approve=lambda t: asked.append(t) or True, log=lambda m: None)
    db = environment_up.client("rds").describe_db_instances()["DBInstances"][0]
    assert report.check and asked == []
    assert report.target.instance == db["DBInstanceIdentifier"] and report.target.endpoint == db["Endpoint"]["Address"]
    assert (report.target.connect_host, report.target.connect_port) == ("127.0.0.1", rds_pg.port)
    assert report.database == DB_NAME and report.target.user == DB_USER
    text = report.render()
    assert "would: restore" in text and f"into a new database {DB_NAME}_import_" in text and "swap it in" in text
    assert RDS_PASSWORD not in text and RDS_PASSWORD not in repr(report)
    assert _databases(rds_pg) == before and _tables(rds_pg, DB_NAME) == []


def test_a_wrong_identity_fails_before_anything_is_written(environment_up, rds_pg, source_backup, age_keys):
    _, (wrong, _) = age_keys
    before = _databases(rds_pg)
    with pytest.raises(ImportFailed, match="no identity matched") as err:
        import_backup(environment_up, _params(source_backup, wrong, rds_pg), check=False, approve=lambda t: True,
                      log=lambda m: None)
    assert "nothing was written" in str(err.value)
    assert _databases(rds_pg) == before and _tables(rds_pg, DB_NAME) == []


def test_an_older_client_than_the_dump_is_refused(environment_up, rds_pg, source_backup, age_keys, tmp_path):
    (key, _), _ = age_keys
    newer = tmp_path / source_backup[0].name
    shutil.copytree(source_backup[0], newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["postgres"]["server_version"] = "99.1"  # a dump of a PostgreSQL newer than this machine's client
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImportFailed, match=r"the client must be of major 99 or newer"):
        import_backup(environment_up, _params(source_backup, key, rds_pg, backup=newer), check=True,
                      approve=lambda t: True, log=lambda m: None)


def test_import_gives_identical_counts_and_rows(environment_up, rds_pg, source_backup, age_keys):
    (key, _), _ = age_keys
    path, manifest, sample = source_backup
    report = import_backup(environment_up, _params(source_backup, key, rds_pg), check=False, approve=lambda t: True,
                           log=lambda m: None, stamp="20261204t120000z")
    assert [(t, n) for t, n, _ in report.counts] == sorted(manifest["row_counts"].items())
    assert all(got == n for _, n, got in report.counts), report.counts
    assert report.seconds > 0 and "import took" in report.render()
    with rds_pg.admin(DB_NAME) as conn:
        assert _sample(conn) == sample
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
    # the empty database it replaced is gone, nothing staged is left
    assert [d for d in _databases(rds_pg) if d.startswith(DB_NAME)] == [DB_NAME]


def test_refuses_a_database_holding_the_app_tables_and_imports_beside_them(environment_up, rds_pg, source_backup, age_keys):
    (key, _), _ = age_keys
    with rds_pg.admin(DB_NAME) as conn:
        conn.execute("DELETE FROM order_transitions")  # a later change the import must not overwrite
    before = _databases(rds_pg)
    with pytest.raises(ImportFailed, match="already holds the app's tables") as err:
        import_backup(environment_up, _params(source_backup, key, rds_pg), check=False, approve=lambda t: True,
                      log=lambda m: None)
    assert "--database" in str(err.value) and "nothing was written" in str(err.value)
    assert _databases(rds_pg) == before
    with rds_pg.admin(DB_NAME) as conn:
        assert conn.execute("SELECT count(*) FROM order_transitions").fetchone() == (0,)
    report = import_backup(environment_up, _params(source_backup, key, rds_pg, database="orders_second"),
                           check=False, approve=lambda t: True, log=lambda m: None)
    assert report.database == "orders_second" and all(got == n for _, n, got in report.counts)
    with rds_pg.admin("orders_second") as conn:
        assert _sample(conn) == source_backup[2]
    with pytest.raises(ImportFailed, match="database: orders_second exists already"):
        import_backup(environment_up, _params(source_backup, key, rds_pg, database="orders_second"),
                      check=True, approve=lambda t: True, log=lambda m: None)


@pytest.mark.parametrize(("values", "field"), [
    ({"backup": "/nonexistent/backup"}, "backup"),
    ({"identity": "README.md"}, "identity"),
    ({"database": "Bad-Name"}, "database"),
    ({"via": "127.0.0.1"}, "via"),
    ({"pg_bin": "/nonexistent"}, "pg_bin"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_parameters_give_one_error_naming_the_field(values, field, source_backup, age_keys):
    (key, _), _ = age_keys
    good = {"backup": str(source_backup[0]), "identity": str(key)}
    with pytest.raises(ValueError) as err:
        params_from(**{**good, **values})
    assert str(err.value).startswith(f"{field}: ") and "\n" not in str(err.value)


def test_cli_check_mode_and_a_bad_parameter(environment_up, rds_pg, source_backup, age_keys, capsys):
    from deploys.aws.cli import main

    (key, _), _ = age_keys
    base = ["-i", "inventories/aws_local.py", "import-backup", str(source_backup[0]), "--identity", str(key)]
    assert main([*base, "--via", "nowhere", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("orderops-aws: import-backup: via: ")
    assert main([*base, "--via", f"127.0.0.1:{rds_pg.port}", "--database", "orders_cli", "--check"]) == 0
    out = capsys.readouterr().out
    assert "would: restore" in out and "orders_cli" in out and RDS_PASSWORD not in out
    assert "orders_cli" not in _databases(rds_pg)
    assert main([*base, "--via", f"127.0.0.1:{rds_pg.port}", "--database", "orders_cli"]) == 3  # no --yes, no terminal
    assert "orders_cli" not in _databases(rds_pg)


def test_runbook_checks_then_imports_with_yes(environment_up, rds_pg, source_backup, age_keys, tmp_path):
    """``aws-import-backup`` on the runbook engine: its steps run ``orderops-aws import-backup`` on
    this machine (the local executor), inside the run's environment lock (re-entered by run ID)."""
    from runbooks.core.errors import ParameterError
    from runbooks.engine.params import validate_params
    from runbooks.engine.runner import run
    from runbooks.engine.targets import load_aws
    from runbooks.executors.aws import AwsExecutor
    from runbooks.executors.local import LocalExecutor
    from runbooks.library import get_runbook

    (key, _), _ = age_keys
    rb = get_runbook("aws-import-backup")
    raw = {"backup": str(source_backup[0]), "identity": str(key), "via": f"127.0.0.1:{rds_pg.port}",
           "database": "orders_runbook"}
    with pytest.raises(ParameterError) as err:
        validate_params(rb.name, rb.params, {**raw, "via": "127.0.0.1:x"})
    assert err.value.field == "via"

    def go(check: bool, approve: bool):
        with AwsExecutor() as ex, LocalExecutor() as local:
            result = run(rb, load_aws("inventories/aws_local.py"), validate_params(rb.name, rb.params, raw),
                         {"aws": ex, "local": local}, inventory="inventories/aws_local.py", check=check,
                         approve=approve, runs_dir=tmp_path)
        name = result.hosts[0]
        return result, {s.name: s.results[name] for s in result.steps if name in s.results}

    result, steps = go(check=True, approve=False)
    assert result.status == "ok", {k: (v.status, v.message) for k, v in steps.items()}
    assert steps["Verify the backup and the target"].data["database"] == "orders_runbook"
    assert steps["Import into RDS"].message.startswith("would: restore")
    assert "orders_runbook" not in _databases(rds_pg)
    result, steps = go(check=False, approve=True)
    assert result.status == "changed", {k: (v.status, v.message) for k, v in steps.items()}
    done = steps["Import into RDS"]
    assert done.data["rto_seconds"] > 0 and all(r[1] == r[2] for r in done.tables[0].rows)
    with rds_pg.admin("orders_runbook") as conn:
        assert _sample(conn) == source_backup[2]
    run_dir = tmp_path / result.run_id
    for f in ("report.md", "result.json", "events.jsonl"):
        assert RDS_PASSWORD not in (run_dir / f).read_text()


def test_a_json_key_reference_to_the_secret_is_resolved(environment_up):
    """ECS's ``<ARN>:<json-key>::`` form of ``valueFrom`` gives that key of a JSON secret."""
    from deploys.aws.import_backup import ImportFailed as Failed
    from deploys.aws.import_backup import _secret_value

    arn = environment_up.client("secretsmanager").create_secret(
        Name="orderops-t/json-credentials", SecretString=json.dumps({"password": "from-json", "user": "x"}))["ARN"]
    assert _secret_value(environment_up, arn + ":password::") == "from-json"
    assert _secret_value(environment_up, arn) == json.dumps({"password": "from-json", "user": "x"})
    with pytest.raises(Failed, match="no JSON key 'nope'"):
        _secret_value(environment_up, arn + ":nope::")
