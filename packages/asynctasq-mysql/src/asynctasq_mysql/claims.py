"""Named claims (`ClaimStore`) in the ``<queue_table>_claims`` table (migration 4).

Why this shape:

* Taking a claim is one short transaction of two round trips: ``START TRANSACTION; SELECT
  ... FOR UPDATE`` reads the live holder and locks the row, then ``UPDATE`` (or ``INSERT``
  for a key with no row) and ``COMMIT``. Racing claimers of an existing row queue on its
  lock and each sees the previous winner's commit; racing inserters of a new key collide on
  the primary key, and the losers (a duplicate-key error) start over and find the winner's
  row. So exactly one wins. (``INSERT ... ON DUPLICATE KEY UPDATE`` cannot do it in one
  statement: the condition must read the old holder and expiry while both are assigned.)
* Keys and holders travel as hex (``UNHEX(%s)``): safe in every escaping mode and
  connection character set, and stored as the UTF-8 bytes, compared byte for byte.
* Expiry is ``expires_at`` on the server's clock. Reads ignore expired rows; a driver
  deletes them in batches after its own claims (as for the lifecycle tables), and released
  claims are deleted at once.
* A holder is read back at most the column's 1 KiB, and a row written behind the driver's
  back never fails a decode: a row no driver writes (a holder longer than any or not UTF-8,
  an expiry further than the longest ttl) is no claim. It reads as nobody and is taken
  over, so a forged row holds a schedule tick, a unique key or a limit only as long as a
  real claim could.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from asynctasq.drivers.claims import (
    MAX_CLAIM_HOLDER_LENGTH,
    check_claim,
    check_claim_holder,
    check_claim_key,
    stored_holder,
)
from asynctasq_mysql.lifecycle import MAX_TTL, TRIM_BATCH, TRIM_INTERVAL
from asynctasq_mysql.pool import execute, fetchall, rollback_quietly
from asynctasq_mysql.schema import TableNames
from asynctasq_mysql.server import is_transient_lock_error
from asynctasq_mysql.sql import micros

logger = logging.getLogger("asynctasq_mysql")

CLAIM_ATTEMPTS = 10
"""Tries of one claim that keeps losing an insert race or a deadlock (each rolled back)."""

MAX_HOLDER_BYTES = 4 * MAX_CLAIM_HOLDER_LENGTH
_DUPLICATE_KEY = 1062  # ER_DUP_ENTRY
_NOW = "UTC_TIMESTAMP(6)"


class ClaimStatements:
    """SQL text for the claims table of one table set."""

    def __init__(self, tables: TableNames) -> None:
        c = tables.claims
        holder = f"SUBSTRING(`holder`, 1, {MAX_HOLDER_BYTES:d})"
        # Not expired, and no further off than the longest ttl; `_held` checks the holder.
        live = (
            f"(`expires_at` > {_NOW} AND `expires_at` <= {_NOW} + INTERVAL "
            f"{MAX_TTL + 1:.0f} SECOND AND LENGTH(`holder`) <= {MAX_HOLDER_BYTES:d})"
        )
        # (holder, whether live, whether it equals `replace`: NULL when none is given)
        self.lock = (
            f"SELECT {holder}, {live}, `holder` = UNHEX(%s) "
            f"FROM {c} WHERE `key` = UNHEX(%s) FOR UPDATE"
        )
        self.insert = (
            f"INSERT INTO {c} (`key`, `holder`, `expires_at`) "
            f"VALUES (UNHEX(%s), UNHEX(%s), {_NOW} + INTERVAL %s MICROSECOND)"
        )
        self.update = (
            f"UPDATE {c} SET `holder` = UNHEX(%s), `expires_at` = {_NOW} + INTERVAL %s "
            "MICROSECOND WHERE `key` = UNHEX(%s)"
        )
        self.release = (
            f"DELETE FROM {c} WHERE `key` = UNHEX(%s) AND `holder` = UNHEX(%s) "
            f"AND `expires_at` > {_NOW}"
        )
        self.read = f"SELECT {holder}, {live} FROM {c} WHERE `key` = UNHEX(%s)"
        self.trim = f"DELETE FROM {c} WHERE `expires_at` <= {_NOW} LIMIT {TRIM_BATCH:d}"


def _hex(text: str) -> str:
    return text.encode().hex()


def _held(row: Any) -> str | None:
    """The holder of a (holder, live, ...) row, or None when it holds no claim a driver
    wrote: expired or further off than the longest ttl, or a holder no claim has."""
    if row is None or not row[1]:
        return None
    return stored_holder(bytes(row[0]))


class MySQLClaims:
    """`ClaimStore`, mixed into `MySQLDriver` (which provides `_ready` and `_tables`)."""

    _tables: TableNames

    async def _ready(self) -> Any:
        raise NotImplementedError  # pragma: no cover  (MySQLDriver's)

    @functools.cached_property
    def _claim_sql(self) -> ClaimStatements:
        return ClaimStatements(self._tables)

    @functools.cached_property
    def _claim_trim_due(self) -> list[float]:
        return [0.0]

    async def claim(
        self, key: str, holder: str, ttl: float, *, replace: str | None = None
    ) -> str | None:
        """Make `holder` hold `key` for `ttl` seconds when it is free or held by `replace`
        (one transaction). Returns None when taken, else the current holder.

        Raises:
            ValueError: An argument breaks the rules of `asynctasq.drivers.claims`.
        """
        seconds = check_claim(key, holder, ttl, replace)
        args = (_hex(key), _hex(holder), None if replace is None else _hex(replace))
        pool = await self._ready()
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                current = await self._claim_once(pool, *args, micros(min(seconds, MAX_TTL)))
            except Exception as exc:
                code = exc.args[0] if exc.args else None
                retry = code == _DUPLICATE_KEY or is_transient_lock_error(exc)
                if attempt + 1 == CLAIM_ATTEMPTS or not retry:
                    raise
                continue
            await self._trim_claims()
            return current
        raise AssertionError("unreachable")  # pragma: no cover

    async def _claim_once(
        self, pool: Any, key: str, holder: str, replace: str | None, ttl_micros: int
    ) -> str | None:
        sql = self._claim_sql
        async with pool.acquire() as conn, conn.cursor() as cursor:
            try:
                await cursor.execute("START TRANSACTION; " + sql.lock, (replace, key))
                await cursor.nextset()
                row = await cursor.fetchone()
                current = _held(row)
                if current is not None and not row[2]:  # held, and not by `replace`
                    await cursor.execute("COMMIT")
                    return current
                if row is None:
                    await cursor.execute(sql.insert + "; COMMIT", (key, holder, ttl_micros))
                else:
                    await cursor.execute(sql.update + "; COMMIT", (holder, ttl_micros, key))
                await cursor.nextset()
            except BaseException:
                await rollback_quietly(conn)
                raise
        return None

    async def _trim_claims(self) -> None:
        """Delete a batch of expired claims when due (every `TRIM_INTERVAL` seconds, or at
        once while a backlog lasts). Never raises: the claim it follows was answered."""
        now = time.monotonic()
        if now < self._claim_trim_due[0]:
            return
        self._claim_trim_due[0] = now + TRIM_INTERVAL
        try:
            deleted = await execute(await self._ready(), self._claim_sql.trim)
        except Exception as exc:
            logger.warning("deleting expired claims failed: %s", exc)
            return
        if deleted >= TRIM_BATCH:
            self._claim_trim_due[0] = 0.0

    async def release_claim(self, key: str, holder: str) -> bool:
        """End the claim on `key` if `holder` holds it (one statement); whether it did."""
        check_claim_key(key)
        check_claim_holder(holder)
        deleted = await execute(
            await self._ready(), self._claim_sql.release, (_hex(key), _hex(holder))
        )
        return deleted == 1

    async def read_claim(self, key: str) -> str | None:
        """The current holder of `key`, or None (nobody, or expired)."""
        check_claim_key(key)
        rows = await fetchall(await self._ready(), self._claim_sql.read, (_hex(key),))
        return _held(rows[0]) if rows else None


__all__ = ["ClaimStatements", "MySQLClaims"]
