"""Facts about the OpenSSH server."""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys.contract.sshd import SSHD_T_COMMAND, parse_sshd_t

__all__ = ["SshdEffectiveConfig", "parse_sshd_t"]


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
        return SSHD_T_COMMAND

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_sshd_t(output)
