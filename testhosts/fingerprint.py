"""Fingerprint of this machine's cgroup setup, to notice when test hosts damage it.

A test host given the machine's ``/sys/fs/cgroup`` read-write can create hierarchies in the host's
tmpfs, mount new v1 hierarchies kernel-wide and remount the tmpfs read-only;
``docker stats`` then breaks for every container. The harness never does that, and this module
checks it: a fingerprint is the list of mounts at or below ``/sys/fs/cgroup`` (mount point, type,
source, per-mount and super options; no mount IDs) plus the listing of ``/sys/fs/cgroup`` (name,
type, link target). ``up`` compares before/after its own work and fails on a difference; both
``up`` and ``down`` compare with the baseline saved the first time (warning, or failure with
``ORDEROPS_CGROUP_STRICT=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, ch)
    return path


def parse_mountinfo(text: str, root: str = CGROUP_ROOT) -> list[str]:
    """Mounts at or below ``root`` as stable strings ``<mountpoint> <fstype> <source> <opts> <superopts>``."""
    out = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        lf = left.split()
        rf = right.split()
        if len(lf) < 6 or len(rf) < 3:
            continue
        mountpoint = _unescape(lf[4])
        if mountpoint != root and not mountpoint.startswith(root + "/"):
            continue
        opts = ",".join(sorted(lf[5].split(",")))
        superopts = ",".join(sorted(rf[2].split(",")))
        out.append(f"{mountpoint} {rf[0]} {rf[1]} {opts} {superopts}")
    return sorted(out)


def list_dir(root: Path) -> list[str]:
    entries = []
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        return [f"<error {exc.__class__.__name__}: {exc}>"]
    for name in names:
        p = root / name
        if p.is_symlink():
            entries.append(f"{name} -> {os.readlink(p)}")
        elif p.is_dir():
            entries.append(f"{name}/")
        else:
            entries.append(name)
    return entries


@dataclass
class Fingerprint:
    mounts: list[str] = field(default_factory=list)
    listing: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(json.dumps([self.mounts, self.listing]).encode())
        return h.hexdigest()[:16]

    def to_json(self) -> dict:
        return {"digest": self.digest, "mounts": self.mounts, "listing": self.listing}

    @classmethod
    def from_json(cls, data: dict) -> Fingerprint:
        return cls(mounts=list(data.get("mounts", [])), listing=list(data.get("listing", [])))


def take(mountinfo: Path = Path("/proc/self/mountinfo"), root: str = CGROUP_ROOT) -> Fingerprint:
    return Fingerprint(mounts=parse_mountinfo(mountinfo.read_text(), root), listing=list_dir(Path(root)))


def diff(old: Fingerprint, new: Fingerprint) -> list[str]:
    """Human-readable differences (empty when equal)."""
    lines = []
    for label, a, b in (("mount", old.mounts, new.mounts), ("entry", old.listing, new.listing)):
        for item in sorted(set(a) - set(b)):
            lines.append(f"- {label} {item}")
        for item in sorted(set(b) - set(a)):
            lines.append(f"+ {label} {item}")
    return lines


def load(path: Path) -> Fingerprint | None:
    if not path.exists():
        return None
    return Fingerprint.from_json(json.loads(path.read_text()))


def save(path: Path, fp: Fingerprint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fp.to_json(), indent=2) + "\n")


def strict() -> bool:
    return os.environ.get("ORDEROPS_CGROUP_STRICT", "").lower() in {"1", "true", "yes", "on"}


class CgroupChanged(RuntimeError):
    pass


def check_against_baseline(path: Path, current: Fingerprint) -> list[str]:
    """Compare with the saved baseline (saving ``current`` as the baseline when there is none).

    Returns the differences; raises :class:`CgroupChanged` when they exist and strict mode is on.
    """
    baseline = load(path)
    if baseline is None:
        save(path, current)
        return []
    changes = diff(baseline, current)
    if changes and strict():
        raise CgroupChanged(
            "the host's cgroup setup differs from the baseline in "
            f"{path} (ORDEROPS_CGROUP_STRICT is set):\n" + "\n".join(changes)
        )
    return changes
