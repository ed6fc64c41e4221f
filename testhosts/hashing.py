"""Content hashes of build contexts: the tag of every locally built image is derived from one.

The hash covers, in a fixed order: each file's relative path, its type (file/dir/symlink), the
executable bit (git tracks nothing else of the mode, so a checkout's umask must not change it),
the file content or link target, and a set of extra strings (build args, the parent image ID,
the Dockerfile path). Timestamps and ownership are ignored, so the same sources give the same
tag on any checkout; any change gives a new tag.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

HASH_LEN = 12
_CHUNK = 1 << 20


def iter_tree(root: Path, exclude: Iterable[str] = ()) -> list[Path]:
    """All entries below ``root`` (relative), sorted, skipping names in ``exclude`` at any depth."""
    skip = set(exclude)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        base = Path(dirpath)
        for name in dirnames:
            out.append((base / name).relative_to(root))
        for name in sorted(filenames):
            if name not in skip:
                out.append((base / name).relative_to(root))
    return sorted(out, key=lambda p: p.as_posix())


def hash_tree(root: Path, extra: Mapping[str, str] | None = None, exclude: Iterable[str] = ()) -> str:
    """Full sha256 hex digest of a directory tree plus ``extra`` key/values."""
    h = hashlib.sha256()
    h.update(b"orderops-context-v1\0")
    for key in sorted(extra or {}):
        h.update(f"extra\0{key}\0{(extra or {})[key]}\0".encode())
    for rel in iter_tree(root, exclude):
        full = root / rel
        rel_s = rel.as_posix()
        if full.is_symlink():
            h.update(f"link\0{rel_s}\0{os.readlink(full)}\0".encode())
        elif full.is_dir():
            h.update(f"dir\0{rel_s}\0".encode())
        else:
            exe = "x" if os.stat(full).st_mode & 0o111 else "-"
            h.update(f"file\0{rel_s}\0{exe}\0{full.stat().st_size}\0".encode())
            with open(full, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
    return h.hexdigest()


def short(digest: str) -> str:
    return digest[:HASH_LEN]


def hash_bytes(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()
