"""The weekly runbook's first fault, shared by the tests that need it: a pending security update
from a local ``file://`` apt repository that asks for a reboot.

``pending_security_update(data, root)`` installs ``DUMMY`` 1.0 with dpkg and offers 1.1 from a
repository under a ``-security`` suite; one apt drop-in points apt at the test's own sources file
and lists directory (``Dir::Etc::SourceList``, ``Dir::State::Lists``): the real mirror is off and
its lists untouched. Everything (drop-in, directory, package, reboot flag, gate) is removed at the end.

1.1's postinst asks for a reboot (Debian's convention) and, while the file ``GATE`` exists on the
host, holds the upgrade: it touches ``GATE.entered`` and waits (at most ``GATE_MAX`` seconds) until
``GATE`` is removed, so a test can look at the host in the middle of the weekly Apply updates step.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.integration.conftest import ssh, ssh_argv

DUMMY = "orderops-weekly-dummy"
#: everything the fault puts on the host, removed afterwards (apt is pointed at it by one drop-in)
APT_TEST_DIR = "/var/tmp/orderops-weekly-apt"
APT_DROP_IN = "/etc/apt/apt.conf.d/99orderops-weekly-test"
#: while this file exists on the host, 1.1's postinst waits (``/run``: gone after a reboot)
GATE = "/run/orderops-weekly-gate"
#: the longest the postinst waits for the gate to open, seconds
GATE_MAX = 180


def _dummy_deb(root: Path, version: str, postinst: str | None = None) -> Path:
    """``DUMMY`` at ``version`` built with ``dpkg-deb`` (no files; ``postinst`` as its maintainer script)."""
    pkg = root / f"build-{version}"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {DUMMY}\nVersion: {version}\nArchitecture: all\nMaintainer: orderops tests <tests@order.test>\n"
        "Priority: optional\nSection: misc\nDescription: dummy security update of the weekly runbook test\n")
    if postinst:
        (pkg / "DEBIAN" / "postinst").write_text(postinst)
        (pkg / "DEBIAN" / "postinst").chmod(0o755)
    deb = root / f"{DUMMY}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    return deb


def security_repo(root: Path, arch: str) -> None:
    """A ``file://`` apt repository under ``root/repo``: suite ``bookworm-security``, component
    ``main``, ``DUMMY`` 1.1 whose postinst asks for a reboot (touch ``/var/run/reboot-required``,
    name the package in ``.pkgs``) and waits at ``GATE``; ``root`` also gets the 1.0 .deb the host
    starts from, and ``sources.list`` naming the repository (unsigned: ``trusted=yes``)."""
    _dummy_deb(root, "1.0")
    new = _dummy_deb(root, "1.1", "#!/bin/sh\nset -e\ntouch /var/run/reboot-required\n"
                                  f"echo {DUMMY} >> /var/run/reboot-required.pkgs\n"
                                  f"if [ -e {GATE} ]; then touch {GATE}.entered; n=0\n"
                                  f"  while [ -e {GATE} ] && [ $n -lt {GATE_MAX} ]; do sleep 1; n=$((n + 1)); done\nfi\n")
    suite = root / "repo" / "dists" / "bookworm-security"
    (root / "repo" / "pool").mkdir(parents=True)
    (suite / "main" / f"binary-{arch}").mkdir(parents=True)
    pooled = root / "repo" / "pool" / new.name
    new.rename(pooled)
    control = subprocess.run(["dpkg-deb", "-f", str(pooled)], check=True, capture_output=True, text=True).stdout
    blob = pooled.read_bytes()
    packages = (f"{control.rstrip()}\nFilename: pool/{pooled.name}\nSize: {len(blob)}\n"
                f"SHA256: {hashlib.sha256(blob).hexdigest()}\n\n").encode()
    (suite / "main" / f"binary-{arch}" / "Packages").write_bytes(packages)
    (suite / "Release").write_text(
        "Origin: orderops-test\nLabel: orderops-test\nSuite: bookworm-security\nCodename: bookworm-security\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\nArchitectures: {arch}\nComponents: main\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-{arch}/Packages\n")
    (root / "sources.list").write_text(f"deb [trusted=yes] file:{APT_TEST_DIR}/repo bookworm-security main\n")


def dpkg_version(data: dict) -> str:
    """The installed version of ``DUMMY`` on the host ('' when not installed)."""
    return ssh(data, f"dpkg-query -W -f '${{Version}}' {DUMMY} 2>/dev/null || true").stdout.strip()


def reboot_flagged(data: dict) -> bool:
    """``/var/run/reboot-required`` exists on the host."""
    return ssh(data, "test -e /var/run/reboot-required && echo flagged || true").stdout.strip() == "flagged"


@contextlib.contextmanager
def pending_security_update(data: dict, root: Path) -> Iterator[None]:
    """``DUMMY`` 1.0 installed and 1.1 pending from the ``file://`` security repository (built in
    ``root``, a local scratch directory); apt sees only that repository. Undone at the end."""
    arch = ssh(data, "dpkg --print-architecture").stdout.strip()
    security_repo(root, arch)
    tar = subprocess.run(["tar", "-C", str(root), "--exclude=build-*", "-cf", "-", "."], check=True, capture_output=True).stdout
    assert not reboot_flagged(data), "host already asks for a reboot"
    drop_in = (f'Dir::Etc::SourceList "{APT_TEST_DIR}/sources.list";\\nDir::Etc::SourceParts "{APT_TEST_DIR}/sources.list.d";\\n'
               f'Dir::State::Lists "{APT_TEST_DIR}/lists";\\n')
    try:
        proc = subprocess.run(ssh_argv(data, f"sudo mkdir -p {APT_TEST_DIR} && sudo tar -C {APT_TEST_DIR} -xf - && "
                                             f"sudo mkdir -p {APT_TEST_DIR}/sources.list.d {APT_TEST_DIR}/lists/partial"),
                              input=tar, capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        ssh(data, f"sudo dpkg -i {APT_TEST_DIR}/{DUMMY}_1.0_all.deb >/dev/null && printf '{drop_in}' | sudo tee {APT_DROP_IN} >/dev/null "
                  "&& sudo apt-get update -q >/dev/null")
        sim = ssh(data, "sudo apt-get -s -o Debug::NoLocking=1 upgrade").stdout
        assert f"Inst {DUMMY} [1.0] (1.1 " in sim and "bookworm-security" in sim, sim
        yield
    finally:
        ssh(data, f"sudo dpkg --purge {DUMMY}; sudo rm -rf {APT_DROP_IN} {APT_TEST_DIR} /var/run/reboot-required "
                  f"/var/run/reboot-required.pkgs {GATE} {GATE}.entered", check=False)
