"""Exceptions the MySQL driver raises on purpose (each one says how to fix it)."""

from __future__ import annotations


class MySQLDriverError(Exception):
    """Base class for errors raised by the MySQL driver itself (not by the server)."""


class ConfigurationError(MySQLDriverError, ValueError):
    """A setting, the DSN or the server configuration cannot work; the message says why."""


class UnsupportedServerError(MySQLDriverError):
    """The server lacks a feature the driver needs (MySQL < 8.0.1, MariaDB < 10.6)."""


class PayloadTooLargeError(MySQLDriverError, ValueError):
    """A payload does not fit in one statement under the server's ``max_allowed_packet``."""


__all__ = [
    "ConfigurationError",
    "MySQLDriverError",
    "PayloadTooLargeError",
    "UnsupportedServerError",
]
