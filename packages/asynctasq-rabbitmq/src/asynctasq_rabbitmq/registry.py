"""The names of the work queues, kept on the broker itself.

AMQP cannot list queues (only the optional management plugin can, over HTTP), yet
`queue_names` and the dead-letter operations without a queue filter need them. The registry is
a durable classic queue holding one message per work queue name. A process registers each work
queue it declares once per lifetime: it scans the registry and publishes the name only when it
is missing. Two processes registering the same new name at once may both publish it; reading
removes such duplicates.

Anyone who can publish to the broker can add entries, as many as they like: a read takes the
first `MAX_ENTRIES` only (oldest first, so the names this driver registered early are among
them), and says so in the log when there were more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiormq.abc import AbstractConnection
from pamqp.commands import Basic

from asynctasq_rabbitmq.messages import PERSISTENT
from asynctasq_rabbitmq.scan import scan

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
"""Entries one read of the registry takes at most: far more queues than a deployment has, and
a bound on what a flood of entries costs every process that reads it."""


class QueueRegistry:
    """Work queue names of one driver namespace (exchange + prefix).

    Args:
        name: Broker name of the registry queue.
        connection: Returns the current (underlying) AMQP connection.
        usable: Whether a name read back is one this driver could have registered. Anyone
            who can publish to the broker can add entries: those that are not (not UTF-8,
            not a valid queue name, too long for the broker) are left out, never passed on.
    """

    def __init__(
        self,
        name: str,
        connection: Callable[[], Awaitable[AbstractConnection]],
        usable: Callable[[str], bool],
    ) -> None:
        self.name = name
        self._connection = connection
        self._usable = usable
        self._registered: set[str] = set()
        self._lock = asyncio.Lock()

    async def _declare(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.queue_declare(self.name, durable=True)
        finally:
            await channel.close()

    async def names(self) -> list[str]:
        """Every registered name, sorted; duplicates found on the way are removed."""
        connection = await self._connection()
        seen: set[str] = set()
        limit = MAX_ENTRIES
        async with scan(connection, self.name, limit=limit + 1) as held:
            if len(held.messages) > limit:
                log.warning(
                    "the queue registry %s holds more than %d entries: only the first %d "
                    "are read (anyone who can publish to the broker can add entries)",
                    self.name,
                    limit,
                    limit,
                )
            for message in held.messages[:limit]:
                try:
                    name = message.body.decode()
                except UnicodeDecodeError:
                    continue
                if name in seen:
                    await held.ack(message)
                elif self._usable(name):
                    seen.add(name)
        return sorted(seen)

    async def register(self, queue: str) -> None:
        """Make sure `queue` is registered (a scan the first time per process, then free)."""
        if queue in self._registered:
            return
        async with self._lock:
            if queue in self._registered:
                return
            connection = await self._connection()
            await self._declare(connection)
            if queue not in await self.names():
                channel = await connection.channel(publisher_confirms=True)
                try:
                    await channel.basic_publish(
                        queue.encode(),
                        routing_key=self.name,
                        properties=Basic.Properties(delivery_mode=PERSISTENT),
                    )
                finally:
                    await channel.close()
            self._registered.add(queue)

    def forget(self) -> None:
        """Forget what this process registered (after the registry was deleted)."""
        self._registered.clear()


__all__ = ["QueueRegistry"]
