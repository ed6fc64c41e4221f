"""Facts for the DOCKER-USER policy that ufw loads (see :mod:`deploys.operations.ufw_docker`)."""

from __future__ import annotations

from pyinfra.api import FactBase

__all__ = ["DockerUserChains", "UfwAfterRules", "UfwAfterInit", "BanChains", "parse_sections", "FAMILIES", "AFTER_INIT"]

#: address family -> (iptables command, ufw's after-rules file)
FAMILIES = {"ipv4": ("iptables", "/etc/ufw/after.rules"), "ipv6": ("ip6tables", "/etc/ufw/after6.rules")}

#: ufw's hook run after it loaded its rules (``man ufw-framework``; ufw-init runs it when executable)
AFTER_INIT = "/etc/ufw/after.init"

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


class BanChains(FactBase):
    """fail2ban's ban chains (``f2b-<jail>``) in the filter table, per family:
    ``{"ipv4": [names], "ipv6": [names]}`` (empty when none exists or the tool is missing).

    A chain exists while fail2ban runs its jail in that family (its ``actionstart`` creates it,
    ``actionstop`` deletes it, deploys/roles/fail2ban.py).
    """

    def command(self) -> str:
        parts = []
        for family, (tool, _) in FAMILIES.items():
            parts.append(f"echo '{_MARK}{family}'; {tool} -w -S 2>/dev/null | sed -n 's/^-N \\(f2b-[^ ]*\\)$/\\1/p'")
        return "; ".join(parts)

    def process(self, output: list[str]) -> dict[str, list[str]]:
        sections = parse_sections(output)
        return {f: [line for line in sections.get(f, []) if line] for f in FAMILIES}


class UfwAfterInit(FactBase):
    """ufw's ``/etc/ufw/after.init``: ``{"executable": bool, "text": str}``, or ``None`` when
    the file does not exist (ufw's postinst copies a template that does nothing, mode 0640:
    ufw-init runs the file only when it is executable)."""

    def command(self) -> str:
        return (f"if [ -f {AFTER_INIT} ]; then if [ -x {AFTER_INIT} ]; then echo '##x'; else echo '##-'; fi; "
                f"cat {AFTER_INIT}; else echo '##absent'; fi")

    def process(self, output: list[str]) -> dict | None:
        if not output or output[0] == "##absent":
            return None
        return {"executable": output[0] == "##x", "text": "".join(f"{line}\n" for line in output[1:])}
