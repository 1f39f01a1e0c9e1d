"""`RedisDriver`: the AsyncTasQ driver contract on Redis (standalone or Redis Cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from asynctasq.drivers.base import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
)
from asynctasq.redaction import redact_url
from asynctasq_redis import _dead_letters
from asynctasq_redis._claims import Claims
from asynctasq_redis._connection import ConnectionSettings, build_client
from asynctasq_redis._dequeue import MIN_BLOCK, Dequeuer
from asynctasq_redis._keys import KeyCache, result_key
from asynctasq_redis._logs import EventLogs
from asynctasq_redis._status import StatusRecords
from asynctasq_redis._workers import WorkerRecords
from asynctasq_redis.scripts import SCRIPTS, LuaScript

_SCHEDULE = SCRIPTS["SCHEDULE"]
_ENQUEUE_RANKED = SCRIPTS["ENQUEUE_RANKED"]
_ACK = SCRIPTS["ACK"]
_RELEASE = SCRIPTS["RELEASE"]
_RETRY = SCRIPTS["RETRY"]
_DEAD_LETTER = SCRIPTS["DEAD_LETTER"]
_EXTEND = SCRIPTS["EXTEND"]
_STATS = SCRIPTS["STATS"]
_PURGE = SCRIPTS["PURGE"]
_KEEP_RESULT = SCRIPTS["KEEP_RESULT"]

Call = tuple[LuaScript, Sequence[bytes], Sequence[Any]]


_running_loop = asyncio.get_running_loop


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _entry(message: OutgoingMessage) -> bytes:
    """``<task id>\\n<visibility ms>\\n<deliveries>\\n<payload>``: a message as the scripts
    store it (see `scripts`)."""
    task_id = message.task_id
    if "\n" in task_id:
        raise ValueError(f"a task id cannot contain a newline: {task_id!r}")
    head = f"{task_id}\n{round(message.visibility_timeout * 1000)}\n0\n".encode()
    return head + message.payload


def _priority(message: OutgoingMessage) -> int:
    """The message's priority, checked: it names a key (``ready:<p>``)."""
    priority = message.priority
    if type(priority) is not int or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, "
            f"got {priority!r} (task {message.task_id})"
        )
    return priority


def _delayed_member(message: OutgoingMessage, priority: int) -> bytes:
    """A delayed message as ``delayed`` keeps it: the entry, after ``\\n<p>\\n`` when it
    has a priority (see `scripts`)."""
    entry = _entry(message)
    return b"\n%d\n" % priority + entry if priority else entry


class RedisDriver(StatusRecords, EventLogs, WorkerRecords, Claims):
    """Queues in Redis with leases, atomic Lua state changes and blocking waits.

    Settings are the keyword arguments; nothing connects until the first operation (or
    `connect()`), so a driver may be created at import time.

    Besides the driver contract it keeps results (`ResultStore`), task status records
    (`StatusStore`), logs on Redis Streams (`EventLog`, waiting readers are pushed to),
    worker records (`WorkerRegistry`) and named claims with a ttl (`ClaimStore`).

    Args:
        url: ``redis://[[user]:[password]@]host:port[/db]``, ``rediss://`` for TLS,
            ``unix:///path.sock``, or ``redis+cluster://host:port`` (``rediss+cluster://``)
            for Redis Cluster (any node; the others are discovered). Options in the URL win
            over the keyword arguments below.
        password: Password, unless the URL has one.
        db: Database number, unless the URL names one (standalone only; a cluster has db 0).
        max_connections: Pool size (per cluster node). Callers wait up to `pool_timeout`
            for a free connection instead of failing.
        prefix: Namespace of every key; two prefixes on one server never see each other.
        cluster: Use Redis Cluster (same as a ``redis+cluster://`` URL).
        username: ACL user name, unless the URL has one.
        socket_timeout: Seconds to wait for a reply before the connection counts as dead.
            Blocking waits are split into chunks shorter than this.
        socket_connect_timeout: Seconds to wait for a new connection.
        health_check_interval: A connection idle this long is PINGed before use, so a
            connection broken while idle (server restart) is replaced instead of failing.
        retry_attempts: Quick redis-py retries of a command that hit a broken connection;
            after those the command raises `redis.exceptions.ConnectionError`. A command
            that times out (`socket_timeout`) is not retried: it raises at once.
        pool_timeout: Seconds to wait for a free pooled connection (None: forever).
        client_name: ``CLIENT SETNAME`` for each connection.
        ssl: Use TLS (same as a ``rediss://`` URL).
        ssl_ca_certs: CA bundle file to verify the server with.
        ssl_ca_path: Directory of CA certificates.
        ssl_certfile: Client certificate file (mutual TLS).
        ssl_keyfile: Client private key file.
        ssl_password: Password of the client key.
        ssl_cert_reqs: ``"required"``, ``"optional"`` or ``"none"``.
        ssl_check_hostname: Check the server certificate's host name.
        move_batch: Most due delayed messages and expired leases one dequeue moves back to
            ready per queue (bounds the time one script call takes).
        enqueue_batch: Most messages per enqueue script call in `enqueue_many`.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379",
        password: str | None = None,
        db: int = 0,
        max_connections: int = 100,
        prefix: str = "asynctasq",
        *,
        cluster: bool = False,
        username: str | None = None,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float | None = 5.0,
        health_check_interval: float = 30.0,
        retry_attempts: int = 3,
        pool_timeout: float | None = 20.0,
        client_name: str | None = None,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        ssl_ca_path: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_password: str | None = None,
        ssl_cert_reqs: str = "required",
        ssl_check_hostname: bool = True,
        move_batch: int = 1000,
        enqueue_batch: int = 1000,
    ) -> None:
        self.settings = ConnectionSettings(
            url=url,
            password=password,
            username=username,
            db=db,
            max_connections=max_connections,
            cluster=cluster,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            health_check_interval=health_check_interval,
            retry_attempts=retry_attempts,
            pool_timeout=pool_timeout,
            client_name=client_name,
            ssl=ssl,
            ssl_ca_certs=ssl_ca_certs,
            ssl_ca_path=ssl_ca_path,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            ssl_password=ssl_password,
            ssl_cert_reqs=ssl_cert_reqs,
            ssl_check_hostname=ssl_check_hostname,
        )
        self.cluster = self.settings.resolved()[1]  # fails early on a malformed URL
        self.prefix = prefix
        self.move_batch = move_batch
        self.enqueue_batch = enqueue_batch
        self._keys = KeyCache(prefix)
        self._client: Redis | RedisCluster | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop _client belongs to
        self._registered: set[str] = set()
        # Blocking waits stay shorter than the socket timeout, or redis-py would call a
        # quiet connection dead.
        self._max_block = max(socket_timeout - 1.0, 0.5) if socket_timeout else 30.0
        self._dequeuer = Dequeuer(self._keys, move_batch, self._max_block, self.release)

    def __repr__(self) -> str:
        kind = "cluster" if self.cluster else "standalone"
        url = redact_url(self.settings.url)
        return f"RedisDriver({url!r}, prefix={self.prefix!r}, {kind})"

    # -- connection --------------------------------------------------------------------
    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client of the running event loop (connections open lazily).

        redis-py connections belong to one event loop. A driver used from a new loop (a
        second ``asyncio.run`` with a driver made at import time) gets a new client; the old
        one is dropped without I/O, since its loop is usually closed by then.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop
        if self._client is None or loop is not self._loop:
            self._client = build_client(self.settings)
            self._loop = loop
            self._registered.clear()
        return self._client

    def _bound(self) -> Redis | RedisCluster:
        """`client`, fast when it already belongs to the running loop (the hot paths)."""
        client = self._client
        if client is None or self._loop is not _running_loop():
            return self.client
        return client

    async def connect(self) -> None:
        """Check the server answers and is new enough, and load the scripts (idempotent).

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
            RuntimeError: The server is older than Redis 6.2 (LPOP with a count).
        """
        client = self.client
        if isinstance(client, RedisCluster):
            await client.ping()
        else:
            try:
                info = await client.info("server")
            except ResponseError:  # INFO disabled (ACL, renamed command): no version check
                info = {"redis_version": "6.2"}
            version = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".")[:2])
            if version < (6, 2):
                raise RuntimeError(f"asynctasq-redis needs Redis 6.2 or newer, got {version}")
        for script in SCRIPTS.values():
            await client.script_load(script.source)

    async def close(self) -> None:
        """Close every connection; leased messages stay leased until their lease expires."""
        await self._dequeuer.close()
        await self._close_log_reads()
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        self._registered.clear()
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    async def _run_many(self, client: Redis | RedisCluster, calls: Sequence[Call]) -> list[Any]:
        """Run several script calls: one pipelined round-trip standalone, in parallel on a
        cluster (the calls usually target different slots)."""
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await script(client, keys, args)]
        if isinstance(client, RedisCluster):
            return list(await asyncio.gather(*(s(client, k, a) for s, k, a in calls)))
        results = await _pipelined(client, calls)
        lost = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if lost:
            # The server lost its scripts (restart, SCRIPT FLUSH): load them and run again
            # only the calls that failed for it, so nothing is applied twice.
            for script in {calls[i][0].sha: calls[i][0] for i in lost}.values():
                await client.script_load(script.source)
            again = await _pipelined(client, [calls[i] for i in lost])
            for i, r in zip(lost, again, strict=True):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    # -- enqueue -----------------------------------------------------------------------
    async def _register(self, client: Redis | RedisCluster, queues: Iterable[str]) -> None:
        new = [q for q in queues if q not in self._registered]
        if new:
            await client.sadd(self._keys.registry, *new)
            self._registered.update(new)

    async def enqueue(self, message: OutgoingMessage) -> None:
        """Store one message, ready after `message.delay` seconds (one round-trip: a plain
        RPUSH when it is ready now)."""
        client = self._bound()
        queue = message.queue
        if queue not in self._registered:
            await self._register(client, (queue,))
        keys = self._keys[queue]
        priority = message.priority and _priority(message)
        if message.delay > 0:
            member = _delayed_member(message, priority)
            await _SCHEDULE(client, (keys.tag,), (_ms(message.delay), member))
        elif priority:
            await _ENQUEUE_RANKED(client, (keys.tag,), (priority, _entry(message)))
        else:
            await client.execute_command("RPUSH", keys.ready, _entry(message))

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages: one RPUSH per queue (and per `enqueue_batch` messages)
        for those ready now, one script call per queue for delayed ones and for ones with a
        priority; pipelined into one round-trip on a standalone server."""
        if not messages:
            return
        client = self._bound()
        now: dict[str, list[bytes]] = {}
        later: dict[str, list[Any]] = {}
        ranked: dict[str, list[Any]] = {}
        for m in messages:
            priority = m.priority and _priority(m)
            if m.delay > 0:
                later.setdefault(m.queue, []).extend((_ms(m.delay), _delayed_member(m, priority)))
            elif priority:
                ranked.setdefault(m.queue, []).extend((priority, _entry(m)))
            else:
                now.setdefault(m.queue, []).append(_entry(m))
        await self._register(client, {*now, *later, *ranked})
        step = self.enqueue_batch
        pushes = [
            (self._keys[q].ready, entries[i : i + step])
            for q, entries in now.items()
            for i in range(0, len(entries), step)
        ]
        calls: list[Call] = [
            (_SCHEDULE, (self._keys[q].tag,), args[i : i + 2 * step])
            for q, args in later.items()
            for i in range(0, len(args), 2 * step)
        ]
        calls += [
            (_ENQUEUE_RANKED, (self._keys[q].tag,), args[i : i + 2 * step])
            for q, args in ranked.items()
            for i in range(0, len(args), 2 * step)
        ]
        steps: list[Awaitable[Any]] = [_push(client, pushes)] if pushes else []
        if calls:  # delayed ones, concurrently (another connection)
            steps.append(self._run_many(client, calls))
        await asyncio.gather(*steps)

    # -- dequeue -----------------------------------------------------------------------
    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Lease up to `limit` ready messages, serving `queues` in order (one script call).

        Due delayed messages and expired leases are moved back to ready by the same script.
        When nothing is ready, wait on the queues' wake-up lists (no polling) until a message
        is enqueued, the next delayed message is due or a lease expires, or `wait` runs out.
        """
        return await self._dequeuer.dequeue(self._bound(), queues, limit, wait)

    async def ack_and_dequeue(
        self, acks: Sequence[Delivery], queues: Sequence[str], *, limit: int, wait: float
    ) -> list[Delivery]:
        """`ack` `acks` and `dequeue` in one script call, so a worker settles a finished
        batch and takes the next in one round-trip. Apart on a cluster, or for acks of a
        queue not served here."""
        client = self._bound()
        if acks and (isinstance(client, RedisCluster) or any(d.queue not in queues for d in acks)):
            await self.ack(acks)
            acks = ()
        return await self._dequeuer.dequeue(client, queues, limit, wait, acks)

    # -- settle ------------------------------------------------------------------------
    def _settle_calls(
        self, script: LuaScript, deliveries: Sequence[Delivery], *, extra: Sequence[Any] = ()
    ) -> list[Call]:
        by_queue: dict[str, list[Any]] = {}
        for d in deliveries:
            args = by_queue.get(d.queue)
            if args is None:
                args = by_queue[d.queue] = []
            args += (d.task_id, d.receipt)
        return [(script, (self._keys[q].tag,), (*extra, *args)) for q, args in by_queue.items()]

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages for good (one script call per queue).

        A delivery whose lease is no longer held (expired and handed out again) is ignored.
        """
        if deliveries:
            client = self._bound()
            await self._run_many(client, self._settle_calls(_ACK, deliveries))

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give leased messages back to the front of their queues, uncounted."""
        if deliveries:
            client = self._bound()
            await self._run_many(client, self._settle_calls(_RELEASE, deliveries))

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Push each held lease's expiry to `visibility_timeout` seconds from now."""
        if deliveries:
            client = self._bound()
            calls = self._settle_calls(_EXTEND, deliveries, extra=(_ms(visibility_timeout),))
            await self._run_many(client, calls)

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """End the lease and make the message ready after `delay` seconds, in one step."""
        await _RETRY(
            self._bound(),
            (self._keys[delivery.queue].tag,),
            (delivery.task_id, delivery.receipt, _ms(delay)),
        )

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """End the lease and keep the message, its error and attempt count as a dead letter."""
        await _DEAD_LETTER(
            self._bound(),
            (self._keys[delivery.queue].tag,),
            (
                delivery.task_id,
                delivery.receipt,
                failure.exception_type,
                failure.message,
                failure.traceback,
            ),
        )

    # -- inspection --------------------------------------------------------------------
    async def queue_names(self) -> list[str]:
        """Every queue enqueued to under this prefix."""
        names: set[bytes] = await self.client.smembers(self._keys.registry)  # type: ignore[assignment]  # decode_responses=False: members are bytes
        # The driver registers only UTF-8 names; one written behind its back shows with
        # replacement characters rather than failing every caller of the listing.
        return sorted({n.decode(errors="replace") for n in names})

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Exact counts per queue; due delayed messages and expired leases count as ready."""
        calls: list[Call] = [(_STATS, (self._keys[q].tag,), ()) for q in queues]
        replies = await self._run_many(self.client, calls) if calls else []
        return [
            QueueStats(queue, ready=r[0], delayed=r[1], in_flight=r[2], dead=r[3])
            for queue, r in zip(queues, replies, strict=True)
        ]

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of `queue` (leased ones stay)."""
        deleted: int = await _PURGE(self.client, (self._keys[queue].tag,), ())
        return deleted

    # -- results -----------------------------------------------------------------------
    async def store_result(self, task_id: str, result: bytes, ttl: float) -> None:
        """Keep a task's outcome for `ttl` seconds; waiting readers get it at once."""
        key = result_key(self.prefix, task_id).encode()
        await _KEEP_RESULT(self._bound(), (key,), (result, max(_ms(ttl), 1)))

    async def fetch_result(self, task_id: str, wait: float) -> bytes | None:
        """A task's kept outcome, blocking (not polling) up to `wait` seconds for it."""
        client, key = self._bound(), result_key(self.prefix, task_id)
        if wait <= 0:
            found: bytes | None = await client.execute_command("LINDEX", key, 0)
            return found
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            left = deadline - asyncio.get_running_loop().time()
            block = round(max(min(left, self._max_block), MIN_BLOCK), 3)
            found = await client.execute_command("BLMOVE", key, key, "RIGHT", "LEFT", block)
            if found is not None or left <= block:
                return found

    async def _dead_letter_queues(self, queue: str | None) -> list[str]:
        """`queue`, or every known queue holding dead letters. Found with one EXISTS per
        name, pipelined, so a registry of many names (anyone who can write to Redis can add
        them) costs one round-trip of cheap commands, not a script call per name."""
        if queue is not None:
            return [queue]
        names = await self.queue_names()
        client = self.client
        found: list[str] = []
        for start in range(0, len(names), _EXISTS_BATCH):
            batch = names[start : start + _EXISTS_BATCH]
            pipe = client.pipeline(transaction=False)  # a cluster's splits it by node
            for q in batch:
                pipe.exists(self._keys[q].dead)
            held = await pipe.execute()
            found += [q for q, n in zip(batch, held, strict=True) if n]
        return found

    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        queues = await self._dead_letter_queues(queue)
        return await _dead_letters.list_(self.client, self._keys, queues, task_ids, limit)

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Put dead letters back, ready now, with a fresh attempt count. Returns how many."""
        queues = await self._dead_letter_queues(queue)
        return await _dead_letters.retry(self.client, self._keys, queues, task_ids, self.move_batch)

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters. Returns how many."""
        queues = await self._dead_letter_queues(queue)
        return await _dead_letters.purge(self.client, self._keys, queues, task_ids, self.move_batch)


_EXISTS_BATCH = 10_000
"""Queue names looked up per pipelined round-trip when finding those with dead letters."""


async def _push(client: Redis | RedisCluster, pushes: Sequence[tuple[str, list[bytes]]]) -> None:
    """RPUSH each batch of entries to its ready list: one pipelined round-trip standalone,
    in parallel on a cluster (the queues' keys are usually on different nodes)."""
    if len(pushes) == 1 or isinstance(client, RedisCluster):
        await asyncio.gather(*(client.execute_command("RPUSH", k, *e) for k, e in pushes))
        return
    pipe = client.pipeline(transaction=False)
    for key, entries in pushes:
        pipe.execute_command("RPUSH", key, *entries)
    await pipe.execute()


async def _pipelined(client: Redis, calls: Sequence[Call]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    return list(await pipe.execute(raise_on_error=False))
