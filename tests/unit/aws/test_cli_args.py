"""``orderops-aws`` arguments: the commands the inventories' docstrings show parse as written, and
``-i`` is accepted before or after the command."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path

import pytest

from deploys.aws import cli


@pytest.mark.parametrize("inventory", ["inventories/aws_example.py", "inventories/aws_local.py"])
def test_docstring_commands_parse(inventory):
    doc = runpy.run_path(inventory).get("__doc__") or ""
    commands = re.findall(r"^\s*orderops-aws (.+)$", doc, flags=re.M)
    for line in commands:
        args = cli._parser().parse_args(shlex.split(line.split("#")[0]))
        assert Path(args.inventory).is_file(), line


@pytest.mark.parametrize("argv", [["-i", "inv.py", "plan"], ["plan", "-i", "inv.py"],
                                  ["apply", "--inventory", "inv.py", "--yes"]])
def test_inventory_before_or_after_the_command(argv):
    assert cli._parser().parse_args(argv).inventory == "inv.py"


def test_no_inventory_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["plan"])
    assert exc.value.code == 2 and "-i/--inventory" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(aws):
        raise KeyboardInterrupt

    from deploys.aws import release

    monkeypatch.setattr(release, "read_record", interrupted)
    try:
        rc = cli.main(["-i", "inventories/aws_local.py", "status"])
    except KeyboardInterrupt:  # escaping would stop the whole test session
        pytest.fail("KeyboardInterrupt escaped orderops-aws")
    assert rc == 130
    err = capsys.readouterr().err
    assert err.strip() == "orderops-aws: interrupted"
