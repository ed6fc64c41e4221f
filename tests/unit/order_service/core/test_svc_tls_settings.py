"""PostgreSQL ``sslmode`` and Redis TLS reach the drivers (RDS with ``rds.force_ssl``, ElastiCache
with in-transit encryption: templates/aws/stack.py sets ``POSTGRES_SSLMODE=require``, ``REDIS_TLS=true``).

Against the real test PostgreSQL and Redis (started without TLS, tests/unit/order_service/conftest.py):
``sslmode=require`` must then fail where ``disable`` connects, and a TLS Redis client must fail its
handshake where the plain one answers, which proves the settings are what the drivers use.
"""

import pytest
import redis
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from order_service.core.config import Settings
from order_service.core.db import make_engine
from order_service.core.redis_clients import client_options, make_redis


def test_defaults_keep_libpq_and_plain_redis():
    s = Settings(_env_file=None)
    assert s.SQLALCHEMY_DATABASE_URI.query == {"sslmode": "prefer"}  # libpq's own default
    assert "ssl" not in client_options(s)


def test_values_are_validated_and_passed_on():
    with pytest.raises(ValidationError) as e:
        Settings(_env_file=None, POSTGRES_SSLMODE="required")
    assert "POSTGRES_SSLMODE" in str(e.value)
    s = Settings(_env_file=None, POSTGRES_SSLMODE="verify-full", POSTGRES_SSLROOTCERT="/etc/ssl/rds.pem",
                 REDIS_TLS="true", REDIS_TLS_CA_FILE="/etc/ssl/ca.pem")
    assert s.SQLALCHEMY_DATABASE_URI.query == {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/rds.pem"}
    opts = client_options(s)
    assert (opts["ssl"], opts["ssl_cert_reqs"], opts["ssl_check_hostname"], opts["ssl_ca_certs"]) == (
        True, "required", True, "/etc/ssl/ca.pem")


def test_sslmode_reaches_libpq(settings_factory, migrated_db):
    with make_engine(settings_factory(POSTGRES_SSLMODE="disable")).connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    with pytest.raises(OperationalError, match="server does not support SSL"):
        with make_engine(settings_factory(POSTGRES_SSLMODE="require")).connect():
            pass


def test_redis_tls_reaches_the_client(settings_factory):
    assert make_redis(settings_factory()).ping()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)) as e:  # the plain server never answers the ClientHello
        make_redis(settings_factory(REDIS_TLS=True, DEPENDENCY_TIMEOUT_SECONDS=1)).ping()
    inner = e.value.__cause__ or e.value.__context__
    assert "_ssl" in str(inner) or "SSL" in type(inner).__name__, repr(inner)
