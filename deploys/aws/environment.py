"""Plan and apply a whole AWS environment: certificates, the us-east-1 edge stack, the main stack.

Order matters and is fixed here: the ACM certificates (ALB's in the region, CloudFront's in
us-east-1) and the edge stack's WAF web ACL are inputs of the main stack. The main stack's
``ImageUri`` is the recorded release's image when one exists, so an infrastructure change never
reverts a release made since (releases change the service through ECS, not through the stack).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deploys.aws import certificates, stack
from deploys.aws.lock import environment_lock
from deploys.aws.release import ensure_repository, image_uri, read_record
from deploys.aws.session import EDGE_REGION, AwsSession
from templates.aws.stack import edge_template, main_template, to_json

__all__ = ["EnvironmentPlan", "plan_environment", "apply_environment"]

#: Parameter value shown while an input does not exist yet (first plan of a new environment).
PENDING = "pending-first-apply"


@dataclass
class EnvironmentPlan:
    """Certificates to keep/request, then the edge and main stack plans."""

    certificates: list[certificates.CertificatePlan]
    edge: stack.Plan
    main: stack.Plan

    @property
    def empty(self) -> bool:
        return all(c.action == "keep" for c in self.certificates) and self.edge.empty and self.main.empty

    def render(self) -> str:
        return "\n".join([*(c.line() for c in self.certificates), self.edge.render(), self.main.render()])


def _image(aws: AwsSession, repository_uri: str | None) -> str:
    record = read_record(aws)
    if record:
        return record.image
    return image_uri(aws, aws.settings.version, repository_uri or f"{aws.settings.api_repository}")


def _main_parameters(aws: AwsSession, alb_arn: str, edge_arn: str, repository_uri: str | None) -> dict[str, str]:
    edge_out = (stack.outputs(aws, aws.settings.edge_stack_name, EDGE_REGION)
                if stack.stack_status(aws, aws.settings.edge_stack_name, EDGE_REGION) else {})
    return {"ImageUri": _image(aws, repository_uri), "AlbCertificateArn": alb_arn,
            "EdgeCertificateArn": edge_arn, "WebAclArn": edge_out.get("WebAclArn", PENDING)}


def plan_environment(aws: AwsSession) -> EnvironmentPlan:
    """Read-only plan of everything :func:`apply_environment` would change; the change sets it
    creates to find out are deleted again (and a new stack's empty shell with them)."""
    s = aws.settings
    certs = [certificates.plan_certificate(aws, s.domain, s.region),
             certificates.plan_certificate(aws, s.domain, EDGE_REGION)]
    edge = stack.plan(aws, s.edge_stack_name, to_json(edge_template(s)), region=EDGE_REGION)
    params = _main_parameters(aws, certs[0].arn or PENDING, certs[1].arn or PENDING, None)
    main = stack.plan(aws, s.stack_name, to_json(main_template(s)), params)
    for the_plan in (edge, main):
        stack.discard(aws, the_plan)
    return EnvironmentPlan(certs, edge, main)


def apply_environment(aws: AwsSession, approve: Callable[[str], bool],
                      log: Callable[[str], None] = print) -> bool:
    """Apply under the environment lock; ``approve(plan_text)`` is asked before each non-empty stack
    change. Returns True when something changed. Raises :class:`StackFailed` on a rolled-back change."""
    s = aws.settings
    changed = False
    with environment_lock(aws, "apply"):
        alb = certificates.ensure_certificate(aws, s.domain, s.region)
        edge_cert = certificates.ensure_certificate(aws, s.domain, EDGE_REGION)
        repository_uri = ensure_repository(aws)
        for name in ("edge", "main"):  # the main stack's parameters read the applied edge stack
            if name == "edge":
                the_plan = stack.plan(aws, s.edge_stack_name, to_json(edge_template(s)), region=EDGE_REGION)
            else:
                the_plan = stack.plan(aws, s.stack_name, to_json(main_template(s)),
                                      _main_parameters(aws, alb, edge_cert, repository_uri))
            log(the_plan.render())
            if the_plan.empty:
                continue
            if not approve(the_plan.render()):
                log(f"stack {the_plan.stack}: not approved, nothing applied")
                return changed
            status = stack.apply(aws, the_plan)
            log(f"stack {the_plan.stack}: {status}")
            changed = True
    return changed
