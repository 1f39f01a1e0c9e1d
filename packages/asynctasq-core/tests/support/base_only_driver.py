"""A driver with the base contract only (no optional capabilities), like SQS or RabbitMQ:
for the tests that check what is refused on such a driver. It forwards to an in-memory one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asynctasq.drivers.base import DeadLetter, Delivery, Failure, OutgoingMessage, QueueStats
from asynctasq.testing import MemoryDriver


class PlainDriver:
    """The base contract only (no claims), like SQS or RabbitMQ."""

    def __init__(self, inner: MemoryDriver) -> None:
        self.inner = inner

    async def connect(self) -> None: ...
    async def close(self) -> None: ...

    async def enqueue(self, message: OutgoingMessage) -> None:
        await self.inner.enqueue(message)

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        await self.inner.enqueue_many(messages)

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        return await self.inner.dequeue(queues, limit=limit, wait=wait)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        await self.inner.ack(deliveries)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        await self.inner.release(deliveries)

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        await self.inner.retry(delivery, delay=delay)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        await self.inner.dead_letter(delivery, failure)

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        await self.inner.extend(deliveries, visibility_timeout)

    async def queue_names(self) -> list[str]:
        return []

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        return []

    async def list_dead_letters(self, **kwargs: Any) -> list[DeadLetter]:
        return []

    async def retry_dead_letters(self, **kwargs: Any) -> int:
        return 0

    async def purge_dead_letters(self, **kwargs: Any) -> int:
        return 0

    async def purge(self, queue: str) -> int:
        return 0
