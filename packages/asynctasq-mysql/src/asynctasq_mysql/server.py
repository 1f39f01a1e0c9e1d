"""What the driver checks about the server at connect, and which errors are worth a retry."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from asynctasq_mysql.errors import ConfigurationError, UnsupportedServerError

logger = logging.getLogger("asynctasq_mysql")

DEFAULT_MAX_PAYLOAD_SIZE = 16 * 1024 * 1024
"""Payload size (bytes) the driver aims to accept when no limit is configured."""

_CLIENT_SSL = 2048  # CLIENT_SSL capability flag of the MySQL protocol
_PACKET_OVERHEAD = 64 * 1024  # SQL text around the payload literal, with room to spare
_TRANSIENT_LOCK_ERRORS = frozenset({1205, 1213})  # lock wait timeout, deadlock
_PACKET_HINT = (
    "raise the server's limit (SET GLOBAL max_allowed_packet = {need}; and "
    "max_allowed_packet = {need_mib}M under [mysqld] in my.cnf to keep it) or lower "
    "max_payload_size (ASYNCTASQ_MYSQL_MAX_PAYLOAD_SIZE)"
)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Facts read from the server at connect.

    Attributes:
        version: ``VERSION()`` as reported.
        mariadb: True for MariaDB, False for MySQL.
        max_allowed_packet: The server's ``@@max_allowed_packet`` in bytes.
        tls: Whether the connection is encrypted.
    """

    version: str
    mariadb: bool
    max_allowed_packet: int
    tls: bool


def required_packet(max_payload_size: int) -> int:
    """Smallest ``max_allowed_packet`` that carries any payload of `max_payload_size` bytes.

    Escaping can double binary data (every quote, backslash or NUL byte takes two bytes).
    """
    return 2 * max_payload_size + _PACKET_OVERHEAD


def check_packet_limit(max_allowed_packet: int, max_payload_size: int | None) -> None:
    """Fail (explicit limit) or note (default 16 MiB goal) when the packet is too small.

    Without an explicit limit a note at INFO is enough: stock MariaDB (16 MiB packets)
    carries payloads of about 8 MiB, a warning on every connect of every process was noise,
    and a payload that does not fit is refused at dispatch with the same hint.

    Raises:
        ConfigurationError: `max_payload_size` was set and does not fit.
    """
    goal = max_payload_size or DEFAULT_MAX_PAYLOAD_SIZE
    need = required_packet(goal)
    if max_allowed_packet >= need:
        return
    hint = _PACKET_HINT.format(need=need, need_mib=-(-need // (1 << 20)))
    message = (
        f"the server's max_allowed_packet is {max_allowed_packet} bytes, but payloads of "
        f"{goal} bytes need up to {need}: {hint}"
    )
    if max_payload_size is not None:
        raise ConfigurationError(message)
    logger.info(
        "%s; until then payloads are limited to what fits (about %d bytes)",
        message,
        (max_allowed_packet - _PACKET_OVERHEAD) // 2,
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        return (0,)
    return tuple(int(part or 0) for part in match.groups())


def check_version(version: str) -> bool:
    """Check that the server supports ``SKIP LOCKED``; return True for MariaDB.

    Raises:
        UnsupportedServerError: MySQL before 8.0.1 or MariaDB before 10.6.
    """
    mariadb = "mariadb" in version.lower()
    # MariaDB 10.x once announced itself as "5.5.5-10.x.y-MariaDB"; drop that prefix.
    numbers = _version_tuple(re.sub(r"^5\.5\.5-", "", version))
    minimum = (10, 6, 0) if mariadb else (8, 0, 1)
    if numbers < minimum:
        product = "MariaDB" if mariadb else "MySQL"
        raise UnsupportedServerError(
            f"{product} {version} has no SELECT ... FOR UPDATE SKIP LOCKED; asynctasq-mysql "
            f"needs {product} {'.'.join(map(str, minimum))} or newer"
        )
    return mariadb


async def check_server(
    connection: Any, *, tls_requested: bool, require_tls: bool, max_payload_size: int | None
) -> ServerInfo:
    """Read and check the server's version, TLS and packet limit.

    Args:
        connection: An open `aiomysql.Connection`.
        tls_requested: Whether the connection was opened with a TLS context (aiomysql then
            encrypts exactly when the server offers TLS).
        require_tls: Fail unless the connection is encrypted.
        max_payload_size: The configured payload limit, or None for the default goal.

    Returns:
        What was learnt.

    Raises:
        UnsupportedServerError: See `check_version`.
        ConfigurationError: TLS required but not offered, or see `check_packet_limit`.
    """
    async with connection.cursor() as cursor:
        await cursor.execute("SELECT VERSION(), @@max_allowed_packet")
        version, packet = await cursor.fetchone()
    mariadb = check_version(str(version))
    tls = tls_requested and bool(connection.server_capabilities & _CLIENT_SSL)
    if require_tls and not tls:
        raise ConfigurationError(
            "the DSN requires TLS (ssl_mode=required/verify_ca/verify_identity) but the server "
            "does not offer it; enable TLS on the server or use ssl_mode=preferred"
        )
    check_packet_limit(int(packet), max_payload_size)
    return ServerInfo(
        version=str(version), mariadb=mariadb, max_allowed_packet=int(packet), tls=tls
    )


def is_transient_lock_error(exc: BaseException) -> bool:
    """True for a deadlock or lock wait timeout: the statement was rolled back, retry it."""
    code = exc.args[0] if exc.args else None
    return isinstance(code, int) and code in _TRANSIENT_LOCK_ERRORS


__all__ = [
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "ServerInfo",
    "check_packet_limit",
    "check_server",
    "check_version",
    "is_transient_lock_error",
    "required_packet",
]
