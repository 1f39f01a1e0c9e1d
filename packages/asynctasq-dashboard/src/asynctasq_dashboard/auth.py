"""Who may use the dashboard: a token or HTTP basic auth, and the rule that a dashboard
reachable from other hosts must have one.

Secrets are compared in constant time (`hmac.compare_digest`), so response timing says
nothing about how much of a guess was right. A browser that logged in with the token keeps a
cookie holding a keyed hash of the token, never the token itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from asynctasq.errors import ConfigError

SESSION_COOKIE = "asynctasq_dashboard_session"
"""The cookie a browser keeps after logging in with the token."""
REALM = 'Basic realm="asynctasq dashboard", charset="UTF-8"'
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """Access with a shared token: ``Authorization: Bearer TOKEN`` (scripts) or the login
    page (browsers), which sets a session cookie.

    Args:
        token: The secret; at least 16 characters.

    Raises:
        ConfigError: the token is too short to resist guessing.
    """

    token: str = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ConfigError(
                "the dashboard token must be at least 16 characters long; generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )

    def session_value(self) -> str:
        """What the session cookie holds: a keyed hash of the token, not the token."""
        return hmac.new(self.token.encode(), b"asynctasq-dashboard-session", "sha256").hexdigest()

    def accepts_token(self, given: str) -> bool:
        """Whether `given` is the token (constant time)."""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def allows(self, conn: HTTPConnection) -> bool:
        """Whether the request carries the token or a valid session cookie."""
        header = conn.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return self.accepts_token(value.strip())
        cookie = conn.cookies.get(SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(
            cookie.encode(), self.session_value().encode()
        )


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """Access with HTTP basic auth (the browser asks for the user name and password).

    Args:
        username: The user name.
        password: The password; at least 12 characters.

    Raises:
        ConfigError: an empty user name, or a password too short to resist guessing.
    """

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            raise ConfigError("the dashboard's basic auth user name must be set and hold no ':'")
        if len(self.password) < 12:
            raise ConfigError("the dashboard's basic auth password must be at least 12 characters")

    @classmethod
    def parse(cls, text: str) -> BasicAuth:
        """``USER:PASSWORD`` (as ``--basic-auth`` and the environment give it).

        Raises:
            ConfigError: no ``:``, or the parts fail the checks above.
        """
        username, sep, password = text.partition(":")
        if not sep:
            raise ConfigError("basic auth must be given as USER:PASSWORD")
        return cls(username, password)

    def allows(self, conn: HTTPConnection) -> bool:
        """Whether the request's ``Authorization: Basic`` header names this user (constant
        time for both parts)."""
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        # Both compared every time: which part was wrong must not show in the timing.
        user_ok = hmac.compare_digest(_digest(user), _digest(self.username))
        password_ok = hmac.compare_digest(_digest(password), _digest(self.password))
        return user_ok and password_ok


Auth = TokenAuth | BasicAuth
"""The ways to protect a dashboard."""


def _digest(text: str) -> bytes:
    # Equal-length inputs for compare_digest, whatever the lengths given.
    return hashlib.sha256(text.encode()).digest()


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (``127.0.0.0/8``, ``::1``,
    ``localhost``)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: Auth | None) -> None:
    """Refuse to serve on a non-loopback address without authentication.

    Raises:
        ConfigError: `host` is reachable from other machines and `auth` is None.
    """
    if auth is None and not is_loopback(host):
        raise ConfigError(
            f"the dashboard would listen on {host!r}, reachable from other machines, without "
            "authentication: set a token (ASYNCTASQ_DASHBOARD_TOKEN or --token-file FILE) or "
            "basic auth (ASYNCTASQ_DASHBOARD_BASIC_AUTH=user:password), or bind 127.0.0.1"
        )


__all__ = ["REALM", "SESSION_COOKIE", "Auth", "BasicAuth", "TokenAuth", "check_bind", "is_loopback"]
