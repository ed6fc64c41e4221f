"""The PostgreSQL extension operation as data cases (tests/unit/deploys/opcases.py): created only
when the fact says it is missing; the fact's parser."""

import pytest
from pyinfra.api import OperationError

from deploys.contract.compose import COMPOSE_PROJECT, compose_command
from deploys.contract.paths import STACK_DIR
from deploys.facts.postgres import UNREACHABLE, PostgresExtensions
from deploys.operations import postgres

from .opcases import check_case

KW = {"project": COMPOSE_PROJECT, "project_dir": STACK_DIR}
FACT = (PostgresExtensions, tuple(sorted(KW.items())))
CREATE = compose_command(COMPOSE_PROJECT, STACK_DIR, "exec", "-T", "postgres", "psql", "-U", "orderops", "-d", "orders",
                         "-v", "ON_ERROR_STOP=1", "-qc", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

CASES = {
    "missing: created": {"facts": {FACT: ["plpgsql"]}, "kwargs": {"extname": "pg_stat_statements", **KW}, "commands": [CREATE]},
    "present: noop": {"facts": {FACT: ["pg_stat_statements", "plpgsql"]}, "kwargs": {"extname": "pg_stat_statements", **KW},
                      "noop": "extension pg_stat_statements exists in orders"},
    "database not answering: the command runs (and fails with psql's message)": {
        "facts": {FACT: None}, "kwargs": {"extname": "pg_stat_statements", **KW}, "commands": [CREATE]},
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_extension(case):
    check_case(postgres.extension, case)


def test_extension_name_is_checked():
    with pytest.raises(OperationError, match="letters, digits"):
        check_case(postgres.extension, {"facts": {}, "kwargs": {"extname": "x; DROP", **KW}, "commands": []})


def test_fact_parses_names_and_unreachable():
    fact = PostgresExtensions()
    assert fact.process(["plpgsql", "pg_stat_statements", ""]) == ["pg_stat_statements", "plpgsql"]
    assert fact.process([UNREACHABLE]) is None
    assert "SELECT extname FROM pg_extension" in fact.command(**KW) and UNREACHABLE in fact.command(**KW)
