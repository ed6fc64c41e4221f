"""Content hashes: stable for equal content, different for any relevant change."""

import os
from pathlib import Path

from testhosts import hashing


def make_ctx(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM x\nRUN true\n")
    (root / "sub" / "file.conf").write_text("a = 1\n")
    script = root / "entry.sh"
    script.write_text("#!/bin/sh\nexec \"$@\"\n")
    script.chmod(0o755)
    return root


def test_same_content_same_hash_regardless_of_mtime_and_location(tmp_path):
    a = make_ctx(tmp_path / "a")
    b = make_ctx(tmp_path / "b")
    os.utime(b / "Dockerfile", (0, 0))
    assert hashing.hash_tree(a) == hashing.hash_tree(b)
    assert hashing.hash_tree(a) == hashing.hash_tree(a)  # repeatable


def test_group_write_bit_ignored_exec_bit_counts(tmp_path):
    a = make_ctx(tmp_path / "a")
    h0 = hashing.hash_tree(a)
    (a / "sub" / "file.conf").chmod(0o664)  # umask differences between checkouts
    assert hashing.hash_tree(a) == h0
    (a / "entry.sh").chmod(0o644)
    assert hashing.hash_tree(a) != h0


def test_content_rename_add_and_extra_change_hash(tmp_path):
    a = make_ctx(tmp_path / "a")
    h0 = hashing.hash_tree(a, extra={"parent_id": "sha256:1"})
    assert hashing.hash_tree(a, extra={"parent_id": "sha256:2"}) != h0
    (a / "sub" / "file.conf").write_text("a = 2\n")
    h1 = hashing.hash_tree(a, extra={"parent_id": "sha256:1"})
    assert h1 != h0
    (a / "sub" / "file.conf").rename(a / "sub" / "other.conf")
    h2 = hashing.hash_tree(a, extra={"parent_id": "sha256:1"})
    assert h2 != h1
    (a / "new").mkdir()
    assert hashing.hash_tree(a, extra={"parent_id": "sha256:1"}) != h2


def test_exclude_and_short(tmp_path):
    a = make_ctx(tmp_path / "a")
    h0 = hashing.hash_tree(a, exclude=["__pycache__"])
    (a / "__pycache__").mkdir()
    (a / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert hashing.hash_tree(a, exclude=["__pycache__"]) == h0
    assert len(hashing.short(h0)) == 12 and set(hashing.short(h0)) <= set("0123456789abcdef")


def test_image_tag_format():
    from testhosts.images import image_tag

    assert image_tag("bookworm", "ab" * 32) == "bookworm-" + "ab" * 6
