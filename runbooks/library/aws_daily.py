"""Runbook ``aws-daily``: the daily health check of an AWS environment (an AWS inventory).

ECS services running against desired, the recent deployment events, RDS free storage, CPU and
connections, ElastiCache memory, CloudWatch alarms in ALARM, and the ACM certificates' days left.
Read-only: every step only reads AWS APIs (ECS, CloudWatch, RDS, ACM) through the boto3 executor.
Metric values are CloudWatch's (``AWS/RDS``, ``AWS/ElastiCache``), the newest 5-minute period of
the last hour; a metric without datapoints is reported, not failed.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._aws import api_service, db_instance, metric, stack_outputs, utcnow

__all__ = ["RUNBOOK", "AwsDailyParams"]

_GIB = 1024 ** 3
#: Phrases of ECS service events that report trouble (ECS troubleshooting guide's event messages).
_BAD_EVENTS = ("unable to", "failed", "unhealthy", "circuit breaker", "rolling back", "insufficient")


class AwsDailyParams(BaseModel):
    """Thresholds of the AWS daily check (percentages 1..100, counts, hours, days)."""

    model_config = ConfigDict(extra="forbid")

    db_free_min_percent: int = Field(15, ge=1, le=99, description="min RDS free storage, % of the allocation")
    db_cpu_max_percent: int = Field(80, ge=1, le=100, description="max RDS CPU %")
    db_connections_max: int = Field(200, ge=1, description="max RDS connections")
    cache_memory_max_percent: int = Field(85, ge=1, le=100, description="max Redis memory use %")
    event_hours: int = Field(24, ge=1, le=24 * 14, description="window for ECS service events, hours")
    cert_min_days: int = Field(21, ge=0, description="certificates must be valid this many more days")


@step("ECS services", target="aws", executor="aws", timeout=60, retries=1)
def services(ctx: StepContext) -> StepResult:
    """Every ECS service of the stack's cluster runs its desired count of tasks (running vs
    desired, pending, the number of deployments in progress)."""
    cluster = stack_outputs(ctx)["ClusterName"]
    arns = ctx.aws("ecs", "list_services", cluster=cluster)["serviceArns"]
    found = ctx.aws("ecs", "describe_services", cluster=cluster, services=arns)["services"] if arns else []
    rows, short = [], []
    for s in found:
        rows.append([s["serviceName"], s["status"], s["desiredCount"], s["runningCount"], s.get("pendingCount", 0),
                     len(s.get("deployments", []))])
        if s["runningCount"] < s["desiredCount"]:
            short.append(f"{s['serviceName']}: {s['runningCount']}/{s['desiredCount']} running")
    table = Table("ECS services", ["service", "status", "desired", "running", "pending", "deployments"], rows)
    data = {s["serviceName"]: {"desired": s["desiredCount"], "running": s["runningCount"]} for s in found}
    if not found:
        return ctx.failed(f"no ECS service in cluster {cluster}", data, [table])
    if short:
        return ctx.failed("below desired count: " + "; ".join(short), data, [table])
    return ctx.ok(f"{len(found)} service(s) at their desired count", data, [table])


@step("Recent deployment events", target="aws", executor="aws", timeout=60)
def deployment_events(ctx: StepContext) -> StepResult:
    """The API service's deployments (a failed rollout fails the step) and its service events of
    the last `event_hours`, the troubled ones (unable to place, unhealthy, circuit breaker) flagged."""
    svc = api_service(ctx)
    since = utcnow() - timedelta(hours=ctx.params.event_hours)
    events = [e for e in svc.get("events", []) if e["createdAt"] >= since]
    bad = [e for e in events if any(p in e["message"].lower() for p in _BAD_EVENTS)]
    deployments = svc.get("deployments", [])
    failed = [d for d in deployments if d.get("rolloutState") == "FAILED"]
    tables = [
        Table("Deployments", ["id", "status", "rollout", "desired", "running", "task definition"],
              [[d["id"], d["status"], d.get("rolloutState", "-"), d["desiredCount"], d["runningCount"],
                d["taskDefinition"].rsplit("/", 1)[-1]] for d in deployments]),
        Table(f"Service events (last {ctx.params.event_hours} h)", ["at (UTC)", "message"],
              [[e["createdAt"].strftime("%Y-%m-%dT%H:%M:%SZ"), e["message"]] for e in events[:20]]),
    ]
    data = {"events": len(events), "troubled": len(bad), "failed_deployments": len(failed)}
    if failed:
        return ctx.failed(f"{len(failed)} failed deployment(s): {failed[0].get('rolloutStateReason', '')}", data, tables)
    if bad:
        return ctx.failed(f"{len(bad)} troubled event(s), newest: {bad[0]['message']}", data, tables)
    return ctx.ok(f"{len(deployments)} deployment(s), {len(events)} event(s), none troubled", data, tables)


@step("RDS storage, CPU and connections", target="aws", executor="aws", timeout=60, retries=1)
def database(ctx: StepContext) -> StepResult:
    """The database instance is `available`; CloudWatch's FreeStorageSpace (minimum) against the
    allocation, CPUUtilization (average) and DatabaseConnections (maximum) against thresholds."""
    db = db_instance(ctx)
    ident = db["DBInstanceIdentifier"]
    dims = {"DBInstanceIdentifier": ident}
    free = metric(ctx, "AWS/RDS", "FreeStorageSpace", dims, "Minimum")
    cpu = metric(ctx, "AWS/RDS", "CPUUtilization", dims, "Average")
    conns = metric(ctx, "AWS/RDS", "DatabaseConnections", dims, "Maximum")
    allocated = float(db["AllocatedStorage"]) * _GIB
    free_pct = None if free is None else round(100 * free / allocated, 1)
    p = ctx.params
    checks = [
        ("free storage %", free_pct, f">= {p.db_free_min_percent}", free_pct is None or free_pct >= p.db_free_min_percent),
        ("CPU %", None if cpu is None else round(cpu, 1), f"<= {p.db_cpu_max_percent}", cpu is None or cpu <= p.db_cpu_max_percent),
        ("connections", conns, f"<= {p.db_connections_max}", conns is None or conns <= p.db_connections_max),
    ]
    rows = [[name, "no datapoints" if v is None else v, limit, "ok" if good else "FAILED"] for name, v, limit, good in checks]
    table = Table(f"RDS {ident} ({db['DBInstanceStatus']}, {db['AllocatedStorage']} GiB)",
                  ["metric", "value", "limit", "result"], rows)
    data = {"status": db["DBInstanceStatus"], "free_percent": free_pct, "cpu_percent": cpu, "connections": conns}
    problems = [f"{name} {v} (limit {limit})" for name, v, limit, good in checks if not good]
    if db["DBInstanceStatus"] != "available":
        problems.insert(0, f"instance is {db['DBInstanceStatus']}")
    if problems:
        return ctx.failed("; ".join(problems), data, [table])
    missing = [name for name, v, _, _ in checks if v is None]
    return ctx.ok("within limits" + (f" (no datapoints: {', '.join(missing)})" if missing else ""), data, [table])


@step("ElastiCache memory", target="aws", executor="aws", timeout=60, retries=1)
def cache_memory(ctx: StepContext) -> StepResult:
    """Each node of the Redis replication group: CloudWatch's DatabaseMemoryUsagePercentage
    (maximum) against `cache_memory_max_percent`; the group must be `available`."""
    group_id = ctx.host.settings.cache_group_id
    groups = ctx.aws("elasticache", "describe_replication_groups", ReplicationGroupId=group_id)["ReplicationGroups"]
    group = groups[0]
    rows, high = [], []
    for cluster in group.get("MemberClusters", []):
        used = metric(ctx, "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", {"CacheClusterId": cluster}, "Maximum")
        rows.append([cluster, "no datapoints" if used is None else round(used, 1)])
        if used is not None and used > ctx.params.cache_memory_max_percent:
            high.append(f"{cluster}: {used:.1f} %")
    table = Table(f"Redis {group_id} ({group['Status']})", ["node", "memory used %"], rows)
    data = {"status": group["Status"], "high": high}
    if group["Status"] != "available":
        return ctx.failed(f"replication group is {group['Status']}", data, [table])
    if high:
        return ctx.failed(f"memory above {ctx.params.cache_memory_max_percent} %: " + "; ".join(high), data, [table])
    return ctx.ok(f"{len(rows)} node(s) within {ctx.params.cache_memory_max_percent} %", data, [table])


@step("Alarms in ALARM", target="aws", executor="aws", timeout=60)
def alarms(ctx: StepContext) -> StepResult:
    """CloudWatch alarms of the environment (name prefix `<name>-`) in state ALARM, with their reasons."""
    found = ctx.aws("cloudwatch", "describe_alarms", AlarmNamePrefix=f"{ctx.host.settings.name}-",
                    StateValue="ALARM")["MetricAlarms"]
    table = Table("Alarms in ALARM", ["alarm", "since (UTC)", "reason"],
                  [[a["AlarmName"], a["StateUpdatedTimestamp"].strftime("%Y-%m-%dT%H:%M:%SZ"), a.get("StateReason", "")]
                   for a in found])
    data = {"alarms": [a["AlarmName"] for a in found]}
    if found:
        return ctx.failed(f"{len(found)} alarm(s) in ALARM: {', '.join(data['alarms'])}", data, [table])
    return ctx.ok("no alarm in ALARM", data, [table])


@step("Certificate expiry", target="aws", executor="aws", timeout=60)
def certificates(ctx: StepContext) -> StepResult:
    """Days left of the ACM certificates for the domain: the ALB's (the environment's region) and
    CloudFront's (us-east-1), against `cert_min_days`; a missing or not-issued one fails."""
    s = ctx.host.settings
    rows, problems, days_by_region = [], [], {}
    for region in dict.fromkeys([s.region, "us-east-1"]):
        summaries = [c for c in ctx.aws("acm", "list_certificates", region=region)["CertificateSummaryList"]
                     if c["DomainName"] == s.domain]
        if not summaries:
            problems.append(f"{region}: no certificate for {s.domain}")
            continue
        for c in summaries:
            cert = ctx.aws("acm", "describe_certificate", region=region, CertificateArn=c["CertificateArn"])["Certificate"]
            days = (cert["NotAfter"] - utcnow()).days if cert.get("NotAfter") else None
            rows.append([region, cert["Status"], cert.get("RenewalEligibility", "-"), "-" if days is None else days])
            days_by_region[region] = days
            if cert["Status"] != "ISSUED":
                problems.append(f"{region}: certificate is {cert['Status']}")
            elif days is None or days < ctx.params.cert_min_days:
                problems.append(f"{region}: expires in {days} days (< {ctx.params.cert_min_days})")
    table = Table(f"ACM certificates for {s.domain}", ["region", "status", "renewal eligibility", "days left"], rows)
    if problems:
        return ctx.failed("; ".join(problems), {"days": days_by_region}, [table])
    return ctx.ok(f"certificates valid for {min(days_by_region.values())}+ days", {"days": days_by_region}, [table])


RUNBOOK = Runbook(
    name="aws-daily",
    title="AWS daily check",
    doc=__doc__ or "",
    params=AwsDailyParams,
    environment="aws",
    steps=(services, deployment_events, database, cache_memory, alarms, certificates),
)
