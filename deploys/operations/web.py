"""Ship a built front end (tools/build_web.py) as a release directory and switch to it atomically.

A release is uploaded file by file into ``releases/.<id>.part``, checked on the host with
``sha256sum -c MANIFEST``, marked complete (``RELEASE``, written last) and renamed to
``releases/<id>``; then ``current`` is replaced by a new symlink with ``mv -T`` (rename(2):
every request sees the old or the new release, never a mix). ``previous`` keeps pointing at the
release before, so a page loaded just before the switch still finds its hashed assets. The
release id is the artifact's content hash: the same artifact is never uploaded twice.

The Content-Security-Policy nginx sends comes from one file outside the releases,
``<root>/csp.conf`` (``set $orderops_web_csp "...";``, included by the vhost): the union
(:func:`merge_policies`) of the ``csp.txt`` of the wanted release and of the release that is
``previous`` after the run. So the policy in force allows both the pages being served and the
pages about to be served, and the order on a switch is: upload and verify, write ``csp.conf``
(temporary file + ``mv``, only when its content differs), reload nginx (the caller's command,
which returns once the new configuration answers), and only then switch ``current``: the new
release's HTML is never served with the old release's policy. In the steady state the file is
union(current, previous), the same text as written before the switch, so a second run changes
nothing; a rollback to the previous release swaps the two and needs no CSP change (the union
does not depend on the order of its arguments).
"""

from __future__ import annotations

import hashlib
from io import StringIO
from pathlib import Path, PurePosixPath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand

from deploys.contract.paths import WEB_CSP_CONF
from deploys.facts.web import WebReleases

__all__ = [
    "release", "plan", "manifest_paths", "switch_command", "prune_command", "parse_policy", "merge_policies",
    "csp_conf_text", "csp_write_command", "CSP_CONF",
]

#: The file below the web root that the vhost includes (templates/nginx/orderops.conf.j2).
CSP_CONF = WEB_CSP_CONF
#: Hash sources of CSP Level 2/3 (``'sha256-<base64>'``; case-sensitive values, sorted in a merge).
_HASH_PREFIXES = ("'sha256-", "'sha384-", "'sha512-")


def parse_policy(text: str) -> list[tuple[str, list[str]]]:
    """The directives of a serialized policy (W3C CSP3, section 2.2.1): ``[(name, [source, ...]), ...]``.

    Directives are split at ``;``, tokens at ASCII whitespace; names are lower-cased, sources kept
    as written. Empty directives are skipped and a repeated directive is ignored (as browsers do).
    """
    directives: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for part in text.split(";"):
        tokens = part.split()
        if not tokens or tokens[0].lower() in seen:
            continue
        seen.add(tokens[0].lower())
        directives.append((tokens[0].lower(), tokens[1:]))
    return directives


def merge_policies(*policies: str) -> str:
    """The union of ``policies`` (serialized CSPs such as a release's ``csp.txt``), serialized.

    Per directive the source lists are unioned: other sources first, in the order they first
    appear, then hash sources (``'sha256-...'``) sorted; ``'none'`` is dropped from a list that
    has other sources. Directives keep their order; a directive found in one policy only is kept
    as it is. The policies are merged in sorted order, so the result does not depend on the order
    of the arguments (a rollback, which swaps current and previous, gives the same text), and
    ``merge_policies(p) == p`` for a policy written by order_service/web/scripts/csp.mjs.

    Raises ValueError when no policy is given.
    """
    if not policies:
        raise ValueError("merge_policies: no policy")
    merged: dict[str, list[str]] = {}
    for text in sorted(policies):
        for name, sources in parse_policy(text):
            union = merged.setdefault(name, [])
            union += [source for source in dict.fromkeys(sources) if source not in union]
    parts = []
    for name, sources in merged.items():
        hashes = sorted(s for s in sources if s.lower().startswith(_HASH_PREFIXES))
        others = [s for s in sources if not s.lower().startswith(_HASH_PREFIXES)]
        if len(others) + len(hashes) > 1:
            others = [s for s in others if s.lower() != "'none'"]
        parts.append(" ".join([name, *others, *hashes]))
    return "; ".join(parts)


def csp_conf_text(policy: str) -> str:
    """The root's ``csp.conf``: a comment and ``set $orderops_web_csp "<policy>";`` (nginx syntax).

    Raises ValueError when ``policy`` has a character that would change the nginx string
    (``"``, ``\\``, ``$``) or a control character (a newline would end the directive).
    """
    bad = sorted({c for c in policy if c in '"\\$' or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        raise ValueError(f"policy has characters nginx would read differently: {bad!r}")
    return (
        "# Managed by orderops (deploys/operations/web.py): the union of the Content-Security-Policy of\n"
        "# the current and the previous front-end release (their csp.txt); included by the vhost.\n"
        f'set $orderops_web_csp "{policy}";\n'
    )


def csp_write_command(root: str) -> StringCommand:
    """Put the uploaded ``<root>/.csp.conf.new`` in place as ``<root>/csp.conf`` (0644, by rename)."""
    tmp, dest = f"{root}/.{CSP_CONF}.new", f"{root}/{CSP_CONF}"
    return StringCommand("chmod", "644", QuoteString(tmp), "&&", "mv", "-fT", QuoteString(tmp), QuoteString(dest))


def manifest_paths(artifact: Path) -> list[str]:
    """The relative file paths of the artifact's ``MANIFEST`` (``sha256sum`` lines), in order.

    Raises ValueError for a path that is absolute or leaves the artifact (``..``).
    """
    paths = []
    for line in (artifact / "MANIFEST").read_text().splitlines():
        if not line.strip():
            continue
        rel = line[66:] if len(line) > 66 and line[64:66] == "  " else ""
        pure = PurePosixPath(rel)
        if not rel or pure.is_absolute() or ".." in pure.parts:
            raise ValueError(f"{artifact}/MANIFEST: bad line {line!r}")
        paths.append(rel)
    return paths


def plan(facts: dict, release_id: str, keep: int, policy: str) -> dict:
    """What to do on a host whose :class:`WebReleases` are ``facts``, for the release ``release_id``
    whose policy (its ``csp.txt``) is ``policy``.

    Returns ``{"upload": bool, "switch": bool, "previous": <id>|None, "prune": [<id>, ...],
    "csp": <csp.conf text>|None}``: upload when the release is not complete there, switch when
    ``current`` points elsewhere (``previous`` then becomes the old current), prune the oldest
    releases beyond ``keep`` (never the wanted, the current or the previous one); ``csp`` is the
    root's new ``csp.conf`` (:func:`csp_conf_text` of the union of ``policy`` and the policy of
    the release that is previous after the run) when it differs from the present one, else None.
    """
    releases: dict[str, int] = dict(facts.get("releases") or {})
    current, previous = facts.get("current"), facts.get("previous")
    switch = current != release_id or release_id not in releases
    new_previous = current if switch and current and current != release_id else previous
    protected = {release_id, new_previous, None}
    if switch:
        releases.setdefault(release_id, 1 << 62)  # the newest
    ordered = sorted(releases, key=lambda rid: (releases[rid], rid), reverse=True)
    prune = [rid for rid in ordered[keep:] if rid not in protected]
    after_previous = new_previous if switch else previous
    if after_previous is None or after_previous == release_id:
        other = None
    else:
        other = facts.get("current_policy") if after_previous == current else facts.get("previous_policy")
    text = csp_conf_text(merge_policies(policy, *([other] if other else [])))
    return {
        "upload": release_id not in (facts.get("releases") or {}),
        "switch": switch,
        "previous": after_previous,
        "prune": prune,
        "csp": None if hashlib.sha256(text.encode()).hexdigest() == facts.get("csp_conf_sha256") else text,
    }


def _link(root: str, name: str, target: str) -> StringCommand:
    tmp = f"{root}/.{name}.new"
    return StringCommand(
        "ln", "-sfn", QuoteString(target), QuoteString(tmp), "&&", "mv", "-fT", QuoteString(tmp), QuoteString(f"{root}/{name}"),
    )


def switch_command(root: str, release_id: str, previous: str | None) -> StringCommand:
    """Point ``previous`` at ``previous`` (when given), then ``current`` at ``release_id``, each by rename."""
    parts: list = []
    if previous:
        parts += [_link(root, "previous", f"releases/{previous}"), "&&"]
    parts.append(_link(root, "current", f"releases/{release_id}"))
    return StringCommand(*parts)


def prune_command(root: str, release_ids: list[str]) -> StringCommand:
    """Remove the given releases and any interrupted upload (``releases/.*.part``)."""
    targets = [QuoteString(f"{root}/releases/{rid}") for rid in release_ids]
    return StringCommand("rm", "-rf", *targets, "&&", "rm", "-rf", StringCommand(QuoteString(f"{root}/releases"), "/.*.part", _separator=""))


@operation()
def release(artifact: str, root: str, reload_command: str, keep: int = 3):
    """
    Ship the front-end ``artifact`` to ``root`` and make it the current release, with a policy
    in force that allows it before ``current`` is switched (module docstring).

    + artifact: local directory built by tools/build_web.py (``site/``, ``csp.txt``, ``MANIFEST``, ``RELEASE``)
    + root: the web root on the host (``current``/``previous`` symlinks, ``releases/``, ``csp.conf``)
    + reload_command: shell command that reloads nginx and returns once the new configuration
      answers (exit status non-zero otherwise: the switch is then not done); nginx must be running
    + keep: complete releases kept on the host (the current and previous one always)
    """
    local = Path(artifact)
    release_id = (local / "RELEASE").read_text().strip()
    policy = (local / "csp.txt").read_text().strip()
    todo = plan(host.get_fact(WebReleases, root=root), release_id, keep, policy)
    if not todo["switch"] and not todo["prune"] and todo["csp"] is None:
        host.noop(f"front end release {release_id} is current")
        return
    if todo["upload"]:
        part = f"{root}/releases/.{release_id}.part"
        files = manifest_paths(local) + ["MANIFEST"]
        dirs = sorted({str(PurePosixPath(part, rel).parent) for rel in files})
        yield StringCommand("rm", "-rf", QuoteString(part), "&&", "mkdir", "-p", *[QuoteString(d) for d in dirs])
        for rel in files:
            yield FileUploadCommand(str(local / rel), f"{part}/{rel}")
        yield StringCommand(
            "cd", QuoteString(part), "&&", "sha256sum", "-c", "--quiet", "--strict", "MANIFEST",
            "&&", "chmod", "-R", "u=rwX,go=rX", ".",
            "&&", "echo", QuoteString(release_id), ">", "RELEASE",
            "&&", "mv", "-T", QuoteString(part), QuoteString(f"{root}/releases/{release_id}"),
        )
    if todo["csp"] is not None:
        yield FileUploadCommand(StringIO(todo["csp"]), f"{root}/.{CSP_CONF}.new")
        yield csp_write_command(root)
        yield StringCommand(reload_command)
    if todo["switch"]:
        yield switch_command(root, release_id, todo["previous"])
    if todo["prune"]:
        yield prune_command(root, todo["prune"])
