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
from deploys.aws.errors import AwsCallError, NotApproved
from deploys.aws.lock import environment_lock
from deploys.aws.release import ensure_repository, image_uri, read_record
from deploys.aws.session import EDGE_REGION, AwsSession, call
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
    creates to find out are deleted again (and a new stack's empty shell with them). The hosted
    zone is checked first (:func:`certificates.check_zone`: an error naming ``aws.hosted_zone_id``)."""
    s = aws.settings
    certificates.check_zone(aws)
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
    """Apply under the environment lock; returns True when something changed.

    The whole plan (certificates to request, the edge and main change sets) is computed with
    read-only calls and change sets only, rendered, and ``approve(plan_text)`` is asked once; nothing
    is requested, created or executed before it says yes. An empty plan asks nothing and returns
    False. After approval: the certificates are requested and validated, the ECR repository is
    created, the edge change set is executed, and the main one (re-planned when its parameters were
    still pending: a new certificate, the new edge stack's web ACL) is executed.

    Raises :class:`NotApproved` when ``approve`` says no (the change sets are deleted, and a stack
    that existed only as their shell with them), :class:`StackFailed` on a rolled-back change.
    """
    s = aws.settings
    certificates.check_zone(aws)
    with environment_lock(aws, "apply"):
        for name, region in ((s.edge_stack_name, EDGE_REGION), (s.stack_name, s.region)):
            if stack.delete_empty_shell(aws, name, region):  # what a killed run left
                log(f"stack {name}: deleted the empty REVIEW_IN_PROGRESS shell a previous run left")
            elif stale := stack.sweep_change_sets(aws, name, region):
                log(f"stack {name}: deleted {len(stale)} change set(s) a previous run planned but never executed")
        certs = [certificates.plan_certificate(aws, s.domain, s.region),
                 certificates.plan_certificate(aws, s.domain, EDGE_REGION)]
        repository_uri = _find_repository(aws)
        edge = stack.plan(aws, s.edge_stack_name, to_json(edge_template(s)), region=EDGE_REGION)
        try:
            params = _main_parameters(aws, certs[0].arn or PENDING, certs[1].arn or PENDING, repository_uri)
            main = stack.plan(aws, s.stack_name, to_json(main_template(s)), params)
        except BaseException:
            stack.discard(aws, edge)
            raise
        the_plan = EnvironmentPlan(certs, edge, main)
        text = the_plan.render()
        log(text)
        if the_plan.empty:
            return False
        try:
            approved = approve(text)
        except BaseException:
            _discard(aws, edge, main)
            raise
        if not approved:
            _discard(aws, edge, main)
            raise NotApproved("not approved: nothing applied (change sets deleted)")
        try:
            alb = certificates.ensure_certificate(aws, s.domain, s.region)
            edge_cert = certificates.ensure_certificate(aws, s.domain, EDGE_REGION)
            repository_uri = ensure_repository(aws)
            if not edge.empty:
                log(f"stack {edge.stack}: {stack.apply(aws, edge)}")
            edge = stack.Plan(edge.stack, edge.region, None, edge.kind)  # executed (or empty)
            final = _main_parameters(aws, alb, edge_cert, repository_uri)
            if final != params:  # inputs that were pending are known now: plan again with them
                stack.discard(aws, main)
                main = stack.Plan(main.stack, main.region, None, main.kind)
                main = stack.plan(aws, s.stack_name, to_json(main_template(s)), final)
                log(main.render().splitlines()[0] + " (planned again with the inputs created above)")
            if not main.empty:
                log(f"stack {main.stack}: {stack.apply(aws, main)}")
        except BaseException:  # a step before the change sets ran: leave none of them behind
            try:
                _discard(aws, *(p for p in (edge, main) if stack.change_set_available(aws, p)))
            except Exception as cleanup:  # noqa: BLE001 - the first failure is the one to report
                log(f"(could not delete the pending change sets: {cleanup}; the next apply does: sweep_change_sets)")
            raise
    return True


def _discard(aws: AwsSession, *plans: stack.Plan) -> None:
    for the_plan in plans:
        stack.discard(aws, the_plan)


def _find_repository(aws: AwsSession) -> str | None:
    """Read-only: the ECR repository's URI, or ``None`` before the first apply creates it."""
    ecr = aws.client("ecr")
    try:
        repos = call("ecr", "DescribeRepositories", ecr.describe_repositories,
                     repositoryNames=[aws.settings.api_repository])["repositories"]
    except AwsCallError as exc:
        if exc.code == "RepositoryNotFoundException":
            return None
        raise
    return repos[0]["repositoryUri"] if repos else None
