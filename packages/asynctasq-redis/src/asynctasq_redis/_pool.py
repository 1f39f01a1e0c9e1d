"""A connection pool that waits for a free connection instead of failing, cheaply."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import MaxConnectionsError


class WaitingConnectionPool(ConnectionPool):
    """redis-py's `ConnectionPool`, except that a caller finding all `max_connections` in
    use waits (up to `timeout` seconds) for one to be released instead of failing.

    redis-py's `BlockingConnectionPool` behaves alike but takes a condition and arms a
    timer for every command; here the uncontended path is exactly the plain pool's, and
    only a caller that finds the pool exhausted pays for waiting.

    Args:
        timeout: Seconds to wait for a free connection (None: no limit).
        **kwargs: As for `ConnectionPool` (``max_connections``, connection settings).
    """

    def __init__(self, *, timeout: float | None = 20.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(
        self, command_name: Any = None, *keys: Any, **options: Any
    ) -> AbstractConnection:
        """A connected connection; waits while all `max_connections` are in use."""
        deadline: float | None = None
        while True:
            try:
                connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                return connection
            except MaxConnectionsError:
                loop = asyncio.get_running_loop()
                if deadline is None:
                    deadline = loop.time() + (self.timeout if self.timeout is not None else 1e9)
                await self._wait(loop, deadline)

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, max(deadline - loop.time(), 0.0))
        except TimeoutError:
            raise MaxConnectionsError(
                f"no free Redis connection within {self.timeout} s "
                f"(all {self.max_connections} in use; raise max_connections?)"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # we were handed a free connection: pass it on
            raise
        finally:
            if not waiter.done():
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def release(self, connection: AbstractConnection) -> None:
        """Return `connection` and wake one waiting caller."""
        await super().release(connection)
        if self._waiters:
            self._wake_one()
