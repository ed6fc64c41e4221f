"""Ship a built front end (tools/build_web.py) as a release directory and switch to it atomically.

A release is uploaded file by file into ``releases/.<id>.part``, checked on the host with
``sha256sum -c MANIFEST``, marked complete (``RELEASE``, written last) and renamed to
``releases/<id>``; then ``current`` is replaced by a new symlink with ``mv -T`` (rename(2):
every request sees the old or the new release, never a mix). ``previous`` keeps pointing at the
release before, so a page loaded just before the switch still finds its hashed assets. The
release id is the artifact's content hash: the same artifact is never uploaded twice.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand

from deploys.facts.web import WebReleases

__all__ = ["release", "plan", "manifest_paths", "switch_command", "prune_command"]


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


def plan(facts: dict, release_id: str, keep: int) -> dict:
    """What to do on a host whose :class:`WebReleases` are ``facts``.

    Returns ``{"upload": bool, "switch": bool, "previous": <id>|None, "prune": [<id>, ...]}``:
    upload when the release is not complete there, switch when ``current`` points elsewhere
    (``previous`` then becomes the old current), prune the oldest releases beyond ``keep``
    (never the wanted, the current or the previous one).
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
    return {
        "upload": release_id not in (facts.get("releases") or {}),
        "switch": switch,
        "previous": new_previous if switch else previous,
        "prune": prune,
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
def release(artifact: str, root: str, keep: int = 3):
    """
    Ship the front-end ``artifact`` to ``root`` and make it the current release.

    + artifact: local directory built by tools/build_web.py (``site/``, ``csp.conf``, ``MANIFEST``, ``RELEASE``)
    + root: the web root on the host (``current``/``previous`` symlinks, ``releases/``)
    + keep: complete releases kept on the host (the current and previous one always)
    """
    local = Path(artifact)
    release_id = (local / "RELEASE").read_text().strip()
    todo = plan(host.get_fact(WebReleases, root=root), release_id, keep)
    if not todo["switch"] and not todo["prune"]:
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
    if todo["switch"]:
        yield switch_command(root, release_id, todo["previous"])
    if todo["prune"]:
        yield prune_command(root, todo["prune"])
