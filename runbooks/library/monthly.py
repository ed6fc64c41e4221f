"""Runbook ``monthly``: the monthly security and database review of every app host. Read-only.

Security scan: ports reachable from outside against the inventory's allowlist
(``firewall_allow_tcp``), pending security updates, ``sshd -T`` against the hardening policy
(:mod:`deploys.contract.sshd`), TLS versions and the served certificate, images of running
containers older than ``max_image_age_days``, users with a login shell or sudo rights.
Database performance: the slowest statements (``pg_stat_statements``), dead-tuple bloat, tables
autovacuum left alone too long, unused indexes, the cache hit ratio. Capacity: the forecast of
:mod:`runbooks.library.capacity` (disk, database and Redis growth from the samples the daily
runbook records, days until full, a plot). Every part is a table; a finding fails its step with a
message naming it.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from pydantic import ConfigDict, Field

from deploys.contract.services import DB_PRELOAD_EXTENSIONS
from deploys.contract.sshd import SSHD_T_COMMAND, mismatches, parse_sshd_t, policy
from deploys.contract.tls import served_certificate_command
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._common import psql
from runbooks.library.capacity import CapacityParams, forecast
from runbooks.library.weekly import _pending

__all__ = [
    "RUNBOOK", "MonthlyParams", "NO_VANTAGE", "parse_listening", "parse_published", "probe_ports", "no_vantage_reason",
    "parse_tls_probes", "parse_certificate", "parse_users", "image_age_days",
]

#: The message of the outside-port part when the runbook runs on the target host itself.
NO_VANTAGE = "no outside vantage point"
#: TLS versions probed with ``openssl s_client`` (flag -> accepted wanted)
TLS_VERSIONS = {"tls1": False, "tls1_1": False, "tls1_2": True, "tls1_3": True}
#: Shells that allow no login (``/etc/passwd`` field 7).
NO_LOGIN = re.compile(r"(^|/)(nologin|false|sync|shutdown|halt)$")
#: Groups whose members may use sudo (Debian: ``sudo``; Ubuntu before 12.04: ``admin``).
SUDO_GROUPS = ("sudo", "admin")
_SECTION = re.compile(r"^#orderops:(\S+)$")


class MonthlyParams(CapacityParams):
    """Thresholds of the monthly review (days, milliseconds, ratios 0..1, percentages)."""

    model_config = ConfigDict(extra="forbid")

    max_image_age_days: int = Field(90, ge=1, description="images of running containers older than this are a finding")
    cert_min_days: int = Field(21, ge=0, description="the served certificate must be valid this many more days")
    expected_users: list[str] = Field(default_factory=list, description="users allowed a login shell / sudo besides the deploy and SSH user")
    probe_timeout: float = Field(1.0, gt=0, le=10, description="TCP connect timeout of the outside port probe, seconds")
    slow_query_ms: float = Field(100.0, gt=0, description="statements with a mean time above this are a finding, ms")
    top: int = Field(10, ge=1, le=100, description="slowest statements listed")
    bloat_max_ratio: float = Field(0.2, gt=0, le=1, description="dead tuples / (live + dead) above this is a finding")
    bloat_min_dead: int = Field(1000, ge=0, description="tables with fewer dead tuples are not a bloat finding")
    vacuum_max_age_days: int = Field(30, ge=1, description="tables not (auto)vacuumed and analysed within this are a finding")
    vacuum_min_rows: int = Field(1000, ge=0, description="smaller tables are left out of the vacuum age check (autovacuum leaves them alone)")
    index_min_bytes: int = Field(1024 * 1024, ge=0, description="unused indexes smaller than this are not a finding")
    cache_hit_min_percent: float = Field(95.0, ge=0, le=100, description="database cache hit ratio below this is a finding, %")


def _sections(stdout: str) -> dict[str, str]:
    """``{name: text}`` of output split by ``#orderops:<name>`` marker lines."""
    out, name = {}, None
    for line in stdout.splitlines():
        m = _SECTION.match(line.strip())
        if m:
            name = m.group(1)
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


# --- security: ports ------------------------------------------------------------------------

def parse_listening(text: str) -> set[int]:
    """TCP ports of ``ss -Htln`` lines (``LISTEN 0 4096 0.0.0.0:22 0.0.0.0:*``; IPv6 ``[::]:22``)."""
    ports = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3].rpartition(":")[2].isdigit():
            ports.add(int(parts[3].rpartition(":")[2]))
    return ports


def parse_published(text: str) -> dict[int, str]:
    """``{host port: container}`` of ``docker ps --format '{{.Names}}\\t{{.Ports}}'`` lines
    (``web\\t0.0.0.0:9001->8000/tcp, :::9001->8000/tcp``); TCP only."""
    out = {}
    for line in text.splitlines():
        name, _, ports = line.partition("\t")
        for m in re.finditer(r":(\d+)(?:-(\d+))?->\d+(?:-\d+)?/tcp", ports):
            for port in range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1):
                out[port] = name.strip()
    return out


def _is_local_address(address: str) -> bool:
    """``address`` (a name is resolved) is one of this machine's own: a bind to it succeeds."""
    try:
        infos = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        if ipaddress.ip_address(sockaddr[0]).is_loopback:
            return True
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((sockaddr[0], 0))
                return True
            except OSError:
                continue
    return False


def probe_address(ctx: StepContext) -> str:
    """The address this machine reaches the host on: ``controller_address``, else ``ssh_hostname``."""
    return getattr(ctx.host.settings, "controller_address", None) or ctx.host.data.get("ssh_hostname") or ctx.host.name


def no_vantage_reason(ctx: StepContext, address: str) -> str | None:
    """Why this machine cannot see the host from outside, or ``None``: the host is in group
    ``controller`` (the runbook runs on it), or ``address`` is this machine's own."""
    if "controller" in ctx.host.groups:
        return f"{NO_VANTAGE}: {ctx.host.name} is the controller host, the runbook runs on it"
    if _is_local_address(address):
        return f"{NO_VANTAGE}: {address} is an address of this machine"
    return None


def probe_ports(address: str, ports: list[int], timeout: float = 1.0) -> dict[int, str]:
    """``{port: open|closed|filtered}``: a TCP connect to each port of ``address`` from this
    machine (threads, ``timeout`` seconds each; no answer within it: ``filtered``)."""

    def one(port: int) -> tuple[int, str]:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return port, "open"
        except TimeoutError:
            return port, "filtered"
        except OSError:
            return port, "closed"

    with ThreadPoolExecutor(max_workers=min(64, max(1, len(ports)))) as pool:
        return dict(pool.map(one, ports))


# --- security: TLS, certificate, images, users ---------------------------------------------------

def parse_tls_probes(sections: dict[str, str]) -> dict[str, bool]:
    """``{version flag: accepted}`` from the ``tls-<flag>`` sections (``openssl s_client`` output
    followed by ``rc=<exit code>``): accepted when it exited 0 and negotiated a cipher."""
    out = {}
    for flag in TLS_VERSIONS:
        text = sections.get(f"tls-{flag}", "")
        out[flag] = "rc=0" in text.split() and "Cipher is (NONE)" not in text and bool(re.search(r"Cipher is \S", text))
    return out


def parse_certificate(text: str) -> dict[str, object]:
    """``{subject, names, not_after}`` of ``openssl x509 -noout -subject -enddate -ext subjectAltName``
    output (``names``: the DNS entries of the subjectAltName; ``not_after`` an aware datetime or ``None``)."""
    subject = next((l.split("=", 1)[1].strip() for l in text.splitlines() if l.startswith("subject=")), None)
    end = next((l.split("=", 1)[1].strip() for l in text.splitlines() if l.startswith("notAfter=")), None)
    not_after = datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc) if end else None
    return {"subject": subject, "names": re.findall(r"DNS:([^,\s]+)", text), "not_after": not_after}


def _covers(names: list[str], domain: str) -> bool:
    return any(n == domain or (n.startswith("*.") and domain.split(".", 1)[-1] == n[2:]) for n in names)


def image_age_days(created: str, now: datetime | None = None) -> int:
    """Whole days since Docker's ``Created`` time (RFC 3339 with nanoseconds, ``Z`` or an offset)."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?", created.strip())
    if not m:
        raise ValueError(f"not a Docker time: {created!r}")
    when = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(2) in (None, "Z") else m.group(2)))
    return ((now or datetime.now(timezone.utc)) - when).days


def parse_users(passwd: str, groups: str, sudoers: str) -> dict[str, dict[str, object]]:
    """``{user: {shell, login, sudo: [why]}}`` for users with a login shell or sudo rights.

    + passwd: ``getent passwd`` lines; a login shell is one not ending in nologin/false/sync
    + groups: ``getent group sudo admin`` lines (members in field 4)
    + sudoers: non-comment lines of ``/etc/sudoers.d/*`` as ``<file>:<line>`` (``grep -H``);
      a line's first word is a user, or ``%group`` (its members then count)
    """
    shells, members = {}, {}
    for line in passwd.splitlines():
        f = line.split(":")
        if len(f) >= 7:
            shells[f[0]] = f[6]
    for line in groups.splitlines():
        f = line.split(":")
        if len(f) >= 4:
            members[f[0]] = [m for m in f[3].split(",") if m]
    sudo: dict[str, list[str]] = {}
    for g in SUDO_GROUPS:
        for m in members.get(g, []):
            sudo.setdefault(m, []).append(f"group {g}")
    for line in sudoers.splitlines():
        path, _, rule = line.partition(":")
        words = rule.split()
        if not words or words[0].startswith(("#", "Defaults", "@", "Cmnd_Alias", "User_Alias", "Host_Alias", "Runas_Alias")):
            continue
        who = words[0]
        if who.startswith("%"):
            for m in members.get(who[1:], []):
                sudo.setdefault(m, []).append(f"{path} ({who})")
        else:
            sudo.setdefault(who, []).append(path)
    users = {u for u, s in shells.items() if not NO_LOGIN.search(s)} | set(sudo)
    return {u: {"shell": shells.get(u, "?"), "login": not NO_LOGIN.search(shells.get(u, "/nologin")), "sudo": sudo.get(u, [])}
            for u in sorted(users)}


def _scan_script(ctx: StepContext) -> str:
    domain = ctx.host.settings.domain
    cert = served_certificate_command(domain, options=("-subject", "-enddate", "-ext", "subjectAltName"))
    tls = "; ".join(
        f"echo '#orderops:tls-{flag}'; {{ openssl s_client -connect 127.0.0.1:443 -servername {shlex.quote(domain)} -{flag}"
        f"{' -cipher DEFAULT:@SECLEVEL=0' if not ok else ''} </dev/null 2>&1; echo \"rc=$?\"; }} | grep -E 'Cipher is|alert|^rc='"
        for flag, ok in TLS_VERSIONS.items())
    return "; ".join([
        "echo '#orderops:listening'; ss -Htln",
        "echo '#orderops:published'; docker ps --format '{{.Names}}\t{{.Ports}}'",
        f"echo '#orderops:sshd'; {SSHD_T_COMMAND}",
        tls,
        f"echo '#orderops:certificate'; {cert}",
        "echo '#orderops:containers'; docker ps -q | xargs -r docker inspect --format '{{.Name}}\t{{.Config.Image}}\t{{.Image}}'",
        "echo '#orderops:images'; docker ps -q | xargs -r docker inspect --format '{{.Image}}' | sort -u"
        " | xargs -r docker image inspect --format '{{.Id}}\t{{.Created}}'",
        "echo '#orderops:passwd'; getent passwd",
        f"echo '#orderops:groups'; getent group {' '.join(SUDO_GROUPS)} || true",
        "echo '#orderops:sudoers'; grep -HEv '^[[:space:]]*(#|$)' /etc/sudoers.d/* 2>/dev/null || true",
    ])


@step("Security scan", timeout=300)
def security_scan(ctx: StepContext) -> StepResult:
    """Six parts, one table each; any finding fails the step and is named in the message.

    - **Ports from outside**: candidates are the ports the host listens on (`ss -Htln`), the ports
      containers publish and the allowlist (`firewall_allow_tcp`); each is probed by a TCP connect
      from the machine the runbook runs on. An open port not in the allowlist is a finding. When
      the runbook runs on the target host (group `controller`, or the host's address is this
      machine's own) there is no outside vantage point: the part says so and probes nothing.
    - **Security updates**: `apt-get -s upgrade` packages from a `-security` suite (weekly's reading).
    - **sshd**: `sshd -T` against the hardening policy (`deploys/contract/sshd.py`, with the
      inventory's `AllowGroups`).
    - **TLS**: from the host, `openssl s_client` to 127.0.0.1:443 with the domain as SNI: TLS 1.0
      and 1.1 must be refused (the client allows them, SECLEVEL=0), 1.2 and 1.3 accepted; the
      served certificate's subject, DNS names (must cover the domain) and days left (`cert_min_days`).
    - **Image age**: images of running containers created more than `max_image_age_days` ago.
    - **Users**: users with a login shell or sudo rights (groups sudo/admin, `/etc/sudoers.d`)
      other than the deploy user, the SSH user and `expected_users`; root's shell is noted.
    """
    s, p = ctx.host.settings, ctx.params
    out = ctx.sh(_scan_script(ctx))
    sec = _sections(out.stdout)
    if "listening" not in sec:
        return ctx.failed(f"the scan command printed nothing (rc {out.rc}): {out.stderr.strip()[-300:]}")
    findings: list[str] = []
    tables: list[Table] = []
    data: dict[str, object] = {}

    # (a) ports
    allowed = sorted(set(s.firewall_allow_tcp))
    listening, published = parse_listening(sec.get("listening", "")), parse_published(sec.get("published", ""))
    candidates = sorted(listening | set(published) | set(allowed))
    address = probe_address(ctx)
    reason = no_vantage_reason(ctx, address)
    if reason:
        data["ports"] = {"probed": False, "reason": reason, "candidates": candidates}
        tables.append(Table(f"ports from outside: {reason}", ["port", "source", "allowed", "state"],
                            [[q, _source(q, listening, published, allowed), q in allowed, "not probed"] for q in candidates]))
    else:
        states = probe_ports(address, candidates, p.probe_timeout)
        stray = [q for q in candidates if states[q] == "open" and q not in allowed]
        data["ports"] = {"probed": True, "address": address, "open": sorted(q for q in candidates if states[q] == "open"),
                         "not_allowed": stray}
        tables.append(Table(f"ports from outside ({address})", ["port", "source", "allowed", "state"],
                            [[q, _source(q, listening, published, allowed), q in allowed, states[q]] for q in candidates]))
        if stray:
            findings.append("reachable from outside, not in firewall_allow_tcp: "
                            + ", ".join(f"{q}{f' ({published[q]})' if q in published else ''}" for q in stray))

    # (b) security updates
    got = _pending(ctx)
    if isinstance(got, str):
        findings.append(got)
    else:
        sec_pkgs = [x for x in got[0] if x["security"]]
        data["security_updates"] = [x["package"] for x in sec_pkgs]
        tables.append(Table("pending security updates", ["package", "current", "candidate", "suites"],
                            [[x["package"], x["current"], x["candidate"], x["suites"]] for x in sec_pkgs]))
        if sec_pkgs:
            findings.append(f"{len(sec_pkgs)} pending security update(s): {', '.join(data['security_updates'])}")

    # (c) sshd
    effective = parse_sshd_t(sec.get("sshd", "").splitlines())
    wanted = policy(s.ssh_allow_groups)
    if not effective:
        findings.append("sshd -T printed nothing")
    else:
        bad = mismatches(effective, wanted)
        data["sshd"] = bad
        tables.append(Table("sshd -T against the hardening policy", ["keyword", "in force", "wanted", "ok"],
                            [[k, effective.get(k.lower(), ""), v, not mismatches(effective, {k: v})] for k, v in wanted.items()]))
        if bad:
            findings.append("sshd: " + "; ".join(bad))

    # (d) TLS
    accepted = parse_tls_probes(sec)
    cert = parse_certificate(sec.get("certificate", ""))
    rows = [[f"TLS {f[3:].replace('_', '.')}", "accepted" if accepted[f] else "refused", "accepted" if want else "refused"]
            for f, want in TLS_VERSIONS.items()]
    wrong = [f"TLS {f[3:].replace('_', '.')} {'accepted' if accepted[f] else 'refused'}"
             for f, want in TLS_VERSIONS.items() if accepted[f] != want]
    days = (cert["not_after"] - datetime.now(timezone.utc)).days if cert["not_after"] else None
    rows += [["certificate subject", cert["subject"] or "unreadable", ""],
             ["certificate names", " ".join(cert["names"]) or "none", s.domain],
             ["certificate days left", days if days is not None else "unreadable", f">= {p.cert_min_days}"]]
    if days is None:
        wrong.append("no readable certificate served on 127.0.0.1:443")
    else:
        if days < p.cert_min_days:
            wrong.append(f"certificate expires in {days} days (< {p.cert_min_days})")
        if not _covers(cert["names"], s.domain):
            wrong.append(f"certificate names {cert['names']} do not cover {s.domain}")
    data["tls"] = {"accepted": accepted, "subject": cert["subject"], "names": cert["names"], "days_left": days}
    tables.append(Table("TLS of the served site", ["what", "seen", "wanted"], rows))
    findings += wrong

    # (e) image age
    created = {}
    for line in sec.get("images", "").splitlines():
        iid, _, when = line.partition("\t")
        if when.strip():
            created[iid.strip()] = image_age_days(when)
    rows, old = [], []
    for line in sec.get("containers", "").splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            name, ref, iid = parts[0].lstrip("/"), parts[1], parts[2].strip()
            age = created.get(iid)
            rows.append([name, ref, age if age is not None else "?"])
            if age is not None and age > p.max_image_age_days:
                old.append(f"{name} ({ref}, {age} days)")
    data["old_images"] = old
    tables.append(Table(f"images of running containers (max {p.max_image_age_days} days)", ["container", "image", "age days"], rows))
    if old:
        findings.append(f"image(s) older than {p.max_image_age_days} days: {', '.join(old)}")

    # (f) users
    users = parse_users(sec.get("passwd", ""), sec.get("groups", ""), sec.get("sudoers", ""))
    expected = {s.deploy_user, ctx.host.data.get("ssh_user") or s.deploy_user, *p.expected_users}
    rows, unexpected = [], []
    for u, info in users.items():
        note = "root (noted)" if u == "root" else "expected" if u in expected else "unexpected"
        rows.append([u, info["shell"], info["login"], ", ".join(info["sudo"]) or "-", note])
        if note == "unexpected":
            unexpected.append(f"{u} ({'login shell ' + str(info['shell']) if info['login'] else ''}"
                              f"{', ' if info['login'] and info['sudo'] else ''}{'sudo: ' + ', '.join(info['sudo']) if info['sudo'] else ''})")
    data["users"] = {u: {"shell": i["shell"], "sudo": i["sudo"]} for u, i in users.items()}
    tables.append(Table("users with a login shell or sudo rights", ["user", "shell", "login", "sudo", "expected"], rows))
    if unexpected:
        findings.append(f"unexpected user(s): {', '.join(unexpected)}")

    data["findings"] = findings
    if findings:
        return ctx.failed(f"{len(findings)} finding(s): " + " | ".join(findings), data, tables)
    ports = data["ports"]
    head = f"ports: {ports['reason']}" if not ports["probed"] else f"{len(ports['open'])} port(s) open from outside, all allowed"
    return ctx.ok(f"no findings; {head}", data, tables)


def _source(port: int, listening: set[int], published: dict[int, str], allowed: list[int]) -> str:
    return ", ".join(x for x, yes in (("listens", port in listening), (f"published by {published.get(port)}", port in published),
                                      ("allowlist", port in allowed)) if yes)


# --- database ----------------------------------------------------------------------------------

_PSS = DB_PRELOAD_EXTENSIONS[0]

#: One JSON document: tables, indexes, the database's cache counters, whether pg_stat_statements exists.
#: Marks the runbook's own statements, left out of the slowest ones.
_MARK = "orderops-monthly"
#: Shown instead of a statement's text when it names a password (utility statements are stored verbatim).
WITHHELD = "<statement naming a password: text withheld>"

_STATS_SQL = f"""/* {_MARK} */ SELECT json_build_object(
 'tables', (SELECT coalesce(json_agg(json_build_object('table', schemaname || '.' || relname, 'live', n_live_tup,
   'dead', n_dead_tup, 'vacuumed', extract(epoch FROM greatest(last_vacuum, last_autovacuum)),
   'analysed', extract(epoch FROM greatest(last_analyze, last_autoanalyze))) ORDER BY relname), '[]') FROM pg_stat_user_tables),
 'unused_indexes', (SELECT coalesce(json_agg(json_build_object('index', s.schemaname || '.' || s.indexrelname,
   'table', s.relname, 'bytes', pg_relation_size(s.indexrelid)) ORDER BY s.indexrelname), '[]')
   FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
   WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary),
 'blks_hit', (SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()),
 'blks_read', (SELECT blks_read FROM pg_stat_database WHERE datname = current_database()),
 'now', extract(epoch FROM now()),
 'pss', EXISTS (SELECT 1 FROM pg_extension WHERE extname = '{_PSS}'))"""


def _slow_sql(top: int) -> str:
    return (f"/* {_MARK} */ SELECT coalesce(json_agg(t), '[]') FROM (SELECT CASE WHEN query ~* 'passw' THEN '{WITHHELD}'"
            " ELSE left(regexp_replace(query, '\\s+', ' ', 'g'), 200) END AS query, calls,"
            " round(mean_exec_time::numeric, 2) AS mean_ms, round(total_exec_time::numeric, 2) AS total_ms"
            f" FROM {_PSS} WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            f" AND query NOT LIKE '%{_MARK}%'"
            f" ORDER BY mean_exec_time DESC LIMIT {int(top)}) t")


@step("Database performance", timeout=180)
def database(ctx: StepContext) -> StepResult:
    """The order database's statistics, one table each; findings over the thresholds fail the step.

    - **Slowest statements**: top `top` by mean time from `pg_stat_statements` (this database);
      a mean above `slow_query_ms` is a finding (the runbook's own statements left out; a text
      naming a password is withheld). Without the extension (or not preloaded) this part is
      skipped with the reason.
    - **Bloat**: dead tuples / (live + dead) of `pg_stat_user_tables` above `bloat_max_ratio`
      (tables with at least `bloat_min_dead` dead tuples).
    - **Vacuum age**: tables with at least `vacuum_min_rows` rows never (auto)vacuumed or analysed,
      or not within `vacuum_max_age_days`.
    - **Unused indexes**: `idx_scan = 0` since the statistics were reset, unique and primary-key
      indexes excluded, of at least `index_min_bytes`.
    - **Cache hit ratio**: `blks_hit / (blks_hit + blks_read)` of `pg_stat_database` below
      `cache_hit_min_percent`.
    """
    p = ctx.params
    out = ctx.sh(f"{psql(ctx, _STATS_SQL)}; echo '#orderops:slow'; {psql(ctx, _slow_sql(p.top))} 2>&1 || true")
    first, _, slow_text = out.stdout.partition("#orderops:slow")
    try:
        stats = json.loads(first.strip())
    except ValueError:
        return ctx.failed(f"reading pg_stat_* failed: {(out.stderr or first).strip()[-300:]}")
    findings, tables, data, notes = [], [], {}, []

    # slow statements
    if not stats["pss"]:
        notes.append(f"{_PSS} not installed: slow statements skipped")
        data["slow"] = None
    else:
        try:
            slow = json.loads(slow_text.strip())  # json_agg puts a line break between elements
        except ValueError:
            slow = None
            notes.append(f"{_PSS} unreadable: slow statements skipped ({slow_text.strip()[-200:]})")
        if slow is not None:
            over = [q for q in slow if float(q["mean_ms"]) > p.slow_query_ms]
            data["slow"] = over
            tables.append(Table(f"slowest statements (top {p.top} by mean, threshold {p.slow_query_ms} ms)",
                                ["mean ms", "calls", "total ms", "statement"],
                                [[q["mean_ms"], q["calls"], q["total_ms"], q["query"]] for q in slow]))
            if over:
                findings.append(f"{len(over)} statement(s) slower than {p.slow_query_ms} ms on average: "
                                + "; ".join(f"{q['query'][:80]} ({q['mean_ms']} ms)" for q in over[:3]))

    now = float(stats["now"])
    max_age = p.vacuum_max_age_days * 86400
    rows, bloated, stale = [], [], []
    for t in stats["tables"]:
        live, dead = int(t["live"]), int(t["dead"])
        ratio = dead / (live + dead) if live + dead else 0.0
        vac_days = round((now - t["vacuumed"]) / 86400, 1) if t["vacuumed"] else None
        ana_days = round((now - t["analysed"]) / 86400, 1) if t["analysed"] else None
        rows.append([t["table"], live, dead, round(ratio, 3), "never" if vac_days is None else vac_days,
                     "never" if ana_days is None else ana_days])
        if ratio > p.bloat_max_ratio and dead >= p.bloat_min_dead:
            bloated.append(f"{t['table']} ({ratio:.0%} dead)")
        if live + dead >= p.vacuum_min_rows:
            late = [w for w, ts in (("vacuumed", t["vacuumed"]), ("analysed", t["analysed"])) if not ts or now - ts > max_age]
            if late:
                stale.append(f"{t['table']} (not {' or '.join(late)} in {p.vacuum_max_age_days} days)")
    tables.append(Table("tables: dead tuples and (auto)vacuum age", ["table", "live", "dead", "dead ratio", "vacuumed days ago",
                                                                     "analysed days ago"], rows))
    if bloated:
        findings.append(f"bloat over {p.bloat_max_ratio:.0%}: {', '.join(bloated)}")
    if stale:
        findings.append(f"vacuum/analyse overdue: {', '.join(stale)}")

    unused = [i for i in stats["unused_indexes"] if int(i["bytes"]) >= p.index_min_bytes]
    tables.append(Table("unused indexes (idx_scan = 0, not unique/primary)", ["index", "table", "bytes"],
                        [[i["index"], i["table"], i["bytes"]] for i in stats["unused_indexes"]]))
    if unused:
        findings.append(f"unused index(es): {', '.join(i['index'] for i in unused)}")

    hit, read = int(stats["blks_hit"] or 0), int(stats["blks_read"] or 0)
    ratio = round(100 * hit / (hit + read), 2) if hit + read else 100.0
    tables.append(Table("cache hit ratio", ["blocks hit", "blocks read", "hit %", "minimum %"], [[hit, read, ratio, p.cache_hit_min_percent]]))
    if ratio < p.cache_hit_min_percent:
        findings.append(f"cache hit ratio {ratio}% < {p.cache_hit_min_percent}%")

    data.update(bloated=bloated, stale=stale, unused_indexes=[i["index"] for i in unused], cache_hit_percent=ratio,
                findings=findings, notes=notes)
    tail = f" ({'; '.join(notes)})" if notes else ""
    if findings:
        return ctx.failed(f"{len(findings)} finding(s): " + " | ".join(findings) + tail, data, tables)
    return ctx.ok(f"no findings; cache hit {ratio}%{tail}", data, tables)


RUNBOOK = Runbook(name="monthly", title="Monthly security and database review", doc=__doc__, params=MonthlyParams,
                  steps=(security_scan, database, forecast))
