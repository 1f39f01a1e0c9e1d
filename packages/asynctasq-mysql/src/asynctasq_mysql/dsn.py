"""DSN parsing: ``mysql://user:pass@host:3306/db?ssl_mode=required&ssl_ca=/ca.pem``.

The DSN goes through `urllib.parse`, percent-encoded user names and passwords are decoded,
and every query option is either honoured or rejected: a misspelt ``ssl_mode`` must not
quietly fall back to plain text. The password is kept out of every repr and log line.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from asynctasq.redaction import MASK, url_password
from asynctasq_mysql.errors import ConfigurationError

SCHEMES = frozenset({"mysql", "mariadb", "mysql+aiomysql", "mariadb+aiomysql"})
DEFAULT_PORT = 3306


class SSLMode(StrEnum):
    """TLS policy, named as in the MySQL client's ``--ssl-mode``."""

    DISABLED = "disabled"
    PREFERRED = "preferred"
    REQUIRED = "required"
    VERIFY_CA = "verify_ca"
    VERIFY_IDENTITY = "verify_identity"


_SSL_MODE_ALIASES = {
    # libpq spellings people carry over from PostgreSQL DSNs.
    "disable": SSLMode.DISABLED,
    "prefer": SSLMode.PREFERRED,
    "require": SSLMode.REQUIRED,
    "verify-full": SSLMode.VERIFY_IDENTITY,
    "verify_full": SSLMode.VERIFY_IDENTITY,
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_OPTIONS = (
    "ssl",
    "ssl_mode",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "charset",
    "connect_timeout",
    "unix_socket",
)


@dataclass(frozen=True, slots=True)
class MySQLDSN:
    """A parsed DSN. ``repr()`` and `redacted` never show the password.

    Attributes:
        host: Server host name or address.
        port: TCP port.
        user: User name (decoded).
        password: Password (decoded); excluded from repr.
        database: Database (schema) name.
        ssl_mode: TLS policy.
        ssl_ca: CA bundle file for verifying the server.
        ssl_cert: Client certificate file.
        ssl_key: Client private key file.
        charset: Connection character set.
        connect_timeout: Seconds to wait for a connection, or None for the library default.
        unix_socket: Path of a Unix socket to use instead of TCP.
    """

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    ssl_mode: SSLMode = SSLMode.PREFERRED
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    charset: str = "utf8mb4"
    connect_timeout: float | None = None
    unix_socket: str | None = None

    @property
    def redacted(self) -> str:
        """The DSN with the password replaced by ``***`` (safe for logs and reprs)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += f":{MASK}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mysql://{auth}@{host}:{self.port}/{quote(self.database, safe='')}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """Build the TLS context the mode asks for (None when TLS is disabled).

        Raises:
            ConfigurationError: A certificate or key file cannot be loaded.
        """
        if self.ssl_mode is SSLMode.DISABLED:
            return None
        verify = self.ssl_mode in (SSLMode.VERIFY_CA, SSLMode.VERIFY_IDENTITY)
        try:
            context = ssl.create_default_context(cafile=self.ssl_ca)
            if self.ssl_cert:
                context.load_cert_chain(self.ssl_cert, self.ssl_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load TLS files for {self.redacted}: {exc}") from exc
        context.check_hostname = self.ssl_mode is SSLMode.VERIFY_IDENTITY
        if not verify:
            # REQUIRED/PREFERRED encrypt without checking who answers, as the MySQL client does.
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect_kwargs(self) -> dict[str, object]:
        """Keyword arguments for `aiomysql.connect` / `aiomysql.create_pool`."""
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "db": self.database,
            "charset": self.charset,
            "ssl": self.ssl_context(),
        }
        if self.unix_socket:
            kwargs["unix_socket"] = self.unix_socket
        if self.connect_timeout is not None:
            kwargs["connect_timeout"] = self.connect_timeout
        return kwargs


def _ssl_mode(value: str) -> SSLMode:
    key = value.strip().lower()
    if key in _SSL_MODE_ALIASES:
        return _SSL_MODE_ALIASES[key]
    if key in _TRUE:
        return SSLMode.REQUIRED
    if key in _FALSE:
        return SSLMode.DISABLED
    try:
        return SSLMode(key.replace("-", "_"))
    except ValueError:
        allowed = ", ".join(m.value for m in SSLMode)
        raise ConfigurationError(f"unknown ssl mode {value!r} (use one of: {allowed})") from None


def parse_dsn(dsn: str) -> MySQLDSN:
    """Parse a MySQL/MariaDB DSN.

    Args:
        dsn: ``mysql://[user[:password]@]host[:port][/database][?option=value&...]``.
            Options: ``ssl`` (true/false or a mode), ``ssl_mode`` (disabled, preferred,
            required, verify_ca, verify_identity), ``ssl_ca``, ``ssl_cert``, ``ssl_key``,
            ``charset``, ``connect_timeout``, ``unix_socket``; ``-`` and ``_`` are
            interchangeable in option names.

    Returns:
        The parsed DSN. Without any TLS option the mode is ``preferred`` (TLS when the
        server offers it); giving ``ssl_ca`` alone implies ``verify_ca``.

    Raises:
        ConfigurationError: Unsupported scheme, bad port, unknown/invalid option, or a
            password holding an unencoded ``/``, ``?``, ``#`` or ``@`` (where it ends
            cannot be told). The message never contains the password.
    """
    text = dsn.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        # urllib's message may quote the netloc, password included: say less.
        raise ConfigurationError("invalid MySQL DSN: cannot parse host/port") from exc
    if (url_password(text) or None) != (parts.password or None):
        # An unencoded "/", "?", "#" or "@" in the password: urllib would read part of it
        # as the host, port, database or an option, and show it there.
        raise ConfigurationError(
            "invalid MySQL DSN: cannot tell where the password ends; percent-encode "
            "'/', '?', '#' and '@' in the user name, password and database name "
            "('/' is %2F, '?' is %3F, '#' is %23, '@' is %40)"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError("invalid MySQL DSN: cannot parse host/port") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"unsupported DSN scheme {parts.scheme!r}: use mysql:// or mariadb://"
        )
    options: dict[str, str] = {}
    for raw_key, value in parse_qsl(parts.query, keep_blank_values=True):
        key = raw_key.lower().replace("-", "_")
        if key == "sslmode":
            key = "ssl_mode"
        if key not in _OPTIONS:
            raise ConfigurationError(
                f"unknown MySQL DSN option {raw_key!r} (supported: {', '.join(_OPTIONS)})"
            )
        options[key] = value
    mode_text = options.get("ssl_mode") or options.get("ssl")
    if mode_text:
        mode = _ssl_mode(mode_text)
    elif options.get("ssl_ca"):
        mode = SSLMode.VERIFY_CA
    else:
        mode = SSLMode.PREFERRED
    timeout: float | None = None
    if options.get("connect_timeout"):
        try:
            timeout = float(options["connect_timeout"])
        except ValueError:
            raise ConfigurationError("connect_timeout must be a number of seconds") from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError(
            f"the MySQL DSN must name a database, e.g. {parts.scheme}://user@host:3306/mydb"
        )
    return MySQLDSN(
        host=parts.hostname or "localhost",
        port=port or DEFAULT_PORT,
        user=unquote(parts.username) if parts.username else "root",
        password=unquote(parts.password) if parts.password else "",
        database=database,
        ssl_mode=mode,
        ssl_ca=options.get("ssl_ca") or None,
        ssl_cert=options.get("ssl_cert") or None,
        ssl_key=options.get("ssl_key") or None,
        charset=options.get("charset") or "utf8mb4",
        connect_timeout=timeout,
        unix_socket=options.get("unix_socket") or None,
    )


__all__ = ["MySQLDSN", "SSLMode", "parse_dsn"]
