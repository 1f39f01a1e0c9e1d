"""Taking messages: the dequeue script, and waiting for work without polling.

An idle consumer of one queue sends ``BLMOVE ready staged`` and the dequeue script in one
pipeline. Redis runs a connection's commands in order, so the script runs the moment the
BLMOVE returns (an enqueue pushed an entry, which Redis moved to ``staged`` for this consumer,
or the timeout at the next due time), on the server, without a client round-trip in between:
a newly enqueued message reaches a waiting consumer in the reply to the wait itself.

A consumer of several queues keeps one standing BLMOVE per queue (`_waits`) and runs the
script when the first returns.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from asynctasq.drivers.base import Delivery
from asynctasq.drivers.given_back import GivenBack
from asynctasq_redis._keys import KeyCache
from asynctasq_redis._waits import StandingWaits
from asynctasq_redis.scripts import SCRIPTS

_DEQUEUE = SCRIPTS["DEQUEUE"]
_DEAD_LETTER = SCRIPTS["DEAD_LETTER"]

MIN_BLOCK = 0.005
"""Shortest blocking wait sent to Redis: it reads a timeout under 1 ms as 'block forever'."""

Client = Redis | RedisCluster
Take = tuple[list[Delivery], int]
"""Deliveries, and ms until the next delayed message or lease is due (-1: none/unknown)."""
Unreadable = tuple[str, bytes, int, str]
"""A leased entry the client could not read: queue, raw task id, lease token, why."""


class Dequeuer:
    """Runs `RedisDriver.dequeue`.

    Args:
        keys: Key names per queue.
        move_batch: Most due/expired messages one script call moves back to ready per queue.
        max_block: Longest single blocking wait (kept under the socket timeout).
        release: Gives back deliveries whose caller was cancelled before receiving them.
    """

    def __init__(
        self,
        keys: KeyCache,
        move_batch: int,
        max_block: float,
        release: Callable[[list[Delivery]], Awaitable[None]],
    ) -> None:
        self._keys = keys
        self._move_batch = move_batch
        self._max_block = max_block
        self._given_back = GivenBack(release)
        self._standing = StandingWaits(keys, max_block)

    async def close(self) -> None:
        """Cancel the standing multi-queue waits; let takes whose caller was cancelled give
        their messages back."""
        await self._standing.close()
        await self._given_back.settle()

    async def dequeue(
        self,
        client: Client,
        queues: Sequence[str],
        limit: int,
        wait: float,
        acks: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """Take up to `limit` messages; wait up to `wait` seconds for some. `acks` (of
        `queues`, on a standalone server) are acknowledged by the same script call."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        # A caller cancelled while the script runs (or right after the wait returned)
        # would leave the taken messages leased to nobody until their visibility timeout.
        take = self._take(client, queues, limit, acks)
        deliveries, hint_ms = await self._given_back.run(take)
        if deliveries or wait <= 0:
            return deliveries
        deadline = time.monotonic() + wait
        while True:
            block = min(deadline - time.monotonic(), self._max_block)
            if block <= 0:
                return deliveries
            if hint_ms >= 0:
                block = min(block, hint_ms / 1000)
            block = round(max(block, MIN_BLOCK), 3)
            # Not shielded (a shield costs two loop iterations on the latency path): a caller
            # cancelled during the wait drops the connection, and Redis then never runs the
            # script queued behind the BLMOVE (an entry it moved stays in staged, where the
            # next dequeue script finds it). Only a cancel landing in the microseconds
            # between the wake-up and the reply leaves messages to their lease expiry.
            deliveries, hint_ms = await self._wait_and_take(client, queues, limit, block)
            if deliveries:
                return deliveries

    # -- taking ------------------------------------------------------------------------
    def _call(
        self, queues: Sequence[str], limit: int, acks: Sequence[Delivery] = ()
    ) -> tuple[list[bytes], list[Any]]:
        args: list[Any] = [limit, self._move_batch]
        if acks:
            index = {q: b"%d" % i for i, q in reversed(list(enumerate(queues, 1)))}
            args.append(b"".join(_packed(index[d.queue], d) for d in acks))
        return [self._keys[q].tag for q in queues], args

    async def _take(
        self, client: Client, queues: Sequence[str], limit: int, acks: Sequence[Delivery] = ()
    ) -> Take:
        """One dequeue script call (one per queue on a cluster, until `limit` is met)."""
        if len(queues) == 1 or not isinstance(client, RedisCluster):
            reply = await _DEQUEUE(client, *self._call(queues, limit, acks))
            return await self._read(client, reply, queues)
        if acks:  # `RedisDriver.ack_and_dequeue` acknowledges apart on a cluster
            raise ValueError("acks cannot ride with a multi-queue take on a cluster")
        out: list[Delivery] = []
        hints: list[int] = []
        for queue in queues:
            reply = await _DEQUEUE(client, *self._call((queue,), limit - len(out)))
            got, hint = await self._read(client, reply, (queue,))
            out += got
            if len(out) >= limit:
                return out, -1
            if hint >= 0:
                hints.append(hint)
        return out, (min(hints) if hints and not out else -1)

    async def _wait_and_take(
        self, client: Client, queues: Sequence[str], limit: int, block: float
    ) -> Take:
        """Block up to `block` seconds for an entry, then take: one round-trip for one queue."""
        if len(queues) > 1:
            await self._standing.wait(client, queues, block)
            return await self._take(client, queues, limit)
        keys = self._keys[queues[0]]
        # redis-py types BLMOVE's timeout as int; Redis takes seconds with decimals
        wait = ("BLMOVE", keys.ready, keys.staged, "LEFT", "RIGHT", block)
        take = ("EVALSHA", _DEQUEUE.sha, 1, keys.tag, limit, self._move_batch)
        if isinstance(client, RedisCluster):
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(*wait)
            pipe.execute_command(*take)
            reply = (await pipe.execute(raise_on_error=False))[1]
        else:
            reply = await _wait_then(client, wait, take)
        if isinstance(reply, NoScriptError):  # the server lost its scripts: load, take
            return await self._take(client, queues, limit)
        if isinstance(reply, Exception):
            raise reply
        return await self._read(client, reply, queues)

    async def _read(self, client: Client, reply: list[Any], queues: Sequence[str]) -> Take:
        """The deliveries of a dequeue reply; an entry that cannot be read is dead-lettered
        by its lease, so it neither costs the others of its batch nor comes back."""
        deliveries, hint, unreadable = _parse(reply, queues)
        for queue, task_id, token, why in unreadable:
            message = f"the queue entry of this task cannot be read ({why})"
            args = (task_id, token, "asynctasq.errors.MalformedMessageError", message, "")
            # Best effort: a failed call leaves the entry to its lease expiry (it is then
            # handed out, and dead-lettered, again), and the batch still reaches the caller.
            with contextlib.suppress(RedisError):
                await _DEAD_LETTER(client, (self._keys[queue].tag,), args)
        return deliveries, hint


async def _wait_then(client: Redis, wait: tuple[Any, ...], take: tuple[Any, ...]) -> Any:
    """Send the wait and the take in one write; return the take's reply (or error reply).

    What a two-command redis-py pipeline does, without its per-command bookkeeping, which
    is measurable on the dispatch-to-start path this serves. A broken connection is retried
    as redis-py retries any command (the pool's `Retry`); that is safe here because an entry
    a lost reply left in ``staged`` is taken by the next dequeue script.
    """
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    async def attempt() -> Any:
        await conn.send_packed_command(conn.pack_commands([wait, take]))
        with contextlib.suppress(ResponseError):  # still in step: the take's reply follows
            await conn.read_response()
        try:
            return await conn.read_response()
        except ResponseError as exc:
            return exc

    async def broken(_: Exception) -> None:
        await conn.disconnect()

    try:
        return await conn.retry.call_with_retry(attempt, broken)
    finally:
        # read_response disconnects a connection whose read broke or was cancelled, so
        # nothing half-read goes back to the pool
        await pool.release(conn)


def _packed(queue_index: bytes, delivery: Delivery) -> bytes:
    """One ack as the dequeue script reads it: ``<queue index>\\n<task id>\\n<token>\\n``
    (the token is an integer, or ``<n>/<p>`` bytes for a priority)."""
    token = delivery.receipt
    raw = token if isinstance(token, bytes) else b"%d" % token
    return b"%s\n%s\n%s\n" % (queue_index, delivery.task_id.encode(), raw)


def _parse(reply: list[Any], queues: Sequence[str]) -> tuple[list[Delivery], int, list[Unreadable]]:
    """Deliveries from the dequeue script's flat reply (see `scripts.DEQUEUE`), and the
    entries among them that cannot be read. The script leases only entries this reads, but
    each is read on its own: one that still fails must not cost the rest of the batch."""
    out = []
    unreadable: list[Unreadable] = []
    for i in range(1, len(reply), 3):
        queue, entry, token = queues[reply[i] - 1], reply[i + 1], reply[i + 2]
        try:
            task_id, visibility_ms, attempts, payload = entry.split(b"\n", 3)
            out.append(
                Delivery(
                    task_id=task_id.decode(),
                    queue=queue,
                    payload=payload,
                    attempts=int(attempts),
                    receipt=token,
                    visibility_timeout=int(visibility_ms) / 1000,
                )
            )
        except ValueError as exc:  # UnicodeDecodeError is one too
            unreadable.append((queue, entry.split(b"\n", 1)[0], token, f"{exc!s:.200}"))
    return out, reply[0], unreadable
