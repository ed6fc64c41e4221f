"""Facts for the DOCKER-USER policy that ufw loads (see :mod:`deploys.operations.ufw_docker`)."""

from __future__ import annotations

from pyinfra.api import FactBase

__all__ = ["DockerUserChains", "UfwAfterRules", "parse_sections", "FAMILIES"]

#: address family -> (iptables command, ufw's after-rules file)
FAMILIES = {"ipv4": ("iptables", "/etc/ufw/after.rules"), "ipv6": ("ip6tables", "/etc/ufw/after6.rules")}

_MARK = "##orderops-section "


def parse_sections(output: list[str]) -> dict[str, list[str]]:
    """Split fact output into ``{section: lines}`` at ``##orderops-section <name>`` lines."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in output:
        if line.startswith(_MARK):
            current = line[len(_MARK):].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line.rstrip("\n"))
    return sections


class DockerUserChains(FactBase):
    """The live ``DOCKER-USER`` chain per family as ``iptables -S`` lines.

    Returns ``{"ipv4": [...], "ipv6": [...]}``; a family whose chain does not exist (or whose
    tool is missing) has ``None``. ``-S`` prints rules in ``iptables-restore`` syntax, so they
    compare with the rendered policy line by line.
    """

    def command(self) -> str:
        parts = []
        for family, (tool, _) in FAMILIES.items():
            parts.append(f"echo '{_MARK}{family}'; {tool} -w -S DOCKER-USER 2>/dev/null || echo '##absent'")
        return "; ".join(parts)

    def process(self, output: list[str]) -> dict[str, list[str] | None]:
        sections = parse_sections(output)
        return {f: (None if sections.get(f, ["##absent"]) == ["##absent"] else sections[f]) for f in FAMILIES}


class UfwAfterRules(FactBase):
    """Text of ufw's ``after.rules`` and ``after6.rules``: ``{"ipv4": text|None, "ipv6": text|None}``
    (``None`` when the file does not exist, i.e. ufw is not installed yet)."""

    def command(self) -> str:
        parts = []
        for family, (_, path) in FAMILIES.items():
            parts.append(f"echo '{_MARK}{family}'; cat {path} 2>/dev/null || echo '##absent'")
        return "; ".join(parts)

    def process(self, output: list[str]) -> dict[str, str | None]:
        sections = parse_sections(output)
        out: dict[str, str | None] = {}
        for family in FAMILIES:
            lines = sections.get(family, ["##absent"])
            out[family] = None if lines == ["##absent"] else "".join(f"{line}\n" for line in lines)
        return out
