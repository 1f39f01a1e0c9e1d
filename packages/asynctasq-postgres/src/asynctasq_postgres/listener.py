"""One dedicated LISTEN connection per driver, waking dequeue calls that wait.

Enqueue statements send ``pg_notify(channel, '<queue>:<delay>')``; the listener routes each
notification to the `Waiter` objects interested in that queue: a ready message wakes them
at once, a delayed one moves their next wake-up earlier. When the connection drops (server
restart, ``pg_terminate_backend``, network), the listener reconnects with a capped backoff,
LISTENs again, and wakes every waiter, since notifications sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import asyncpg

from asynctasq_postgres._types import Connection

logger = logging.getLogger("asynctasq_postgres.listener")

Connector = Callable[[], Awaitable["asyncpg.Connection[asyncpg.Record]"]]


class Waiter:
    """What a waiting `dequeue` holds: set when one of its queues may have work.

    Attributes:
        queues: The queue names it waits for.
        ready: A message became ready (or the listener reconnected) since `reset`.
        due: Event-loop time of the earliest delayed message announced since `reset`.
    """

    __slots__ = ("_event", "due", "queues", "ready")

    def __init__(self, queues: Iterable[str]) -> None:
        self.queues = frozenset(queues)
        self.ready = False
        self.due: float | None = None
        self._event = asyncio.Event()

    def reset(self) -> None:
        """Forget earlier signals (call before looking at the table again)."""
        self.ready = False
        self.due = None
        self._event.clear()

    def wake(self) -> None:
        """Signal that a message may be ready now."""
        self.ready = True
        self._event.set()

    def announce(self, due: float) -> None:
        """Signal that a message becomes ready at event-loop time `due`."""
        if self.due is None or due < self.due:
            self.due = due
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a signal; True when one came."""
        if self._event.is_set():
            self._event.clear()
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Listener:
    """Keeps one LISTEN connection alive and routes notifications to waiters.

    Args:
        connect: Opens a new asyncpg connection (the driver's settings, never the pool).
        channel: The NOTIFY channel.
        keepalive: Seconds between liveness checks of an idle LISTEN connection (a dropped
            network path does not always close the socket).
        max_backoff: Longest pause between reconnection attempts.
    """

    def __init__(
        self,
        connect: Connector,
        channel: str,
        *,
        keepalive: float = 30.0,
        max_backoff: float = 2.0,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._waiters: set[Waiter] = set()
        self._task: asyncio.Task[None] | None = None
        self._connection: Connection | None = None
        self._first_attempt: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reconnects = 0
        """Connection attempts made after the first one (after losses or failures)."""

    @property
    def connected(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._connection is not None and not self._connection.is_closed()

    def subscribe(self, queues: Iterable[str]) -> Waiter:
        """Register a waiter for `queues`; pair with `unsubscribe` in a ``finally``."""
        waiter = Waiter(queues)
        self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        """Forget a waiter."""
        self._waiters.discard(waiter)

    async def start(self) -> None:
        """Start the listener task (idempotent) and wait for its first connection attempt.

        A failed first attempt is not raised: waiters fall back to polling while the task
        keeps reconnecting in the background.
        """
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._first_attempt = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"asynctasq-listen:{self._channel}")
        assert self._first_attempt is not None
        await self._first_attempt.wait()

    async def close(self) -> None:
        """Stop listening, close the connection and wake every waiter."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in list(self._waiters):
            waiter.wake()

    async def _run(self) -> None:
        backoff = 0.05
        failures = 0
        while True:
            lost = asyncio.Event()
            connection: asyncpg.Connection[asyncpg.Record] | None = None
            try:
                connection = await self._connect()
                connection.add_termination_listener(lambda _c, _lost=lost: _lost.set())
                await connection.add_listener(self._channel, self._on_notification)
                self._connection = connection
                if failures or self.reconnects:
                    logger.info("LISTEN %r re-established", self._channel)
                self._wake_all()  # whatever was sent while we were away is lost
                backoff, failures = 0.05, 0
                self._signal_first_attempt()
                await self._watch(connection, lost)
                logger.warning("LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: keep trying, waiters poll meanwhile
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                logger.log(
                    level,
                    "LISTEN connection unavailable (%s: %s); retrying",
                    type(exc).__name__,
                    exc,
                )
            finally:
                self._connection = None
                self._signal_first_attempt()
                if connection is not None:
                    await _close_quietly(connection)
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _watch(
        self, connection: asyncpg.Connection[asyncpg.Record], lost: asyncio.Event
    ) -> None:
        """Return when the connection is gone (closed by the server or failing a ping)."""
        while not connection.is_closed():
            try:
                async with asyncio.timeout(self._keepalive):
                    await lost.wait()
                return
            except TimeoutError:
                await connection.fetchval("SELECT 1", timeout=min(self._keepalive, 10.0))

    def _signal_first_attempt(self) -> None:
        if self._first_attempt is not None:
            self._first_attempt.set()

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            waiter.wake()

    def _on_notification(
        self, _connection: object, _pid: int, _channel: str, payload: object
    ) -> None:
        queue, _, delay_text = str(payload).rpartition(":")
        try:
            delay = float(delay_text)
        except ValueError:
            queue, delay = str(payload), 0.0
        due = None
        for waiter in self._waiters:
            if queue not in waiter.queues:
                continue
            if delay <= 0:
                waiter.wake()
            else:
                if due is None:
                    assert self._loop is not None
                    due = self._loop.time() + delay
                waiter.announce(due)


async def _close_quietly(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    if connection.is_closed():
        return
    try:
        await asyncio.wait_for(connection.close(), 1.0)
    except asyncio.CancelledError:
        connection.terminate()
        raise
    except Exception:
        connection.terminate()


__all__ = ["Listener", "Waiter"]
