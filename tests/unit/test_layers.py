"""The import arrows of ARCHITECTURE.md, read from the code (every import, also those inside functions).

* ``deploys/`` never imports ``runbooks``; ``runbooks/`` takes only ``deploys.contract`` of ``deploys``;
* ``runbooks/core`` imports nothing else of ``runbooks``; ``runbooks/engine`` and ``runbooks/executors``
  do not import each other (nor the library or the CLI above them);
* the host's state directory is written in ``deploys/contract/`` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deploys.contract.paths import REPO_ROOT, STATE_DIR


def _sources(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    """Every module name ``path`` imports (absolute imports; the code base uses no relative ones there)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# folder -> (imported package, allowed sub-packages of it)
RULES = {
    "deploys": [("runbooks", ())],
    "runbooks": [("deploys", ("deploys.contract",))],
    "runbooks/core": [("runbooks", ("runbooks.core",))],
    "runbooks/engine": [("runbooks", ("runbooks.core", "runbooks.engine"))],
    "runbooks/executors": [("runbooks", ("runbooks.core", "runbooks.executors"))],
}


@pytest.mark.parametrize("folder", RULES)
def test_imports_point_down_only(folder):
    wrong = []
    for path in _sources(folder):
        for name in _imports(path):
            for package, allowed in RULES[folder]:
                if _under(name, package) and not any(_under(name, a) for a in allowed):
                    wrong.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert wrong == []


def test_the_rule_catches_an_arrow_that_runs_back_up(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from runbooks.library import all_runbooks\n")
    assert "runbooks.library" in _imports(module)


def test_the_state_dir_is_written_in_the_contract_alone():
    contract = REPO_ROOT / "deploys" / "contract"
    holders = []
    for folder in ("deploys", "runbooks", "inventories", "templates", "testhosts", "order_service"):
        for path in _sources(folder):
            if STATE_DIR in path.read_text() and contract not in path.parents:
                holders.append(str(path.relative_to(REPO_ROOT)))
    assert holders == []
