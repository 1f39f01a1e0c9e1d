"""Idle waits over several queues: one standing ``BLMOVE ready staged`` per queue.

One blocking command moves from one list only, so a consumer of several queues keeps one
BLMOVE outstanding per queue (each on its own pooled connection) and wakes when the first
returns. The others are left standing for the next idle spell instead of being cancelled:
cancelling a blocked redis-py command drops its connection, and every wake-up would then cost
reconnects.

A standing wait that moves an entry while its consumer is busy would leave it in ``staged``,
where consumers blocked on ``ready`` cannot see it: it is put back at once (the UNSTAGE
script). Nothing leaves Redis in any case, so a consumer that dies between the move and the
put-back delays the entry (until another consumer's dequeue script or its own block timeout)
but never loses it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.background import STOP_WAIT, cancel_and_wait
from asynctasq_redis._keys import KeyCache
from asynctasq_redis.scripts import SCRIPTS

_UNSTAGE = SCRIPTS["UNSTAGE"]

Client = Redis | RedisCluster


class StandingWaits:
    """The standing per-queue waits of one driver.

    Args:
        keys: Key names per queue.
        max_block: Server-side timeout of each BLMOVE (kept under the socket timeout).
    """

    def __init__(self, keys: KeyCache, max_block: float) -> None:
        self._keys = keys
        self._max_block = max_block
        self._client: Client | None = None
        self._waits: dict[str, asyncio.Task[Any]] = {}
        self._watchers: Counter[str] = Counter()  # queue -> wait() calls watching it now
        self._background: set[asyncio.Task[Any]] = set()

    async def wait(self, client: Client, queues: Sequence[str], timeout: float) -> None:
        """Return once any of `queues` had an entry moved to its ``staged`` list, or after
        `timeout` seconds. Raises the connection error of a wait that failed."""
        if client is not self._client:
            await self.close()
            self._client = client
        waits = [self._arm(client, q) for q in queues]
        self._watchers.update(queues)
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._watchers.subtract(queues)
        for w in done:
            if not w.cancelled():
                w.result()

    def _arm(self, client: Client, queue: str) -> asyncio.Task[Any]:
        wait = self._waits.get(queue)
        if wait is None:
            keys = self._keys[queue]
            wait = asyncio.ensure_future(
                client.execute_command(
                    "BLMOVE", keys.ready, keys.staged, "LEFT", "RIGHT", self._max_block
                )
            )
            self._waits[queue] = wait
            wait.add_done_callback(lambda w: self._finished(queue, w))
        return wait

    def _finished(self, queue: str, wait: asyncio.Task[Any]) -> None:
        if self._waits.get(queue) is wait:
            del self._waits[queue]
        if wait.cancelled() or wait.exception() is not None:
            return  # a watcher re-raises it; with none, the next wait() re-arms
        if wait.result() is not None and self._watchers[queue] <= 0 and self._client:
            # Moved while nobody waits on this queue: hand the entry back to ready.
            put_back = asyncio.ensure_future(_UNSTAGE(self._client, (self._keys[queue].tag,), ()))
            self._background.add(put_back)
            put_back.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the next dequeue script puts staged entries back

    async def close(self) -> None:
        """Cancel the standing waits and finish the put-backs."""
        waits = list(self._waits.values())
        pending = list(self._background)
        self._waits.clear()
        self._background.clear()
        self._client = None
        loop = asyncio.get_running_loop()
        # Tasks of an earlier event loop (a driver reused by a second asyncio.run) died with
        # it: nothing to cancel there.
        await cancel_and_wait([w for w in waits if w.get_loop() is loop])
        put_backs = [t for t in pending if t.get_loop() is loop and not t.done()]
        if put_backs:
            await asyncio.wait(put_backs, timeout=STOP_WAIT)
