"""Named claims (`ClaimStore`) in the ``asynctasq_claims`` table (schema version 4).

A claim is a row ``(key, holder, expires_at)``. Taking one reads the live row and writes
the new one inside one ``BEGIN IMMEDIATE`` transaction (a savepoint of a group commit):
SQLite lets one writer at a time hold the file, so of any number of claimers, in this
process or others, exactly one finds the key free. Times are Unix seconds of this host's
clock, which every process sharing the file shares.

Expired rows are never returned, and each claim deletes a bounded batch of them first (an
index seek when there are none), so the table holds about the live claims only. Released
claims are deleted at once. A holder read back is cut to `MAX_HOLDER_BYTES` in SQL: a row
written behind the driver's back (the table is not STRICT) costs bounded work and never
fails a decode. A row no driver writes (a holder not text, longer than any, not UTF-8 or with
a NUL, an expiry further than the longest ttl or not a number) is no claim: it reads as nobody and
is taken over, so a forged row holds a schedule tick, a unique key or a limit only as long
as a real claim could.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable

from asynctasq.drivers.claims import (
    MAX_CLAIM_HOLDER_LENGTH,
    MAX_CLAIM_TTL,
    check_claim,
    check_claim_holder,
    check_claim_key,
    stored_holder,
)
from asynctasq_sqlite._connection import SqliteConnection
from asynctasq_sqlite._transaction import immediate
from asynctasq_sqlite.sql import TRIM_BATCH

MAX_HOLDER_BYTES = 4 * MAX_CLAIM_HOLDER_LENGTH
"""Most bytes of a holder returned (the longest valid holder in UTF-8)."""

TRIM_CLAIMS = f"""
DELETE FROM asynctasq_claims WHERE key IN (
    SELECT key FROM asynctasq_claims WHERE expires_at <= ? LIMIT {TRIM_BATCH:d}
)
"""

# The holder (bounded, as bytes), whether it equals the `replace` given (NULL: never), and
# its length in bytes; of a row that has not expired and expires no further off than the
# longest ttl (a text is greater than any number in SQLite, so it fails the second bound).
LIVE_CLAIM = f"""
SELECT substr(CAST(holder AS BLOB), 1, {MAX_HOLDER_BYTES:d}), holder IS ?,
       length(CAST(holder AS BLOB)), typeof(holder) = 'text'
FROM asynctasq_claims WHERE key = ? AND expires_at > ? AND expires_at <= ?
"""

TAKE_CLAIM = """
INSERT OR REPLACE INTO asynctasq_claims (key, holder, expires_at) VALUES (?, ?, ?)
"""

RELEASE_CLAIM = """
DELETE FROM asynctasq_claims WHERE key = ? AND holder = ? AND expires_at > ?
"""


def _live(conn: sqlite3.Connection, key: str, replace: str | None) -> tuple[str, bool] | None:
    """The holder of `key` and whether it is `replace`, or None when no claim a driver
    wrote holds it."""
    now = time.time()
    row = conn.execute(LIVE_CLAIM, (replace, key, now, now + MAX_CLAIM_TTL + 1)).fetchone()
    if row is None or not row[3] or row[2] > MAX_HOLDER_BYTES:
        return None  # a blob is no holder: `replace` (text) could never name it
    holder = stored_holder(bytes(row[0]))
    return None if holder is None else (holder, bool(row[1]))


def claim(
    conn: sqlite3.Connection, key: str, holder: str, ttl: float, replace: str | None
) -> str | None:
    """Take `key` for `holder` when free or held by `replace`; None, or the holder."""
    now = time.time()
    with immediate(conn):
        conn.execute(TRIM_CLAIMS, (now,))
        live = _live(conn, key, replace)
        if live is not None and not live[1]:
            return live[0]
        conn.execute(TAKE_CLAIM, (key, holder, now + ttl))
    return None


def release_claim(conn: sqlite3.Connection, key: str, holder: str) -> bool:
    """Delete the claim on `key` if `holder` holds it; whether it did."""
    with immediate(conn):
        return conn.execute(RELEASE_CLAIM, (key, holder, time.time())).rowcount == 1


def read_claim(conn: sqlite3.Connection, key: str) -> str | None:
    """The live holder of `key`, if any."""
    live = _live(conn, key, None)
    return None if live is None else live[0]


class Claims:
    """`ClaimStore` for `SqliteDriver` (mixed in; uses its connection)."""

    _connection: Callable[[], Awaitable[SqliteConnection]]

    async def claim(
        self, key: str, holder: str, ttl: float, *, replace: str | None = None
    ) -> str | None:
        """Make `holder` hold `key` for `ttl` seconds when it is free or held by `replace`
        (one write transaction). Returns None when taken, else the current holder.

        Raises:
            ValueError: An argument breaks the rules of `asynctasq.drivers.claims`.
        """
        seconds = check_claim(key, holder, ttl, replace)
        conn = await self._connection()
        return await conn.write(claim, key, holder, seconds, replace)

    async def release_claim(self, key: str, holder: str) -> bool:
        """End the claim on `key` if `holder` holds it; whether it did."""
        check_claim_key(key)
        check_claim_holder(holder)
        conn = await self._connection()
        return await conn.write(release_claim, key, holder)

    async def read_claim(self, key: str) -> str | None:
        """The current holder of `key`, or None (nobody, or expired)."""
        check_claim_key(key)
        conn = await self._connection()
        return await conn.read(read_claim, key)
