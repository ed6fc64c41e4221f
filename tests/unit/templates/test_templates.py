"""Config files render into what their consumers accept: templates (StrictUndefined) for config
languages, yaml.safe_dump / json.dumps for data files."""

import json

import jinja2
import pytest
import yaml

from deploys.contract.compose import COMPOSE_PROJECT
from deploys.contract.services import SERVICES
from deploys.roles.docker_engine import daemon_json
from deploys.roles.order_stack import compose_text, env_text, nginx_reload_command, nginx_text
from templates import render
from tests.unit.conftest import STRONG_SECRETS


def test_missing_variable_raises():
    with pytest.raises(jinja2.UndefinedError):
        render("nginx/orderops.conf.j2", domain="x.example.com")


def test_daemon_json_log_rotation(make_settings):
    text = daemon_json(make_settings(docker_log_max_size="25m", docker_log_max_file=7))
    data = json.loads(text)
    assert text.endswith("}\n")
    assert data["log-driver"] == "json-file"
    assert data["log-opts"] == {"max-size": "25m", "max-file": "7"}


def test_compose_file_shape(make_settings):
    s = make_settings()
    doc = yaml.safe_load(compose_text(s))
    services = doc["services"]
    assert set(services) == set(SERVICES)
    assert doc["name"] == COMPOSE_PROJECT
    # only nginx publishes ports
    assert [name for name, svc in services.items() if "ports" in svc] == ["nginx"]
    assert services["nginx"]["ports"] == ["80:80", "443:443"]
    for name, svc in services.items():
        assert svc["restart"] == "unless-stopped", name
        assert "healthcheck" in svc, name
        assert "env_file" not in svc, name  # docker/compose#14001
    assert services["api"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["nginx"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert "127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])  # TCP probe
    # pg_stat_statements preloaded (the monthly runbook's slow statements): the entrypoint passes -c on
    assert services["postgres"]["command"] == ["postgres", "-c", "shared_preload_libraries=pg_stat_statements",
                                               "-c", "pg_stat_statements.track_utility=off"]  # no ALTER ROLE ... PASSWORD texts
    assert services["api"]["image"] == s.images.order_service
    assert doc["networks"]["backend"]["internal"] is True
    assert set(doc["volumes"]) == {"pgdata", "redisdata", "attachments"}


def test_compose_file_holds_no_secret_values(make_settings):
    text = compose_text(make_settings())
    for value in STRONG_SECRETS.values():
        assert value not in text
    assert "${POSTGRES_PASSWORD:?" in text and "${REDIS_PASSWORD:?" in text


def test_env_file_quotes_secrets(make_settings):
    text = env_text(make_settings())
    assert 'POSTGRES_PASSWORD="' + STRONG_SECRETS['postgres_password'] + '"' in text
    assert 'REDIS_PASSWORD="' + STRONG_SECRETS['redis_password'] + '"' in text


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ("a'b", '"a\'b"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a$b${c}", '"a\\$b\\${c}"'),
        ("a`b# c é", '"a`b# c é"'),
        ("\\$", '"\\\\\\$"'),
    ],
)
def test_dotenv_quote(value, quoted):
    from deploys.roles.order_stack import dotenv_quote

    assert dotenv_quote(value) == quoted


def test_nginx_vhost(make_settings):
    text = nginx_text(make_settings(nginx_client_max_body_size="2m"))
    assert "client_max_body_size  2m;" in text
    assert "return 301 https://$host$request_uri;" in text  # 443: no port in the URL
    assert "proxy_set_header X-Real-IP         $remote_addr;" in text
    assert "proxy_set_header X-Request-ID      $orderops_request_id;" in text
    assert "server_name orders.example.com;" in text
    assert "location ^~ /metrics { return 404; }" in text
    # a client-sent X-Forwarded-For is overwritten, never appended to
    assert "proxy_set_header X-Forwarded-For   $remote_addr;" in text
    assert "$proxy_add_x_forwarded_for" not in text


def test_compose_values_that_need_quoting_survive_yaml(make_settings):
    """yaml.safe_dump quotes what would change type ("80:80" is a base-60 int in YAML 1.1, "5432" an int)."""
    doc = yaml.safe_load(compose_text(make_settings(service_workers=4)))
    assert doc["services"]["api"]["environment"]["POSTGRES_PORT"] == "5432"
    assert doc["services"]["api"]["environment"]["WORKERS"] == "4"
    assert doc["services"]["nginx"]["ports"] == ["80:80", "443:443"]
    assert doc["services"]["redis"]["command"][-1].endswith('--requirepass "$$REDIS_PASSWORD"')


def test_nginx_redirect_names_a_non_default_https_port(make_settings):
    assert "return 301 https://$host:8443$request_uri;" in nginx_text(make_settings(https_public_port=8443))


def test_nginx_limits_and_timeouts_come_from_the_inventory(make_settings):
    text = nginx_text(make_settings(nginx_login_rate="3r/m", nginx_login_burst=2, nginx_api_rate="7r/s",
                                    nginx_api_burst=9, nginx_proxy_read_timeout=33, nginx_client_body_timeout=12))
    assert "zone=orderops_login:10m rate=3r/m;" in text
    assert "zone=orderops_api:10m rate=7r/s;" in text
    assert "limit_req zone=orderops_login burst=2 nodelay;" in text
    assert "limit_req zone=orderops_api burst=9 nodelay;" in text
    assert "proxy_read_timeout    33s;" in text
    assert "client_body_timeout   12s;" in text


def test_nginx_headers_only_at_server_level(make_settings):
    """nginx drops inherited add_header at any level that has its own: none below the servers."""
    depth, where = 0, []
    for line in nginx_text(make_settings()).splitlines():
        code = line.split("#", 1)[0]
        if "add_header" in code:
            where.append(depth)
        depth += code.count("{") - code.count("}")
    assert where and set(where) == {1}, where


def test_nginx_tls_policy(make_settings):
    text = nginx_text(make_settings())
    assert "ssl_protocols       TLSv1.2 TLSv1.3;" in text
    assert "ssl_stapling" not in text.replace("# No OCSP stapling", "")
    ciphers = next(line for line in text.splitlines() if line.strip().startswith("ssl_ciphers")).split()[1].rstrip(";")
    assert all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers.split(":"))


def test_service_rate_limits_come_from_the_inventory(make_settings):
    from deploys.roles.order_stack import api_environment

    env = api_environment(make_settings(service_rate_limit_user=5, service_rate_limit_ip=7, service_rate_limit_window=30))
    assert (env["RATE_LIMIT_USER"], env["RATE_LIMIT_IP"], env["RATE_LIMIT_WINDOW_SECONDS"]) == ("5", "7", "30")
    assert api_environment(make_settings())["RATE_LIMIT_USER"] == "600"


def test_bad_nginx_rate_names_the_field(make_settings):
    from inventories.schema import InventoryError

    with pytest.raises(InventoryError) as e:
        make_settings(nginx_api_rate="20 per second")
    assert e.value.field == "nginx_api_rate"



#: The issue's special-character value: ' " \ $ ` # space é (plus ${X}, \n and \` that stay literal).
SPECIAL = "a'b\"c\\d$e`f#g h é ${X} \\n \\`"


def test_dotenv_read_command_inverts_dotenv_quote(tmp_path):
    """The host's helper scripts read a value with it (never ``. .env``): byte for byte, not evaluated."""
    import subprocess

    from deploys.contract.dotenv import dotenv_quote, dotenv_read_command

    env = tmp_path / ".env"
    env.write_text(f"A=1\nP={dotenv_quote(SPECIAL)}\nB=2\n", encoding="utf-8")
    out = subprocess.run(["sh", "-c", dotenv_read_command(str(env), "P")], capture_output=True, check=True)
    assert out.stdout.decode("utf-8") == SPECIAL
    missing = subprocess.run(["sh", "-c", dotenv_read_command(str(env), "NOPE")], capture_output=True, check=True)
    assert missing.stdout == b""


def test_nginx_reload_command_runs_the_waiting_script_in_the_nginx_container(make_settings):
    import shlex
    import subprocess

    argv = shlex.split(nginx_reload_command(make_settings()))
    assert argv[:2] == ["docker", "compose"]
    assert argv[argv.index("exec"):argv.index("exec") + 5] == ["exec", "-T", "nginx", "sh", "-c"]
    script = argv[-1]
    assert "nginx -s reload" in script and "worker process" in script and not script.lstrip().startswith("#")
    subprocess.run(["sh", "-n", "-c", script], check=True)  # valid sh without its comments


def test_nginx_serves_the_front_end_release(make_settings):
    conf = nginx_text(make_settings())
    doc = yaml.safe_load(compose_text(make_settings()))
    assert "./web:/srv/web:ro" in doc["services"]["nginx"]["volumes"]
    https = conf.split("listen 443", 1)[1]
    assert "root /srv/web/current/site;" in https
    # the front end's CSP variable (the web root's csp.conf, outside the releases: written and
    # reloaded before a switch), set after the strict default; a glob: no release yet is no config error
    assert https.index('set $orderops_web_csp "default-src') < https.index("include /srv/web/csp*.conf;")
    assert "/current/csp" not in conf
    # the common server-level headers carry the front end's: HSTS etc. stay, nothing per location
    for header in ("Strict-Transport-Security", "X-Frame-Options", "Content-Security-Policy $orderops_csp",
                   "Cache-Control $orderops_cache_control"):
        assert f"add_header {header}" in https
    csp_map = conf.split("map $request_uri $orderops_csp {", 1)[1].split("}", 1)[0]
    assert "default                   $orderops_web_csp;" in csp_map and "~^/api/" in csp_map
    cache_map = conf.split("map $uri $orderops_cache_control {", 1)[1].split("}", 1)[0]
    assert '"no-cache"' in cache_map and "~^/_next/static/          \"public, max-age=31536000, immutable\"" in cache_map
    assets = https.split("location ^~ /_next/static/ {", 1)[1].split("}", 1)[0]
    assert "@previous_release" in assets
    api = https.split("location /api/ {", 1)[1].split("}", 1)[0]
    assert "proxy_pass $orderops_api;" in api and "zone=orderops_api" in api
