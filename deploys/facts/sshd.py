"""Facts about the OpenSSH server."""

from __future__ import annotations

from pyinfra.api import FactBase

__all__ = ["SshdEffectiveConfig", "parse_sshd_t"]


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


class SshdEffectiveConfig(FactBase):
    """The configuration sshd would actually run with (``sshd -T``), keywords lower-case.

    sshd keeps the *first* value it reads for most keywords, so this, not the files, tells
    which setting is in force. Returns ``{}`` when sshd is not installed.
    """

    requires_command = "sshd"

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def command(self) -> str:
        # -C supplies a connection spec so Match blocks resolve like for a normal login.
        return "sshd -T -C user=nobody,host=orderops-check,addr=127.0.0.1 2>/dev/null || sshd -T"

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_sshd_t(output)
