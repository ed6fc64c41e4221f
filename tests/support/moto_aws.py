"""moto's server mode as the local AWS endpoint of the tests, with three documented shims.

:func:`moto_server` starts ``moto.server.ThreadedMotoServer`` on a free loopback port (real HTTP,
real boto3 clients, the standard credential chain pointed at it with dummy keys). Three places
where moto's CloudFormation differs from AWS in a way that would stop the real template are
aligned with AWS's documented behaviour; everything else is moto as released:

1. ``Fn::GetAtt`` of a resource whose *type* moto does not implement raises "references undefined
   resource" (in an output: an AttributeError while validating it), while a ``Ref`` to it resolves
   to null, which drops required properties (a task definition's secret ``valueFrom``). The shim
   resolves both to marker strings (``moto-skipped:<Logical>[.<Attr>]``), so a template that uses
   ElastiCache's endpoint, CloudFront's domain or a secret's ARN can be applied, and the skipped
   resources are exactly the ones the test lists.
2. A stack created or updated by executing a change set keeps the outputs of its previous template
   (none for a new stack); AWS evaluates the new template's outputs. The shim rebuilds them.
3. ``Ref`` of an ``AWS::RDS::DBParameterGroup`` returns moto's Python object instead of the group's
   name (AWS: the name), which breaks ``DBParameterGroupName: {Ref: ...}``.

Nothing here can reach AWS: the URL is loopback and the credentials are dummies.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["moto_server", "apply_shims", "moto_unsupported_types", "one_off_tasks_finish", "SKIPPED_PREFIX"]

SKIPPED_PREFIX = "moto-skipped:"


def moto_unsupported_types(template: dict[str, Any]) -> list[str]:
    """Resource types of ``template`` that moto's CloudFormation does not implement (sorted)."""
    from moto.cloudformation.parsing import get_model_map

    supported = get_model_map()
    return sorted({r["Type"] for r in template["Resources"].values()} - set(supported))


def _getatt_of_skipped(value: Any, declared: dict[str, Any], supported: dict[str, Any]) -> bool:
    if not (isinstance(value, dict) and "Fn::GetAtt" in value):
        return False
    target = declared.get(value["Fn::GetAtt"][0]) or {}
    return target.get("Type") not in supported


def _apply_shims() -> None:
    from moto.cloudformation import parsing
    from moto.cloudformation.models import ChangeSet
    from moto.rds.models import DBParameterGroup

    if getattr(parsing, "_orderops_shimmed", False):
        return
    original = parsing.clean_json
    supported = parsing.get_model_map()

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        declared = getattr(resources_map, "_resource_json_map", {})
        if _getatt_of_skipped(resource_json, declared, supported) and resource_json["Fn::GetAtt"][0] in declared:
            name, attr = resource_json["Fn::GetAtt"][0], resource_json["Fn::GetAtt"][1]
            return f"{SKIPPED_PREFIX}{name}.{attr}"
        if isinstance(resource_json, dict) and isinstance(resource_json.get("Ref"), str):
            target = declared.get(resource_json["Ref"])
            if isinstance(target, dict) and target.get("Type") not in supported:
                return f"{SKIPPED_PREFIX}{resource_json['Ref']}"
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json

    original_validate = parsing.ResourceMap.validate_outputs

    def validate_outputs(self: Any) -> None:
        # moto validates an output's GetAtt against the resource class, which a skipped type lacks.
        if not self._template.get("Outputs"):
            return original_validate(self)
        saved = self._template["Outputs"]
        self._template["Outputs"] = {
            k: v for k, v in saved.items()
            if not _getatt_of_skipped(v.get("Value"), self._resource_json_map, supported)}
        try:
            return original_validate(self)
        finally:
            self._template["Outputs"] = saved

    parsing.ResourceMap.validate_outputs = validate_outputs

    original_apply = ChangeSet.apply

    def apply(self: Any) -> None:
        original_apply(self)
        self.stack.template = self.template
        self.stack._parse_template()
        self.stack.output_map = self.stack._create_output_map()

    ChangeSet.apply = apply
    DBParameterGroup.physical_resource_id = property(lambda self: self.name)  # type: ignore[assignment]
    parsing._orderops_shimmed = True


def apply_shims() -> None:
    """Apply the three shims of the module docstring to this process's moto (idempotent); what
    :func:`moto_server` does first, and ``tools/moto_local.py`` for a local endpoint."""
    _apply_shims()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's server on loopback for the ``with`` block; yields its URL.

    Sets dummy ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (so the standard chain resolves
    without touching ``~/.aws``) and restores the environment afterwards.
    """
    from moto.server import ThreadedMotoServer

    _apply_shims()
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE",
                                            "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def one_off_tasks_finish(ecs, cluster: str, started_by: str = "orderops-release") -> Iterator[None]:
    """While the block runs, stop every running task ``started_by`` started in ``cluster`` (polled
    every 0.2 s): what ECS does when a one-off task's container exits 0; moto's tasks never exit.

    + ecs: a boto3 ECS client on the moto server
    + cluster: the cluster name
    """
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            for arn in ecs.list_tasks(cluster=cluster)["taskArns"]:
                task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
                if task.get("startedBy") == started_by and task["lastStatus"] != "STOPPED":
                    ecs.stop_task(cluster=cluster, task=arn, reason="Essential container in task exited")
            time.sleep(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)
