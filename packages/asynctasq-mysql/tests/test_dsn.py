"""DSN parsing and secrecy: no server needed, except where a test says so."""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Callable
from typing import Any

import aiomysql
import pytest

from asynctasq_mysql import ConfigurationError, MySQLDriver, SSLMode, parse_dsn

SECRET = "s3cr3t:/@%?#&="  # every character that needs percent-encoding in a URL
ENCODED = "s3cr3t%3A%2F%40%25%3F%23%26%3D"


def test_parses_every_part_and_decodes_percent_encoding() -> None:
    dsn = parse_dsn(f"mysql://app%40corp:{ENCODED}@db.example:3307/my%2Ddb")
    assert (dsn.user, dsn.password, dsn.host, dsn.port, dsn.database) == (
        "app@corp",
        SECRET,
        "db.example",
        3307,
        "my-db",
    )


def test_defaults_and_ipv6() -> None:
    dsn = parse_dsn("mariadb://[::1]/queue")
    assert (dsn.user, dsn.password, dsn.host, dsn.port) == ("root", "", "::1", 3306)
    assert dsn.ssl_mode is SSLMode.PREFERRED
    assert dsn.charset == "utf8mb4"
    assert dsn.redacted == "mysql://root@[::1]:3306/queue"


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("ssl=true", SSLMode.REQUIRED),
        ("ssl=0", SSLMode.DISABLED),
        ("ssl_mode=VERIFY_IDENTITY", SSLMode.VERIFY_IDENTITY),
        ("ssl-mode=verify-ca", SSLMode.VERIFY_CA),
        ("sslmode=require", SSLMode.REQUIRED),
        ("sslmode=verify-full", SSLMode.VERIFY_IDENTITY),
        ("ssl=disabled", SSLMode.DISABLED),
    ],
)
def test_ssl_modes(query: str, mode: SSLMode) -> None:
    assert parse_dsn(f"mysql://u@h/db?{query}").ssl_mode is mode


def test_ssl_contexts_follow_the_mode() -> None:
    assert parse_dsn("mysql://u@h/db?ssl=false").ssl_context() is None
    required = parse_dsn("mysql://u@h/db?ssl_mode=required").ssl_context()
    assert required is not None
    assert (required.verify_mode, required.check_hostname) == (ssl.CERT_NONE, False)
    identity = parse_dsn("mysql://u@h/db?ssl_mode=verify_identity").ssl_context()
    assert identity is not None
    assert (identity.verify_mode, identity.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_ssl_ca_alone_implies_verify_ca_and_missing_files_are_reported() -> None:
    dsn = parse_dsn("mysql://u@h/db?ssl_ca=/nonexistent/ca.pem")
    assert dsn.ssl_mode is SSLMode.VERIFY_CA
    with pytest.raises(ConfigurationError, match="cannot load TLS files"):
        dsn.ssl_context()


def test_options_reach_aiomysql() -> None:
    kwargs = parse_dsn(
        "mysql://u:p@h/db?charset=utf8mb4&connect_timeout=2.5&unix_socket=/run/my.sock&ssl=off"
    ).connect_kwargs()
    assert kwargs["connect_timeout"] == 2.5
    assert kwargs["unix_socket"] == "/run/my.sock"
    assert kwargs["ssl"] is None
    assert kwargs["password"] == "p"


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://u@h/db", "unsupported DSN scheme"),
        ("mysql://u@h/db?sslmod=required", "unknown MySQL DSN option 'sslmod'"),
        ("mysql://u@h/db?ssl_mode=maybe", "unknown ssl mode"),
        ("mysql://u@h:notaport/db", "cannot parse host/port"),
        ("mysql://u@h", "must name a database"),
        ("mysql://u@h/db?connect_timeout=soon", "connect_timeout"),
    ],
)
def test_invalid_dsns_are_rejected_clearly(dsn: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_dsn(dsn)


def test_password_never_in_repr_or_parse_errors() -> None:
    dsn = parse_dsn(f"mysql://app:{ENCODED}@h:3306/db")
    assert SECRET not in repr(dsn)
    assert ENCODED not in repr(dsn)
    assert dsn.redacted == "mysql://app:***@h:3306/db"
    driver = MySQLDriver(dsn=f"mysql://app:{ENCODED}@h:3306/db")
    assert SECRET not in repr(driver)
    assert ENCODED not in repr(driver)
    assert "***" in repr(driver)
    for bad in (f"mysql://app:{ENCODED}@h:99999/db", f"mysql://app:{ENCODED}@h/db?x=1"):
        with pytest.raises(ConfigurationError) as caught:
            parse_dsn(bad)
        assert SECRET not in str(caught.value)
        assert ENCODED not in str(caught.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://app:12/s3cr3t@h:3306/db",  # urllib: host "app", port 12, database "s3cr3t@h/db"
        "mysql://app:pa/s3cr3t@h/db",
        "mysql://app:12?s3cr3t@h/db",  # urllib: an option named after the password
        "mysql://app:p@s3cr3t/x@h/db",  # urllib: host "s3cr3t"
    ],
)
def test_an_unencoded_password_is_refused_without_showing_it(dsn: str) -> None:
    """Where a password with a raw "/", "?", "#" or "@" ends cannot be told: urllib would
    put part of it in the host, the database or an option name, all shown in reprs and
    errors. The DSN is refused, saying what to encode."""
    with pytest.raises(ConfigurationError, match="percent-encode") as refused:
        parse_dsn(dsn)
    assert "s3cr3t" not in str(refused.value)


async def test_percent_encoded_password_logs_in_and_is_never_logged(
    admin: Any,
    make_driver: Callable[..., MySQLDriver],
    mysql_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real user whose password needs encoding connects; no log line shows it."""
    user = f"atq_{uuid.uuid4().hex[:8]}"
    base = parse_dsn(mysql_dsn)
    async with admin.cursor() as cursor:
        await cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, SECRET))
        await cursor.execute(f"GRANT ALL ON `{base.database}`.* TO %s@'%%'", (user,))
    try:
        caplog.set_level(logging.DEBUG)
        good = make_driver(dsn=f"mysql://{user}:{ENCODED}@{base.host}:{base.port}/{base.database}")
        await good.connect()
        assert await good.queue_names() == []
        bad = make_driver(dsn=f"mysql://{user}:{ENCODED}x@{base.host}:{base.port}/{base.database}")
        with pytest.raises(aiomysql.OperationalError, match="Access denied") as caught:
            await bad.connect()
        assert SECRET not in str(caught.value)
        assert SECRET not in caplog.text
        assert ENCODED not in caplog.text
        assert "***" in caplog.text  # the connect log line shows the redacted DSN
    finally:
        async with admin.cursor() as cursor:
            await cursor.execute("DROP USER %s@'%%'", (user,))
