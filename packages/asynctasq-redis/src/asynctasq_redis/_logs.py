"""Append-only logs (`EventLog`) on Redis Streams: one stream per log, cursor = entry id.

Why this shape:

* An entry is ``XADD``-ed with its own expiry (field ``x``) next to its bytes (``d``); readers
  pass over expired entries, so retention holds per entry even when one log mixes
  retentions. Appending trims the stream (``XTRIM MINID ~``) of entries older than the
  longest retention a live entry may have, so the stream stays bounded without cutting any
  entry short.
* A read is one script call (``XRANGE`` after the cursor; expired entries, and entries over
  the reader's `max_entry`, are passed over on the server). A reader that found nothing
  blocks in ``XREAD BLOCK`` at its cursor: Redis answers the moment an entry is appended (no
  polling), and the reader runs the script again. That wake-up carries the new entry itself
  (Redis has no read without the data), so a forged huge entry reaches a waiting reader's
  process once, alone (``COUNT 1``), not a page of them.
* A blocked ``XREAD`` holds a pooled connection, so readers waiting on the same log at the
  same cursor share one (`SharedReads`): a process with many subscribers at the tail of a
  log holds one connection for them, not one each. A shared read is left standing when its
  readers stop waiting (their `wait` ran out, or they were cancelled) and serves the next
  call at that cursor: cancelling a blocked redis-py command drops its connection, so
  nothing half-read returns to the pool, but every such cancel would cost a reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.background import cancel_and_wait
from asynctasq_redis._keys import log_tag
from asynctasq_redis.scripts import SCRIPTS

_APPEND = SCRIPTS["APPEND_LOG"]
_READ = SCRIPTS["READ_LOG"]

START = "0-0"
"""The cursor before every entry (a stream id, so it can be stored and compared)."""

Client = Redis | RedisCluster


class SharedReads:
    """The blocking ``XREAD`` calls of one driver, one per (stream, cursor) at a time.

    A read only wakes its readers: each then reads with the script, which filters expired
    entries on the server clock and applies its own limit. So a read asks for one entry.

    Args:
        max_block: Server-side timeout of each read (kept under the socket timeout).
    """

    def __init__(self, max_block: float) -> None:
        self._block_ms = max(round(max_block * 1000), 1)  # BLOCK 0 would mean forever
        self._client: Client | None = None
        self._reads: dict[tuple[str, str], asyncio.Task[Any]] = {}

    async def wait(self, client: Client, stream: str, cursor: str, timeout: float) -> bool:
        """Wait for an entry after `cursor`, up to `timeout` seconds. True when one came,
        or the read's block ran out first (look again); False when `timeout` ran out, or
        `close` cancelled the read. Raises the error of a read that failed."""
        if client is not self._client:
            await self.close()
            self._client = client
        key = (stream, cursor)
        read = self._reads.get(key)
        if read is None:
            read = asyncio.ensure_future(
                client.execute_command(
                    "XREAD", "COUNT", 1, "BLOCK", self._block_ms, "STREAMS", stream, cursor
                )
            )
            self._reads[key] = read
            read.add_done_callback(lambda r: self._finished(key, r))
        # asyncio.wait leaves the read running when this caller times out or is cancelled.
        done, _ = await asyncio.wait((read,), timeout=timeout)
        if not done or read.cancelled():
            return False
        read.result()
        return True

    def _finished(self, key: tuple[str, str], read: asyncio.Task[Any]) -> None:
        if self._reads.get(key) is read:
            del self._reads[key]
        if not read.cancelled():
            read.exception()  # retrieved: the readers waiting on it raise it

    async def close(self) -> None:
        """Cancel the standing reads (their connections are dropped, not reused)."""
        reads = list(self._reads.values())
        self._reads.clear()
        self._client = None
        loop = asyncio.get_running_loop()
        # Reads of an earlier event loop died with it: nothing to cancel there.
        await cancel_and_wait([r for r in reads if r.get_loop() is loop])


class EventLogs:
    """`EventLog` for `RedisDriver` (mixed in; uses its client, prefix and block length)."""

    prefix: str
    _max_block: float
    _bound: Callable[[], Client]
    _shared_reads: SharedReads | None = None

    async def append_log(self, log: str, entries: Sequence[bytes], retention: float) -> None:
        """Append `entries` in order, each kept `retention` seconds (one script call)."""
        if entries:
            tag = (log_tag(self.prefix, log).encode(),)
            await _APPEND(self._bound(), tag, (max(round(retention * 1000), 1), *entries))

    async def read_log(
        self,
        log: str,
        cursor: str | None,
        *,
        wait: float,
        limit: int = 1000,
        max_entry: int | None = None,
    ) -> tuple[list[bytes], str]:
        """Live entries after `cursor` (from the oldest kept when None), oldest first, at
        most `limit` (those over `max_entry` bytes passed over on the server); when there are
        none, block up to `wait` seconds for new ones."""
        client, tag = self._bound(), log_tag(self.prefix, log)
        after = cursor or START
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            args = (after, limit, max_entry if max_entry is not None else -1)
            reply: list[bytes] = await _READ(client, (tag.encode(),), args)
            after, found = reply[0].decode(), reply[1:]
            if found or wait <= 0 or limit < 1:
                return found, after
            left = deadline - asyncio.get_running_loop().time()
            reads = self._shared_reads
            if reads is None:
                reads = self._shared_reads = SharedReads(self._max_block)
            if left <= 0 or not await reads.wait(client, f"{tag}:entries", after, left):
                return [], after

    async def log_tail(self, log: str) -> str:
        """The id of the last entry of `log` (``0-0`` when it has none): reading from it
        returns only entries appended later."""
        stream = f"{log_tag(self.prefix, log)}:entries"
        last: list[tuple[bytes, Any]] = await self._bound().execute_command(
            "XREVRANGE", stream, "+", "-", "COUNT", 1
        )
        return last[0][0].decode() if last else START

    async def _close_log_reads(self) -> None:
        if self._shared_reads is not None:
            await self._shared_reads.close()
