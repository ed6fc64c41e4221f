"""secret_files.present on fake facts: SHA-256 and metadata decide, the secret never appears in a command."""

from __future__ import annotations

import hashlib

import pytest
from pyinfra.facts.files import File, Sha256File

from deploys.contract.paths import STACK_DIR, UPLOAD_DIR, StackLayout
from deploys.operations import secret_files
from tests.unit.deploys.fake_host import run_op

SECRET = "s3cr3t-value-0123456789-abcdef"
SHA = hashlib.sha256(SECRET.encode()).hexdigest()
DEST = StackLayout(STACK_DIR).env_file
STAGED = f"{UPLOAD_DIR}/.{hashlib.sha256(DEST.encode()).hexdigest()[:12]}.part"
UPLOAD = [
    f"umask 077 && install -d -m 0700 {UPLOAD_DIR}",
    f"upload {STAGED}",
    f"install -m 0600 -o root -g root {STAGED} {DEST} && rm -f {STAGED}",
]
OK_META = {"user": "root", "group": "root", "mode": 600}

CASES = {
    "missing file: staged upload, then installed with its mode": (None, None, UPLOAD, []),
    "same content and metadata: noop": (OK_META, SHA, [], [f"{DEST} is up to date"]),
    "other content: uploaded again": (OK_META, "0" * 64, UPLOAD, []),
    "same content, world-readable: only chown + chmod": (
        {**OK_META, "mode": 644}, SHA, [f"chown root:root {DEST} && chmod 0600 {DEST}"], []),
    "same content, other owner: only chown + chmod": (
        {**OK_META, "user": "deploy"}, SHA, [f"chown root:root {DEST} && chmod 0600 {DEST}"], []),
}


@pytest.mark.parametrize("info, sha, commands, noops", CASES.values(), ids=CASES.keys())
def test_present(info, sha, commands, noops):
    facts = {File: lambda path: info, Sha256File: lambda path: sha}
    got, got_noops = run_op(secret_files.present, facts, dest=DEST, content=SECRET, upload_dir=UPLOAD_DIR)
    assert (got, got_noops) == (commands, noops)
    assert not any(SECRET in c for c in got)


def test_present_from_a_src_file_read_when_the_body_runs(tmp_path):
    """``src``: a file on the controller machine, read each time the body runs. Missing (while pyinfra
    plans, before the operation that makes it has executed): the upload is planned from its path;
    present: compared by SHA-256 like ``content``."""
    src = tmp_path / "key"
    missing = {File: lambda path: OK_META, Sha256File: lambda path: SHA}
    got, _ = run_op(secret_files.present, missing, dest=DEST, src=str(src), upload_dir=UPLOAD_DIR)
    assert got == UPLOAD and not src.exists()
    src.write_text(SECRET)
    assert run_op(secret_files.present, missing, dest=DEST, src=str(src), upload_dir=UPLOAD_DIR) == \
        ([], [f"{DEST} is up to date"])


def test_present_needs_exactly_one_of_content_and_src():
    from pyinfra.api import OperationError

    with pytest.raises(OperationError):
        run_op(secret_files.present, {}, dest=DEST, upload_dir=UPLOAD_DIR)
    with pytest.raises(OperationError):
        run_op(secret_files.present, {}, dest=DEST, content="x", src="/nonexistent", upload_dir=UPLOAD_DIR)
