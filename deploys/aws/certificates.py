"""ACM certificates of the AWS layout, requested and DNS-validated through Route 53.

A certificate outlives the stacks that use it, so it is managed here rather than in a template:
:func:`ensure_certificate` reuses an issued (or pending) certificate of the environment for the same
domain, requests one otherwise (``IdempotencyToken`` from environment + domain, so a retried call
cannot order two), UPSERTs the validation CNAME into the hosted zone, and waits with ACM's
``certificate_validated`` waiter. The ALB's certificate lives in the stack's region, CloudFront's
in us-east-1 (AWS requirement). API shapes: ACM ``DescribeCertificate`` /
``DomainValidationOptions[].ResourceRecord``, Route 53 ``ChangeResourceRecordSets``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from deploys.aws.errors import AwsCallError, AwsError
from deploys.aws.session import AwsSession, call

__all__ = ["CertificatePlan", "find_certificate", "ensure_certificate", "check_zone"]

_TAG = "orderops:environment"


@dataclass(frozen=True)
class CertificatePlan:
    """What :func:`ensure_certificate` would do: ``action`` is ``keep`` or ``request``."""

    region: str
    domain: str
    action: str
    arn: str | None

    def line(self) -> str:
        what = f"keep {self.arn}" if self.action == "keep" else "request (DNS validation via Route 53)"
        return f"certificate {self.domain} ({self.region}): {what}"


def check_zone(aws: AwsSession) -> str:
    """Read-only (Route 53 ``GetHostedZone``): the settings' ``hosted_zone_id`` exists and ``domain``
    lies in it; returns the zone's name. Raises :class:`AwsError` naming ``aws.hosted_zone_id``."""
    s = aws.settings
    r53 = aws.client("route53", "us-east-1")
    try:
        zone = call("route53", "GetHostedZone", r53.get_hosted_zone, Id=s.hosted_zone_id)["HostedZone"]
    except AwsCallError as exc:
        if exc.code in ("NoSuchHostedZone", "InvalidInput"):
            raise AwsError(f"aws.hosted_zone_id: Route 53 has no hosted zone {s.hosted_zone_id} in this account; "
                           "set it to the id of the zone of aws.domain (aws route53 list-hosted-zones)") from None
        raise
    name = zone["Name"].rstrip(".")
    if s.domain != name and not s.domain.endswith("." + name):
        raise AwsError(f"aws.hosted_zone_id: zone {s.hosted_zone_id} is {name}, which does not hold "
                       f"aws.domain {s.domain}")
    return name


def find_certificate(aws: AwsSession, domain: str, region: str) -> str | None:
    """ARN of this environment's ISSUED or PENDING_VALIDATION certificate for ``domain``, or None."""
    acm = aws.client("acm", region)
    pages = acm.get_paginator("list_certificates").paginate(
        CertificateStatuses=["ISSUED", "PENDING_VALIDATION"])
    for page in pages:
        for summary in page["CertificateSummaryList"]:
            if summary["DomainName"] != domain:
                continue
            arn = summary["CertificateArn"]
            tags = call("acm", "ListTagsForCertificate", acm.list_tags_for_certificate,
                        CertificateArn=arn).get("Tags", [])
            if {"Key": _TAG, "Value": aws.settings.name} in tags:
                return arn
    return None


def plan_certificate(aws: AwsSession, domain: str, region: str) -> CertificatePlan:
    """Read-only: whether a certificate would be kept or requested."""
    arn = find_certificate(aws, domain, region)
    return CertificatePlan(region, domain, "keep" if arn else "request", arn)


def ensure_certificate(aws: AwsSession, domain: str, region: str) -> str:
    """Return the ARN of a validated certificate for ``domain`` in ``region``, requesting one if needed.

    Raises :class:`AwsError` when ACM gives no validation record or validation does not complete.
    """
    acm = aws.client("acm", region)
    arn = find_certificate(aws, domain, region)
    if arn is None:
        token = hashlib.sha256(f"{aws.settings.name}:{domain}".encode()).hexdigest()[:32]
        arn = call("acm", "RequestCertificate", acm.request_certificate,
                   DomainName=domain, ValidationMethod="DNS", IdempotencyToken=token,
                   Options={"CertificateTransparencyLoggingPreference": "ENABLED"},
                   Tags=[{"Key": _TAG, "Value": aws.settings.name}])["CertificateArn"]
    cert = call("acm", "DescribeCertificate", acm.describe_certificate, CertificateArn=arn)["Certificate"]
    if cert["Status"] == "ISSUED":
        return arn
    records = [o["ResourceRecord"] for o in cert.get("DomainValidationOptions", []) if "ResourceRecord" in o]
    if not records:
        raise AwsError(f"certificate {arn} has no DNS validation record yet")
    r53 = aws.client("route53", "us-east-1")
    call("route53", "ChangeResourceRecordSets", r53.change_resource_record_sets,
         HostedZoneId=aws.settings.hosted_zone_id,
         ChangeBatch={"Comment": f"ACM validation for {domain}", "Changes": [
             {"Action": "UPSERT", "ResourceRecordSet": {
                 "Name": rec["Name"], "Type": rec["Type"], "TTL": 300,
                 "ResourceRecords": [{"Value": rec["Value"]}]}} for rec in records]})
    call("acm", "Wait", acm.get_waiter("certificate_validated").wait, CertificateArn=arn, **aws.wait(1800))
    return arn
