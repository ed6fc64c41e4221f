"""The sshd hardening policy: what ``sshd -T`` must show on every host.

Written once here; the deploy renders it into ``/etc/ssh/sshd_config.d/00-orderops.conf`` and
checks it (``deploys/roles/base.py``, ``deploys/operations/sshd.py``), the monthly runbook's
security scan compares a host's ``sshd -T`` with it (``runbooks/library/monthly.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["SSHD_ALGORITHMS", "SSHD_SETTINGS", "SSHD_T_COMMAND", "policy", "parse_sshd_t", "mismatches"]

#: Algorithms sshd offers (issue 10; OpenSSH >= 8.5, i.e. Ubuntu 22.04 and Debian 12 on):
#: key exchange sntrup761/curve25519 only, the Ed25519 host key only, AEAD ciphers and CTR,
#: SHA-2 MACs in encrypt-then-MAC mode only. paramiko 4 (pyinfra, testinfra) speaks
#: curve25519-sha256@libssh.org, aes*-ctr/gcm and the -etm MACs.
SSHD_ALGORITHMS = {
    "KexAlgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
    "HostKeyAlgorithms": "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com",
    "Ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
    "MACs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
    # users' keys: Ed25519 (also FIDO) and RSA with SHA-2 signatures
    "PubkeyAcceptedAlgorithms": "ssh-ed25519,sk-ssh-ed25519@openssh.com,rsa-sha2-512,rsa-sha2-256",
}

#: The sshd settings orderops enforces whatever the inventory says (``sshd -T`` must show them).
SSHD_SETTINGS = {
    "PubkeyAuthentication": "yes",
    "AuthenticationMethods": "publickey",
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitRootLogin": "no",
    "PermitEmptyPasswords": "no",
    "X11Forwarding": "no",
    "HostKey": "/etc/ssh/ssh_host_ed25519_key",
    **SSHD_ALGORITHMS,
}

#: ``sshd -T`` with a connection spec, so Match blocks resolve like for a normal login.
SSHD_T_COMMAND = "sshd -T -C user=nobody,host=orderops-check,addr=127.0.0.1 2>/dev/null || sshd -T"


def policy(allow_groups: Iterable[str]) -> dict[str, str]:
    """Every setting ``sshd -T`` must show: :data:`SSHD_SETTINGS` plus ``AllowGroups``
    (the inventory's ``ssh_allow_groups``, space-separated as sshd prints them)."""
    return {**SSHD_SETTINGS, "AllowGroups": " ".join(allow_groups)}


def parse_sshd_t(lines: list[str]) -> dict[str, str]:
    """Parse ``sshd -T`` output (``keyword value...`` lines, keywords lower-case) to a dict.

    Repeated keywords (e.g. ``hostkey``) keep their values joined by a space, in order.
    """
    config: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        config[key] = f"{config[key]} {value}" if key in config else value
    return config


def mismatches(effective: Mapping[str, str], wanted: Mapping[str, str]) -> list[str]:
    """``keyword: in force X, wanted Y`` for every wanted keyword sshd does not use as wanted.

    Keywords compare case-insensitively; sshd prints ``permitrootlogin without-password`` for
    ``prohibit-password`` on older versions, which counts as equal.
    """
    aliases = {"prohibit-password": "without-password"}
    out = []
    for key, value in wanted.items():
        have = effective.get(key.lower())
        want = value.lower()
        if have is None or (have.lower() != want and aliases.get(want) != have.lower()):
            out.append(f"{key}: in force {have!r}, wanted {value!r}")
    return out
