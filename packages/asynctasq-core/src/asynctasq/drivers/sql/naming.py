"""Validated SQL identifiers: the only way a configured name reaches a statement.

Every schema, table and index name a SQL driver puts into SQL text passes through a
`Dialect`: `Dialect.identifier` checks a configured name against `IDENTIFIER_PATTERN` and the
dialect's length limit, `Dialect.quote` quotes it. Nothing else is ever formatted into a
statement; values travel as bind parameters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from asynctasq.errors import ConfigError

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What a configured schema or table name may look like (checked with `fullmatch`): ASCII
letters, digits and underscores, not starting with a digit. Such a name needs no escaping in
any dialect, and quoting it keeps reserved words and letter case as written."""


class InvalidIdentifierError(ConfigError):
    """A configured schema or table name is not a plain SQL identifier, is too long, or
    equals another one."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database quotes and bounds identifiers.

    Attributes:
        name: The database, for messages (``"PostgreSQL"``).
        quote_char: The identifier quote (``"`` or a backquote); doubled inside a name.
        max_length: Longest configured name. It may be below the server's own limit where
            the driver appends suffixes to a name (index names).
        max_identifier_length: The server's limit; a derived name longer than it is hashed.
        case_insensitive: Whether the server may compare table names ignoring case (MySQL
            on some platforms): names must then differ in more than case.
        backslash_escapes: Whether a backslash escapes inside a string literal (MySQL's
            default), so `literal` doubles it too.
    """

    name: str
    quote_char: str
    max_length: int
    max_identifier_length: int
    case_insensitive: bool = False
    backslash_escapes: bool = False

    def identifier(self, name: str, what: str) -> str:
        """Return `name` unchanged when it is a plain identifier no longer than `max_length`.

        Args:
            name: The configured name.
            what: The setting it comes from, for the message (``"queue_table"``).

        Raises:
            InvalidIdentifierError: The name is empty, too long, not a string, or has
                characters other than ASCII letters, digits and underscores (or starts with a
                digit).
        """
        if (
            not isinstance(name, str)
            or not IDENTIFIER_PATTERN.fullmatch(name)
            or len(name) > self.max_length
        ):
            raise InvalidIdentifierError(
                f"invalid {what} {name!r}: use 1 to {self.max_length} ASCII letters, digits "
                "and underscores, not starting with a digit"
            )
        return name

    def quote(self, name: str) -> str:
        """`name` quoted for SQL text (``"name"`` or a backquoted one), quotes doubled."""
        q = self.quote_char
        return q + name.replace(q, q + q) + q

    def literal(self, value: str) -> str:
        """`value` as an SQL string literal, for scripts shown to people (``--dry-run``);
        statements a driver runs bind values as parameters instead."""
        if self.backslash_escapes:
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"

    def derived(self, base: str, suffix: str) -> str:
        """The name of a table or index named after `base`: ``<base>_<suffix>``, or, when
        that is longer than the server allows, ``asynctasq_<suffix>_<hash of it>``."""
        name = f"{base}_{suffix}"
        if len(name) <= self.max_identifier_length:
            return name
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:16]
        return f"asynctasq_{suffix}_{digest}"

    def require_distinct(self, names: Mapping[str, str]) -> None:
        """Check that no two of `names` (setting or role -> table name) name one table.

        Raises:
            InvalidIdentifierError: Two names are equal (ignoring case where the server may).
        """
        seen: dict[str, str] = {}
        for what, name in names.items():
            key = name.lower() if self.case_insensitive else name
            if key in seen:
                how = " (ignoring case)" if self.case_insensitive else ""
                raise InvalidIdentifierError(
                    f"table names must differ{how}: {what}={name!r} is the table of "
                    f"{seen[key]}; choose another name"
                )
            seen[key] = what


__all__ = ["IDENTIFIER_PATTERN", "Dialect", "InvalidIdentifierError"]
