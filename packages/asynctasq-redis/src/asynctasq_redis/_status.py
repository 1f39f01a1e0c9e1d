"""Task status records (`StatusStore`): a string key per task, indexed by state and queue.

Why this shape:

* A record is a plain string key with ``PX``, so `read_status` is one ``GET`` and Redis frees
  an expired record's memory by itself.
* There is one listing index per *kind* (state and queue), a sorted set scored by a write
  sequence: listing by both filters reads one index, by one filter merges the few indexes of
  that state or queue, and a record costs one index entry (not one per way of listing). A
  write that changes a record's kind moves it between indexes in the same Lua call.
* Every status key shares the tag ``{prefix/status}``, so one script updates the record and
  its index atomically on a cluster too. The price: on a cluster, status records live on one
  node.
* Index entries of expired records are swept by every write (more than it adds) and every
  listing, from a sorted set of expiry times, so the indexes track the live records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.drivers.base import StatusWrite
from asynctasq_redis._keys import status_tag
from asynctasq_redis.scripts import SCRIPTS

_WRITE = SCRIPTS["WRITE_STATUSES"]
_LIST = SCRIPTS["LIST_STATUSES"]

WRITES_PER_CALL = 100
"""Most writes one script call applies (bounds how long one call holds the server)."""


class StatusRecords:
    """`StatusStore` for `RedisDriver` (mixed in; uses its client and prefix)."""

    prefix: str
    _bound: Callable[[], Redis | RedisCluster]

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        """Store each record for its TTL, in order (the later of two writes for one id
        wins): one script call, so one round trip, per `WRITES_PER_CALL` writes."""
        if not writes:
            return
        client = self._bound()
        tag = (status_tag(self.prefix).encode(),)
        for start in range(0, len(writes), WRITES_PER_CALL):
            parts: list[bytes] = []
            for w in writes[start : start + WRITES_PER_CALL]:
                if ":" in w.state:  # the index names split kind into state and queue at ':'
                    raise ValueError(f"a task state cannot contain ':': {w.state!r}")
                fields = (w.task_id.encode(), w.queue.encode(), w.state.encode())
                ttl = max(round(w.ttl * 1000), 1)
                lengths = ",".join(str(len(f)) for f in fields)
                parts += (f"{lengths},{ttl},{len(w.record)};".encode(), *fields, w.record)
            # In sequence, not in parallel: a later call may rewrite an id of an earlier one.
            await _WRITE(client, tag, (b"".join(parts),))

    async def read_status(self, task_id: str) -> bytes | None:
        """The record of `task_id`, or None (never tracked, or expired)."""
        key = f"{status_tag(self.prefix)}:task:{task_id}"
        found: bytes | None = await self._bound().execute_command("GET", key)
        return found

    async def list_statuses(
        self, *, queue: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[bytes]:
        """Live records, most recently written first, filtered by queue and/or state (one
        script call; the expired ones it meets are swept)."""
        if limit <= 0:
            return []
        filters = ("" if queue is None else f"={queue}", "" if state is None else f"={state}")
        tag = (status_tag(self.prefix).encode(),)
        found: list[bytes] = await _LIST(self._bound(), tag, (limit, *filters))
        return found
