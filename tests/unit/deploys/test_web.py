"""Front-end releases: the fact parser, the CSP merge, the decision (data cases), the operation's
commands through the generic runner (tests/unit/deploys/opcases.py), and the switch/prune/CSP
commands run for real with sh."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from deploys.facts.web import WebReleases, parse_web_releases
from deploys.operations import web
from deploys.operations.web import (
    csp_conf_text, csp_write_command, manifest_paths, merge_policies, parse_policy, plan, prune_command, switch_command,
)
from tests.unit.deploys.opcases import check_case


def sh(command) -> None:
    subprocess.run(["sh", "-c", command.get_raw_value()], check=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_parse_fact_output():
    lines = ["current releases/b", "previous ", "release 100 a", "release 200 b", "release x bad", "noise",
             "policy current default-src 'self'; script-src 'self' 'sha256-B'", "policy previous ",
             "csp.conf " + "a" * 64]
    assert parse_web_releases(lines) == {
        "current": "b", "previous": None, "releases": {"a": 100, "b": 200},
        "current_policy": "default-src 'self'; script-src 'self' 'sha256-B'", "previous_policy": None,
        "csp_conf_sha256": "a" * 64,
    }
    assert parse_web_releases(["current /elsewhere/x"])["current"] is None
    assert parse_web_releases(["csp.conf not-a-digest"])["csp_conf_sha256"] is None


def test_fact_command_reads_a_real_tree(tmp_path):
    root = tmp_path / "web root"
    for rid in ("a", "b"):
        (root / "releases" / rid).mkdir(parents=True)
        (root / "releases" / rid / "RELEASE").write_text(rid)
        (root / "releases" / rid / "csp.txt").write_text(f"script-src 'self' 'sha256-{rid}'\n")
    (root / "releases" / ".c.part").mkdir()
    (root / "current").symlink_to("releases/b")
    (root / "previous").symlink_to("releases/a")
    (root / "csp.conf").write_text("set $orderops_web_csp x;\n")
    out = subprocess.run(["sh", "-c", WebReleases().command(str(root)).get_raw_value()], capture_output=True, text=True, check=True)
    facts = parse_web_releases(out.stdout.splitlines())
    assert facts["current"] == "b" and facts["previous"] == "a" and set(facts["releases"]) == {"a", "b"}
    assert facts["current_policy"] == "script-src 'self' 'sha256-b'"
    assert facts["previous_policy"] == "script-src 'self' 'sha256-a'"
    assert facts["csp_conf_sha256"] == sha("set $orderops_web_csp x;\n")
    (root / "csp.conf").unlink()
    (root / "previous").unlink()
    out = subprocess.run(["sh", "-c", WebReleases().command(str(root)).get_raw_value()], capture_output=True, text=True, check=True)
    facts = parse_web_releases(out.stdout.splitlines())
    assert facts["csp_conf_sha256"] is None and facts["previous_policy"] is None
    missing = subprocess.run(["sh", "-c", WebReleases().command(str(tmp_path / "none")).get_raw_value()],
                             capture_output=True, text=True, check=True)
    assert missing.stdout == ""


# A policy as order_service/web/scripts/csp.mjs writes it, and one of a later build.
P_OLD = ("default-src 'self'; script-src 'self' 'sha256-Bbb=' 'sha256-Ddd='; style-src 'self'; img-src 'self' data: blob:; "
         "object-src 'none'; frame-ancestors 'none'")
P_NEW = ("default-src 'self'; script-src 'self' 'sha256-Aaa=' 'sha256-Ddd='; style-src 'self'; img-src 'self' data: blob:; "
         "object-src 'none'; frame-ancestors 'none'")
P_UNION = ("default-src 'self'; script-src 'self' 'sha256-Aaa=' 'sha256-Bbb=' 'sha256-Ddd='; style-src 'self'; "
           "img-src 'self' data: blob:; object-src 'none'; frame-ancestors 'none'")

MERGE_CASES = [
    # (name, policies, expected)
    ("one policy is itself", [P_NEW], P_NEW),
    ("hash sources unioned, sorted; other directives as they are", [P_NEW, P_OLD], P_UNION),
    ("the same either way round (a rollback swaps them)", [P_OLD, P_NEW], P_UNION),
    ("a policy with itself", [P_OLD, P_OLD], P_OLD),
    ("a directive of one policy only is kept, in its place",
     ["default-src 'self'; frame-ancestors 'none'", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'"],
     "default-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
    ("other sources in first-seen order (policies taken in sorted order), before the hashes",
     ["script-src https://cdn.example 'sha256-A='", "script-src 'self' 'sha256-Z='"],
     "script-src 'self' https://cdn.example 'sha256-A=' 'sha256-Z='"),
    ("'none' gives way to real sources", ["img-src 'none'", "img-src 'self'"], "img-src 'self'"),
    ("a directive without sources", ["upgrade-insecure-requests; default-src 'self'", "default-src 'self'"],
     "default-src 'self'; upgrade-insecure-requests"),
    ("names lower-cased, a repeated directive ignored, empty parts dropped",
     ["Default-Src 'self';; default-src *;", "default-src 'self'"], "default-src 'self'"),
]


@pytest.mark.parametrize(("name", "policies", "expected"), MERGE_CASES, ids=[c[0] for c in MERGE_CASES])
def test_merge_policies(name, policies, expected):
    assert merge_policies(*policies) == expected


def test_merge_needs_a_policy_and_parse_splits_directives():
    with pytest.raises(ValueError, match="no policy"):
        merge_policies()
    assert parse_policy(" script-src  'self'\t'sha256-A=' ; ; object-src 'none'") == [
        ("script-src", ["'self'", "'sha256-A='"]), ("object-src", ["'none'"])]


def test_csp_conf_text_is_one_nginx_set_line_and_refuses_what_nginx_reads_differently():
    text = csp_conf_text(P_NEW)
    assert text.splitlines()[-1] == f'set $orderops_web_csp "{P_NEW}";'
    assert all(line.startswith("#") for line in text.splitlines()[:-1])
    for bad in ('a "quoted" source', "a $variable", "a \\ escape", "two\nlines"):
        with pytest.raises(ValueError, match="nginx would read differently"):
            csp_conf_text(bad)


def test_csp_write_replaces_by_rename(tmp_path):
    (tmp_path / ".csp.conf.new").write_text("new\n")
    (tmp_path / "csp.conf").write_text("old\n")
    sh(csp_write_command(str(tmp_path)))
    assert (tmp_path / "csp.conf").read_text() == "new\n" and not (tmp_path / ".csp.conf.new").exists()
    assert (tmp_path / "csp.conf").stat().st_mode & 0o777 == 0o644


def releases_facts(current=None, previous=None, releases=None, current_policy=None, previous_policy=None, csp=None):
    return {"current": current, "previous": previous, "releases": releases or {}, "current_policy": current_policy,
            "previous_policy": previous_policy, "csp_conf_sha256": sha(csp) if csp is not None else None}


PLAN_CASES = [
    # (name, facts, wanted, keep, expected release part of the plan)
    ("first deploy", releases_facts(), "n", 3,
     {"upload": True, "switch": True, "previous": None, "prune": []}),
    ("already current: nothing", releases_facts("n", "o", {"n": 2, "o": 1}), "n", 3,
     {"upload": False, "switch": False, "previous": "o", "prune": []}),
    ("new release: old current becomes previous", releases_facts("o", None, {"o": 1}), "n", 3,
     {"upload": True, "switch": True, "previous": "o", "prune": []}),
    ("rollback to a kept release: no upload", releases_facts("n", "o", {"n": 2, "o": 1}), "o", 3,
     {"upload": False, "switch": True, "previous": "n", "prune": []}),
    ("prune oldest beyond keep; the old current stays as previous", releases_facts("c", "b", {"a": 1, "b": 2, "c": 3}),
     "n", 2, {"upload": True, "switch": True, "previous": "c", "prune": ["b", "a"]}),
    ("interrupted switch (current missing from releases) is redone", releases_facts("n"),
     "n", 3, {"upload": True, "switch": True, "previous": None, "prune": []}),
]


@pytest.mark.parametrize(("name", "facts", "wanted", "keep", "expected"), PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan(name, facts, wanted, keep, expected):
    got = plan(facts, wanted, keep, P_NEW)
    assert {key: got[key] for key in expected} == expected


CSP_PLAN_CASES = [
    # (name, facts, wanted, the policy csp.conf must hold (None: csp.conf stays))
    ("first deploy: the release's own policy", releases_facts(), "n", P_NEW),
    ("switch: the union with the old current (previous after the run)",
     releases_facts("o", "x", {"o": 2, "x": 1}, P_OLD, "default-src 'none'", csp=csp_conf_text(P_OLD)), "n", P_UNION),
    ("steady state: union(current, previous) is there", releases_facts("n", "o", {"n": 2, "o": 1}, P_NEW, P_OLD,
                                                                       csp=csp_conf_text(P_UNION)), "n", None),
    ("rollback: the same two releases, no CSP change", releases_facts("n", "o", {"n": 2, "o": 1}, P_NEW, P_OLD,
                                                                      csp=csp_conf_text(P_UNION)), "o", None),
    ("no csp.conf yet (a host of the earlier layout): written", releases_facts("n", "o", {"n": 2, "o": 1}, P_NEW, P_OLD),
     "n", P_UNION),
    ("an older release without csp.txt adds nothing", releases_facts("o", None, {"o": 1}, None, None), "n", P_NEW),
]


@pytest.mark.parametrize(("name", "facts", "wanted", "policy"), CSP_PLAN_CASES, ids=[c[0] for c in CSP_PLAN_CASES])
def test_plan_csp(name, facts, wanted, policy):
    wanted_policy = P_OLD if wanted == "o" else P_NEW
    assert plan(facts, wanted, 3, wanted_policy)["csp"] == (csp_conf_text(policy) if policy else None)


# The operation through the generic runner. ARTIFACT is replaced by a built artifact (fixture).
ROOT = "/srv/x/web"
RELOAD = "docker compose exec -T nginx sh -c reload-and-wait"
PART = f"{ROOT}/releases/.r2.part"
KEY = (WebReleases, (("root", ROOT),))
UPLOAD = [
    f"rm -rf {PART} && mkdir -p {PART} {PART}/site",
    f"<upload {PART}/csp.txt>",
    f"<upload {PART}/site/index.html>",
    f"<upload {PART}/MANIFEST>",
    f"cd {PART} && sha256sum -c --quiet --strict MANIFEST && chmod -R u=rwX,go=rX . && echo r2 > RELEASE"
    f" && mv -T {PART} {ROOT}/releases/r2",
]
WRITE_CSP = [f"<upload {ROOT}/.csp.conf.new>", f"chmod 644 {ROOT}/.csp.conf.new && mv -fT {ROOT}/.csp.conf.new {ROOT}/csp.conf"]


def link(name: str, rid: str) -> str:
    return f"ln -sfn releases/{rid} {ROOT}/.{name}.new && mv -fT {ROOT}/.{name}.new {ROOT}/{name}"


OP_CASES = [
    {"name": "first deploy: upload, the release's csp.conf, reload, then the switch",
     "facts": {KEY: releases_facts()},
     "commands": UPLOAD + WRITE_CSP + [RELOAD, link("current", "r2")], "csp": P_NEW},
    {"name": "no change: the release is current and csp.conf is union(current, previous)",
     "facts": {KEY: releases_facts("r2", "r1", {"r2": 2, "r1": 1}, P_NEW, P_OLD, csp=csp_conf_text(P_UNION))},
     "noop": "front end release r2 is current"},
    {"name": "switch: csp.conf (union with the old current) written, nginx reloaded, then current switched",
     "facts": {KEY: releases_facts("r1", "r0", {"r1": 2, "r0": 1}, P_OLD, P_OLD, csp=csp_conf_text(P_OLD))},
     "commands": UPLOAD + WRITE_CSP + [RELOAD, link("previous", "r1") + " && " + link("current", "r2")], "csp": P_UNION},
    {"name": "rollback to the previous release: no upload, no CSP change, no reload",
     "facts": {KEY: releases_facts("r3", "r2", {"r3": 3, "r2": 2}, P_OLD, P_NEW, csp=csp_conf_text(P_UNION))},
     "commands": [link("previous", "r3") + " && " + link("current", "r2")]},
    {"name": "same policy in the new release: no CSP change, no reload",
     "facts": {KEY: releases_facts("r1", None, {"r1": 1}, P_NEW, None, csp=csp_conf_text(P_NEW))},
     "commands": UPLOAD + [link("previous", "r1") + " && " + link("current", "r2")]},
    {"name": "current, but csp.conf missing (earlier layout): written and reloaded, no switch",
     "facts": {KEY: releases_facts("r2", "r1", {"r2": 2, "r1": 1}, P_NEW, P_OLD)},
     "commands": WRITE_CSP + [RELOAD], "csp": P_UNION},
]


@pytest.fixture
def artifact(tmp_path) -> Path:
    """A small built front end (the layout of tools/build_web.py) whose policy is P_NEW, release id r2."""
    art = tmp_path / "artifact"
    (art / "site").mkdir(parents=True)
    (art / "site" / "index.html").write_text("<html></html>")
    (art / "csp.txt").write_text(P_NEW + "\n")
    lines = [f"{hashlib.sha256((art / rel).read_bytes()).hexdigest()}  {rel}" for rel in ("csp.txt", "site/index.html")]
    (art / "MANIFEST").write_text("\n".join(lines) + "\n")
    (art / "RELEASE").write_text("r2\n")
    return art


@pytest.mark.parametrize("case", OP_CASES, ids=[c["name"] for c in OP_CASES])
def test_release_operation(case, artifact):
    case = {**case, "kwargs": {"artifact": str(artifact), "root": ROOT, "reload_command": RELOAD, "keep": 3}}
    commands, _noops, uploads = check_case(web.release, case)
    if "csp" in case:
        assert uploads[f"{ROOT}/.csp.conf.new"] == csp_conf_text(case["csp"])
    else:
        assert f"{ROOT}/.csp.conf.new" not in uploads
    if RELOAD in commands:  # the policy is in force before any request can see the new release
        switch = [i for i, c in enumerate(commands) if f"{ROOT}/.current.new" in c]
        assert commands.index(WRITE_CSP[1]) < commands.index(RELOAD) < (switch or [len(commands)])[0]


def test_switch_and_prune_on_a_real_tree(tmp_path):
    root = tmp_path / "web"
    for rid in ("a", "b", "c"):
        (root / "releases" / rid / "site").mkdir(parents=True)
        (root / "releases" / rid / "site" / "index.html").write_text(rid)
    (root / "releases" / ".d.part").mkdir()
    sh(switch_command(str(root), "a", None))
    assert (root / "current" / "site" / "index.html").read_text() == "a"
    sh(switch_command(str(root), "b", "a"))
    assert (root / "current" / "site" / "index.html").read_text() == "b"
    assert (root / "previous" / "site" / "index.html").read_text() == "a"
    assert str((root / "current").readlink()) == "releases/b"  # relative: valid inside the nginx container too
    sh(prune_command(str(root), ["c"]))
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["a", "b"]


def test_manifest_paths_refuse_escapes(tmp_path):
    good = "0" * 64 + "  site/index.html\n"
    (tmp_path / "MANIFEST").write_text(good)
    assert manifest_paths(tmp_path) == ["site/index.html"]
    (tmp_path / "MANIFEST").write_text(good + "0" * 64 + "  ../etc/passwd\n")
    with pytest.raises(ValueError, match="bad line"):
        manifest_paths(tmp_path)
