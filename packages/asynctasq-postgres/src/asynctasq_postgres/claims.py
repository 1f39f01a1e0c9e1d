"""Named claims (`ClaimStore`) in the ``<queue_table>_claims`` table (schema version 4).

Why this shape:

* Taking a claim is one ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE`` statement: a
  free key is inserted, an expired one (or one held by `replace`) is overwritten, and a
  held one is left alone. PostgreSQL locks the conflicting row and re-checks the condition
  on its latest version, so of any number of racing claimers exactly one wins, under READ
  COMMITTED, without a transaction of our own.
* When it was refused, a second statement reads the holder. The holder may have let go in
  between (released, or expired); then the claim is simply tried again.
* Expiry is ``expires_at`` on the server's clock, so workers on skewed machines agree. A
  read ignores expired rows; the claim statement deletes some of them now and then (as the
  status records are swept), so the table holds about the live claims only. Released
  claims are deleted at once.
* A holder read back is cut to `MAX_CLAIM_HOLDER_LENGTH` characters in SQL: a row written
  behind the driver's back costs bounded work.
* A row no driver writes (a holder longer than any, an expiry past `MAX_CLAIM_TTL` from now,
  'infinity' included) is no claim: it reads as nobody and is taken over, so a forged row
  holds a schedule tick, a unique key or a limit only as long as a real claim could.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from asynctasq.drivers.claims import (
    MAX_CLAIM_HOLDER_LENGTH,
    MAX_CLAIM_TTL,
    check_claim,
    check_claim_holder,
    check_claim_key,
)
from asynctasq_postgres.missing_schema import explain_missing_schema
from asynctasq_postgres.naming import TableNames

CLAIM_ATTEMPTS = 10
"""Tries of one claim whose holder keeps letting go between the take and the read."""


@dataclass(frozen=True, slots=True)
class ClaimStatements:
    """The claims' statements for one set of tables."""

    claim: str
    read: str
    release: str

    @classmethod
    def build(cls, names: TableNames) -> ClaimStatements:
        """Format the statements for `names` (identifiers are validated and quoted)."""
        c = names.claims
        live_holder = f"left(holder, {MAX_CLAIM_HOLDER_LENGTH})"

        def live(row: str = "") -> str:
            return (
                f"{row}expires_at > now() AND {row}expires_at <= now() + interval "
                f"'{MAX_CLAIM_TTL + 1:.0f} seconds' AND length({row}holder) <= "
                f"{MAX_CLAIM_HOLDER_LENGTH}"
            )

        return cls(
            # $1 key, $2 holder, $3 ttl seconds, $4 replace (NULL: none), $5 most expired
            # rows to delete (never the key being claimed). Returns (taken, swept).
            claim=f"""
WITH swept AS (
    DELETE FROM {c} WHERE key IN (
        SELECT key FROM {c}
        WHERE expires_at <= now() AND key <> $1::text
        ORDER BY expires_at LIMIT $5::int FOR UPDATE SKIP LOCKED)
    RETURNING 1
), taken AS (
    INSERT INTO {c} AS c (key, holder, expires_at)
    VALUES ($1::text, $2::text, now() + make_interval(secs => $3::float8))
    ON CONFLICT (key) DO UPDATE
        SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE NOT ({live("c.")}) OR c.holder = $4::text
    RETURNING 1
)
SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM swept)""",
            read=f"""
SELECT {live_holder} FROM {c} WHERE key = $1::text AND {live()}""",
            release=f"""
DELETE FROM {c} WHERE key = $1::text AND holder = $2::text AND expires_at > now()
RETURNING 1""",
        )


class Claims:
    """`ClaimStore` for `PostgresDriver` (mixed in; uses its pool, names and sweeps)."""

    _names: TableNames
    _claim_sql: ClaimStatements
    _pool: asyncpg.Pool[asyncpg.Record] | None
    _ensure_pool: Callable[[], Awaitable[asyncpg.Pool[asyncpg.Record]]]
    _sweep_limit: Callable[[str], int]
    _swept: Callable[[str, int, int], None]

    @explain_missing_schema
    async def claim(
        self, key: str, holder: str, ttl: float, *, replace: str | None = None
    ) -> str | None:
        """Make `holder` hold `key` for `ttl` seconds when it is free or held by `replace`
        (one statement; a second reads the holder when refused). Returns None when taken,
        else the current holder.

        Raises:
            ValueError: An argument breaks the rules of `asynctasq.drivers.claims`.
            RuntimeError: The key changed hands between every take and read, ten times.
        """
        seconds = check_claim(key, holder, ttl, replace)
        pool = self._pool or await self._ensure_pool()
        for _ in range(CLAIM_ATTEMPTS):
            sweep = self._sweep_limit("claims")
            row = await pool.fetchrow(self._claim_sql.claim, key, holder, seconds, replace, sweep)
            assert row is not None
            self._swept("claims", sweep, row[1])
            if row[0]:
                return None
            current: str | None = await pool.fetchval(self._claim_sql.read, key)
            if current is not None:
                return current
        raise RuntimeError(
            f"claim {key[:80]!r}: its holder let go between each of {CLAIM_ATTEMPTS} tries to "
            "take it and the read that followed; try again"
        )

    @explain_missing_schema
    async def release_claim(self, key: str, holder: str) -> bool:
        """End the claim on `key` if `holder` holds it (one statement); whether it did."""
        check_claim_key(key)
        check_claim_holder(holder)
        pool = self._pool or await self._ensure_pool()
        return await pool.fetchval(self._claim_sql.release, key, holder) is not None

    @explain_missing_schema
    async def read_claim(self, key: str) -> str | None:
        """The current holder of `key`, or None (nobody, or expired)."""
        check_claim_key(key)
        pool = self._pool or await self._ensure_pool()
        current: str | None = await pool.fetchval(self._claim_sql.read, key)
        return current
