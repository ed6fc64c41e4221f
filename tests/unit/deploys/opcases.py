"""One generic runner for operation tests as data cases (pyinfra's own style: canned facts in,
commands or a noop out).

A case is a dict: ``facts`` ({fact class: data} or {(fact class, (("kwarg", value), ...)): data}; list values as tuples),
``kwargs`` of the operation, and the expected ``commands`` (list of strings; ``"<upload DEST>"``
stands for a file upload to DEST) or ``noop`` (a substring of the noop description).
"""

from __future__ import annotations

from typing import Any

from pyinfra.api.command import FileUploadCommand
from pyinfra.context import ctx_host


class FakeHost:
    """Context host for ``op._inner``: facts from the case, recorded noops, uploads kept."""

    def __init__(self, facts: dict, name: str = "fakehost"):
        self.facts = facts
        self.noops: list[str] = []
        self.uploads: dict[str, str] = {}
        self.name = name
        self.data = {}

    def get_fact(self, fact_cls, *args, **kwargs):
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
        key = (fact_cls, frozen) if kwargs else fact_cls
        if key not in self.facts:
            raise AssertionError(f"operation asked for {fact_cls.__name__} {kwargs or ''}, which the case does not provide")
        return self.facts[key]

    def noop(self, description: str) -> None:
        self.noops.append(description)


def run_case(op, facts: dict, **kwargs) -> tuple[list[str], list[str], dict[str, str]]:
    """Run ``op``'s generator; return (commands, noops, {upload dest: uploaded text})."""
    host = FakeHost(facts)
    commands: list[str] = []
    with ctx_host.use(host):
        for command in op._inner(**kwargs):
            if isinstance(command, FileUploadCommand):
                src: Any = command.src
                host.uploads[command.dest] = src.getvalue() if hasattr(src, "getvalue") else open(src).read()
                commands.append(f"<upload {command.dest}>")
            else:
                commands.append(command.get_raw_value())
    return commands, host.noops, host.uploads


def check_case(op, case: dict) -> tuple[list[str], list[str], dict[str, str]]:
    """Run a case and assert its expectation (``commands`` exactly, or a ``noop`` substring)."""
    commands, noops, uploads = run_case(op, case["facts"], **case.get("kwargs", {}))
    if "noop" in case:
        assert commands == [], f"expected a noop, got {commands}"
        assert any(case["noop"] in n for n in noops), noops
    else:
        assert commands == case["commands"], "\n".join(commands)
    return commands, noops, uploads
