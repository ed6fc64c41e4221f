"""deploys/operations/nginx.py on fake facts: noop when the live file matches, else upload,
``nginx -t`` in the image (warnings refused), then the atomic switch."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from pyinfra.api.command import FileUploadCommand
from pyinfra.context import ctx_host
from pyinfra.facts.files import File, Sha256File

from deploys.operations import nginx

CONTENT = "server { listen 80; }\n"
SHA = hashlib.sha256(CONTENT.encode()).hexdigest()


class FakeHost:
    """Serves canned facts by (fact class, path); records noops."""

    name = "fakehost"

    def __init__(self, facts):
        self.facts = facts
        self.noops: list[str] = []

    def get_fact(self, fact_cls, path=None, **kwargs):
        return self.facts[(fact_cls, path)]

    def noop(self, description):
        self.noops.append(description)


def run(facts, **kwargs):
    host = FakeHost(facts)
    args = {"dest": "/opt/orderops/nginx/orderops.conf", "content": CONTENT, "image": "nginx:1.26.2",
            "config_path": "/etc/nginx/conf.d/orderops.conf", "mounts": {"/opt/orderops/tls": "/etc/nginx/tls"}}
    with ctx_host.use(host):
        commands = list(nginx.checked_config._inner(**{**args, **kwargs}))
    return commands, host.noops


DEST = "/opt/orderops/nginx/orderops.conf"
CASES = {
    "up to date": ({(File, DEST): {"mode": 644}, (Sha256File, DEST): SHA}, True),
    "content differs": ({(File, DEST): {"mode": 644}, (Sha256File, DEST): "0" * 64}, False),
    "mode differs": ({(File, DEST): {"mode": 600}, (Sha256File, DEST): SHA}, False),
    "missing": ({(File, DEST): None, (Sha256File, DEST): None}, False),
}


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_checked_config(case):
    facts, noop = CASES[case]
    commands, noops = run(facts)
    if noop:
        assert commands == [] and noops == [f"{DEST} is up to date"]
        return
    upload, check, switch = commands
    assert isinstance(upload, FileUploadCommand) and upload.dest == f"{DEST}.candidate"
    text = check.get_raw_value()
    assert "docker run --rm --network none" in text and "--entrypoint nginx nginx:1.26.2 -t" in text
    assert f"{DEST}.candidate:/etc/nginx/conf.d/orderops.conf:ro" in text
    assert "/opt/orderops/tls:/etc/nginx/tls:ro" in text
    assert switch.get_raw_value() == f"chmod 0644 {DEST}.candidate && mv -f {DEST}.candidate {DEST}"


@pytest.mark.parametrize(
    ("nginx_says", "rc", "accepted"),
    [
        ("nginx: configuration file /etc/nginx/nginx.conf test is successful", 0, True),
        ('nginx: [warn] "ssl_stapling" ignored, no OCSP responder URL in the certificate', 0, False),
        ('nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/orderops.conf:3', 1, False),
    ],
)
def test_check_command_refuses_errors_and_warnings(tmp_path, nginx_says, rc, accepted):
    """The real shell command, with a stand-in `docker` on PATH that prints what nginx would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f"#!/bin/sh\necho '{nginx_says}' >&2\nexit {rc}\n")
    (bin_dir / "docker").chmod(0o755)
    candidate = tmp_path / "orderops.conf.candidate"
    candidate.write_text(CONTENT)
    command = nginx.check_command(str(candidate), "nginx:1", "/etc/nginx/conf.d/x.conf", {}).get_raw_value()
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert (proc.returncode == 0) == accepted
    assert candidate.exists() == accepted
    if not accepted:
        assert nginx_says in proc.stderr and "live one kept" in proc.stderr
