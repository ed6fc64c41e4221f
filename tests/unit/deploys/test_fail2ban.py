"""fail2ban: the jails as rendered from inventory data, and the API filter against a line the
order service's real JSON formatter writes."""

from __future__ import annotations

import configparser
import logging
import re

from deploys.contract.services import API_LOG_TAG
from deploys.roles.fail2ban import jail_text
from deploys.roles.order_stack import compose_project
from order_service.core.logging import JsonFormatter
from templates import render

#: fail2ban's <HOST> for IPv4/IPv6 addresses (an approximation of fail2ban's own expansion)
HOST = r"(?P<host>[0-9A-Fa-f:.]+)"


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_jails_from_inventory(make_settings):
    jails = _ini(jail_text(make_settings(fail2ban_maxretry=3, fail2ban_findtime=60, fail2ban_bantime=120)))
    assert dict(jails["DEFAULT"]) == {"banaction": "iptables-multiport", "bantime": "120", "findtime": "60",
                                      "maxretry": "3", "backend": "systemd"}
    assert jails["sshd"]["enabled"] == "true" and jails["sshd"]["chain"] == "INPUT"
    api = jails["orderops-api"]
    assert api["chain"] == "DOCKER-USER" and api["port"] == "80,443" and api["journalmatch"] == f"CONTAINER_TAG={API_LOG_TAG}"


def test_api_container_logs_to_the_journal_with_the_jail_tag(make_settings):
    api = compose_project(make_settings())["services"]["api"]
    assert api["logging"] == {"driver": "journald", "options": {"tag": API_LOG_TAG}}


def test_filter_finds_the_client_of_a_refused_login_only():
    failregex = _ini(render("fail2ban/orderops-api.conf.j2"))["Definition"]["failregex"].replace("<HOST>", HOST)

    def line(message: str, **extra) -> str:
        record = logging.LogRecord("order_service.api.routes.login", logging.WARNING, __file__, 1, message, None, None)
        record.__dict__.update(extra)
        return f"Dec  3 12:00:00 host {API_LOG_TAG}[123]: " + JsonFormatter().format(record)

    for address in ("192.0.2.7", "2001:db8::7"):
        match = re.search(failregex, line("login refused", client=address))
        assert match and match.group("host") == address
    assert re.search(failregex, line("login", user_id="u1", client="192.0.2.7")) is None


def test_the_after_init_jump_is_the_api_jails_own(make_settings):
    """ufw's after.init restores the jump for the jail and ports the jail file names (one source:
    API_JAIL, API_PORTS), in fail2ban's multiport form."""
    from deploys.operations.ufw_docker import jump_rule
    from deploys.roles.fail2ban import API_JAIL, docker_user_jumps

    api = _ini(jail_text(make_settings()))[API_JAIL]
    (target, spec), = docker_user_jumps()
    assert target == f"f2b-{API_JAIL}" and api["chain"] == "DOCKER-USER"
    assert jump_rule(target, spec) == f"-A DOCKER-USER -p tcp -m multiport --dports {api['port']} -j {target}"
