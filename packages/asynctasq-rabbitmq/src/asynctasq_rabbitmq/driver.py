"""`RabbitMQDriver`: the AsyncTasQ driver contract on RabbitMQ, through aio-pika.

What the broker does, and what the driver adds:

* Durable work queues (classic by default, quorum on request), persistent messages,
  publisher confirms: a call that returns has its message on the broker's disk.
  `enqueue_many` publishes everything and then awaits all the confirms together.
* Leases are the broker's: a delivered, unacked message belongs to this connection until it
  is settled or the connection closes, when RabbitMQ puts it back. There is no lease clock
  to push, so `extend` does nothing; the only time limit is the broker's consumer timeout,
  raised per work queue through the `x-consumer-timeout` argument (honoured by RabbitMQ
  3.12 and later; older servers apply their global `consumer_timeout`, 30 min by default).
* Attempts: quorum queues count returns per message (`x-delivery-count`); retries and
  releases republish with the count in a header. Classic queues only flag a redelivery, so
  the driver republishes a redelivered message with the delivery counted (and acks the
  redelivered copy) before anyone runs it: counts are exact there too, the message moves to
  the back of its queue.
* Delays: binary TTL queues (`asynctasq_rabbitmq.delays`), no plugin, no mover process.
* Priorities: classic work queues are declared with ``x-max-priority`` 9 and a message of
  priority 1-9 carries the AMQP `priority` property; the broker hands out the highest first.
  Republished copies (retry, release, recount, dead letter) keep it. A work queue that cannot
  order by priority (quorum, or classic from before priorities) gets only priority 0: a
  higher one is refused at dispatch (see `Topology.refuse_unordered`).
* Retry and dead-letter publish (confirmed) first and ack second: a crash in between gives
  a duplicate, never a loss.
* A lost connection is re-established by aio-pika's robust connection; the consumer
  subscribes again and what this connection held is redelivered by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.connection import make_url
from aiormq.abc import AbstractChannel, AbstractConnection

from asynctasq.core.options import MAX_SECONDS, is_positive_seconds
from asynctasq.drivers.base import (
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
)
from asynctasq_rabbitmq import _channel as channels
from asynctasq_rabbitmq import _connect_log
from asynctasq_rabbitmq import _encode as encoding
from asynctasq_rabbitmq import _frames as frames
from asynctasq_rabbitmq import _reader as reader
from asynctasq_rabbitmq import _writes as writes
from asynctasq_rabbitmq.consumer import Consumer, Receipt
from asynctasq_rabbitmq.copies import LostCopies
from asynctasq_rabbitmq.dead_letters import DeadLetters, dead_letter_properties
from asynctasq_rabbitmq.inspection import delete_namespace, purge_queue, queue_stats
from asynctasq_rabbitmq.publisher import CONNECTION_ERRORS, Publisher
from asynctasq_rabbitmq.registry import QueueRegistry
from asynctasq_rabbitmq.topology import CLASSIC, QUORUM, Topology

log = logging.getLogger("asynctasq.rabbitmq")
_connect_log.install()

SERVER_DEFAULT_CONSUMER_TIMEOUT = 1800.0
"""RabbitMQ's own `consumer_timeout` (30 min), reported when the driver sets none."""


class RabbitMQDriver:
    """AsyncTasQ driver for RabbitMQ.

    The keyword arguments are the settings (`ASYNCTASQ_RABBITMQ_<NAME>` in the environment).
    Nothing connects before the first operation or `connect()`.

    Args:
        url: AMQP URL of the broker.
        exchange_name: Direct exchange the work queues are bound to; the delay exchanges are
            named after it.
        prefetch_count: Unsettled messages the broker sends per queue to this process; None
            is twice the worker's concurrency (the `limit` of its first `dequeue`), so the
            next tasks are here when running ones finish.
        queue_prefix: Prepended to every queue name on the broker.
        queue_type: ``"classic"`` (default: on disk on one node, the fastest) or
            ``"quorum"`` (replicated over a cluster's nodes) for new work queues. Both keep
            exact attempt counts. A queue that exists with the other type is used as it is.
        consumer_timeout: Seconds a delivery may stay unacked before the broker takes it back
            (`x-consumer-timeout` on work queues), or None for the server's setting. Cannot
            change for an existing queue on servers that enforce it.
        publish_timeout: Seconds a publish may wait for the broker (including a reconnect)
            before it raises.
        reconnect_interval: Seconds between reconnection attempts after the connection broke.

    Raises:
        ValueError: For an unknown `queue_type` or a non-positive number.
    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@localhost:5672/",
        exchange_name: str = "asynctasq",
        prefetch_count: int | None = None,
        queue_prefix: str = "",
        queue_type: str = CLASSIC,
        consumer_timeout: float | None = 86400.0,
        publish_timeout: float = 30.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        if queue_type not in (QUORUM, CLASSIC):
            raise ValueError(f"queue_type must be 'quorum' or 'classic', got {queue_type!r}")
        if prefetch_count is not None and prefetch_count < 1:
            raise ValueError(f"prefetch_count must be at least 1, got {prefetch_count!r}")
        for name, value in (
            ("consumer_timeout", consumer_timeout),
            ("publish_timeout", publish_timeout),
            ("reconnect_interval", reconnect_interval),
        ):
            # At most ten years, as a task's visibility timeout: the worker refuses a lease
            # past that (the consumer timeout is reported as the lease), and an infinite one
            # cannot be sent to the broker.
            if value is not None and not is_positive_seconds(value):
                raise ValueError(
                    f"{name} must be a number of seconds above 0 and at most "
                    f"{MAX_SECONDS:.0f} (ten years), got {value!r}"
                )
        if not exchange_name:
            raise ValueError("exchange_name must not be empty")
        self.url = url
        self.exchange_name = exchange_name
        self.prefetch_count = prefetch_count
        self.queue_prefix = queue_prefix
        self.queue_type = queue_type
        self.consumer_timeout = consumer_timeout
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self._topology = Topology(
            exchange=exchange_name,
            prefix=queue_prefix,
            queue_type=queue_type,
            consumer_timeout_ms=(
                round(consumer_timeout * 1000) if consumer_timeout is not None else None
            ),
            on_new_queue=lambda queue: self._registry.register(queue),
            private_channel=self._private_channel,
        )
        self._registry = QueueRegistry(
            self._topology.registry_queue, self._amqp, self._topology.usable
        )
        self._dead_letters = DeadLetters(
            self._topology, self._amqp, self.queue_names, self._requeue_fresh
        )
        self._lease_seconds = consumer_timeout or SERVER_DEFAULT_CONSUMER_TIMEOUT
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._consumer: Consumer | None = None
        # Deliveries settled after their channel was gone: None (acked) or the failure
        # they were dead-lettered with (see `_settled_after_loss`).
        self._settled_stale: LostCopies[Failure | None] = LostCopies()
        self._connect_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"RabbitMQDriver(exchange_name={self.exchange_name!r}, "
            f"queue_prefix={self.queue_prefix!r}, queue_type={self.queue_type!r})"
        )

    # -- connection ----------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the robust connection and its two channels (idempotent)."""
        if self._connection is not None:
            return
        async with self._connect_lock:
            if self._connection is None:
                await self._open()

    async def _open(self) -> None:
        """Connect (robust) and open the publish and consume channels."""
        frames.install()  # an undecodable message must not end the connection
        reader.install()
        encoding.install()  # what every publish sends, encoded directly
        channels.install()  # deliveries reach the consumer without a task each
        writes.install()  # frames written at once where aiormq's writer would next
        # Built here rather than by `connect_robust`, so that a connect cancelled half way
        # (a worker stopped while the broker was slow) can still be closed: the library's
        # reconnection task would otherwise keep the half-open connection alive.
        connection = aio_pika.RobustConnection(
            make_url(self.url),
            reconnect_interval=self.reconnect_interval,
            client_properties={"connection_name": f"asynctasq {self.exchange_name}"},
        )
        tolerant = frames.TOLERANT.set(True)  # for the tasks the connection starts now
        try:
            await connection.connect()
            publish_channel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            consume_channel = await connection.channel(publisher_confirms=False)
        except BaseException:
            before = asyncio.all_tasks()
            await connection.close()
            await _library_tasks_done(before)
            raise
        finally:
            frames.TOLERANT.reset(tolerant)
        self._consumer = Consumer(
            consume_channel,
            self._topology,
            prefetch_count=self.prefetch_count,
            lease_seconds=self._lease_seconds,
            recount=self._recount,
            bury=self._bury_unreadable,
        )
        self._publisher = Publisher(
            self._topology,
            publish_channel,
            timeout=self.publish_timeout,
            pause=min(0.05, self.reconnect_interval),
        )
        self._connection = connection

    async def close(self) -> None:
        """Stop consuming, give back buffered deliveries nobody took, close the connection.

        Deliveries handed out and not settled return to their queues when the connection
        closes (RabbitMQ leases end with the connection), counted as a delivery.
        """
        async with self._connect_lock:
            connection, consumer = self._connection, self._consumer
            if connection is None or consumer is None:
                return
            try:
                leftovers = await consumer.stop()
                if leftovers and not connection.is_closed:
                    await self.release(leftovers)
            except Exception as exc:  # closing must finish; the broker returns what is held
                log.warning("asynctasq: releasing buffered deliveries failed: %r", exc)
            finally:
                self._connection = self._publisher = self._consumer = None
                before = asyncio.all_tasks()
                await connection.close()
                await _library_tasks_done(before)

    async def _amqp(self) -> AbstractConnection:
        """The current underlying AMQP connection (for short-lived private channels)."""
        await self.connect()
        connection = self._connection
        assert connection is not None
        await connection.ready()
        transport = connection.transport
        if transport is None:
            raise ConnectionError("RabbitMQ connection is not open")
        return transport.connection

    async def _private_channel(self) -> AbstractChannel:
        """A new channel on the current connection, for one short conversation."""
        return await (await self._amqp()).channel()

    # -- publishing ----------------------------------------------------------------------
    async def _publisher_ready(self) -> Publisher:
        await self.connect()
        if self._publisher is None:
            raise ConnectionError("RabbitMQDriver is closed")
        return self._publisher

    async def _requeue_fresh(self, queue: str, task_id: str, payload: bytes, priority: int) -> None:
        publisher = await self._publisher_ready()
        await publisher.publish_task(
            queue, task_id, payload, attempts=0, delay=0.0, priority=priority
        )

    async def enqueue(self, message: OutgoingMessage) -> None:
        """Publish one message (persistent, confirmed), ready after `message.delay`.

        Raises:
            ValueError: The priority is not 0 and the work queue cannot order by it (a
                quorum queue, or a classic one declared before priorities); nothing queued.
        """
        publisher = await self._publisher_ready()
        if message.priority:
            await publisher.refuse_unordered((message,))
        await publisher.publish_task(
            message.queue,
            message.task_id,
            message.payload,
            attempts=0,
            delay=message.delay,
            priority=message.priority,
        )

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish all messages back to back, then await their confirms together.

        Raises:
            ValueError: As for `enqueue`, before any message of the batch is published.
        """
        if messages:
            publisher = await self._publisher_ready()
            await publisher.refuse_unordered(messages)
            await publisher.publish_many(messages)

    # -- consuming -----------------------------------------------------------------------
    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Leased deliveries pushed by the broker, up to `limit`, in the order of `queues`."""
        await self.connect()
        consumer = self._consumer
        if consumer is None or limit < 1 or not queues:
            return []
        deadline = time.monotonic() + wait
        while True:
            taken = await consumer.take(queues, limit, wait)
            if not (self._settled_stale.pending and taken):
                return taken
            # Copies settled here are not work: an empty answer before `wait` is up would
            # tell a burst worker the queues are empty.
            taken = await self._settle_copies(taken)
            wait = deadline - time.monotonic()
            if taken or wait <= 0:
                return taken

    def _settled_after_loss(self, delivery: Delivery, failure: Failure | None = None) -> None:
        """Remember a task settled (acked, or dead-lettered with `failure`) after the channel
        that leased it was lost: the broker has put it back and hands it out again, though
        it finished (see `_settle_copies`)."""
        if self._receipt(delivery).channel.is_closed:
            self._settled_stale.remember(delivery.task_id, delivery.attempts, failure)

    async def _settle_copies(self, taken: list[Delivery]) -> list[Delivery]:
        """Settle as their first delivery was, instead of handing them out, the copies of
        tasks that finished here after the connection that leased them was lost: run again,
        a task with one attempt would be dead-lettered as lost (its own error lost), and
        any other would run twice."""
        copies: list[tuple[Delivery, Failure | None]] = []
        for delivery in taken:
            is_copy, failure = self._settled_stale.peek(delivery.task_id, delivery.attempts)
            if is_copy:
                self._settled_stale.forget(delivery.task_id)
                copies.append((delivery, failure))
        if not copies:
            return taken
        acked: list[Receipt] = []
        for copy, failure in copies:
            if failure is None:
                acked.append(self._receipt(copy))
            else:
                await self.dead_letter(copy, failure)
        await self._ack(acked)
        log.info(
            "asynctasq: %d task(s) finished here after the connection that leased them was "
            "lost: the broker's copies are settled as they were, not run again",
            len(copies),
        )
        settled = {id(d) for d, _ in copies}
        return [d for d in taken if id(d) not in settled]

    @staticmethod
    def _receipt(delivery: Delivery) -> Receipt:
        receipt = delivery.receipt
        if not isinstance(receipt, Receipt):
            raise TypeError(f"not a RabbitMQDriver delivery: {delivery!r}")
        return receipt

    def _settle(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        """Mark receipts used; the ones whose lease is still held, to ack now."""
        consumer = self._consumer
        if consumer is None:
            return []
        return [receipt for receipt in receipts if consumer.settle(receipt)]

    async def _ack(self, receipts: Sequence[Receipt]) -> None:
        await self._send_acks(self._settle(receipts))

    async def _send_acks(self, held: Sequence[Receipt]) -> None:
        if not held or self._consumer is None:
            return
        frames = self._consumer.ack_frames(held)
        for index, (channel, tag, multiple) in enumerate(frames):
            # A failure means the lease ended with the channel: the broker delivers it again.
            with contextlib.suppress(*CONNECTION_ERRORS):
                # One flush for the whole batch: only the last ack waits for the socket.
                await channel.basic_ack(tag, multiple=multiple, wait=index == len(frames) - 1)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages (one `basic.ack` each, one flush for all)."""
        receipts = [self._receipt(delivery) for delivery in deliveries]
        held = self._settle(receipts)
        if len(held) < len(receipts):
            for delivery in deliveries:
                self._settled_after_loss(delivery)
        await self._send_acks(held)

    def _held(self, delivery: Delivery) -> Receipt | None:
        receipt = self._receipt(delivery)
        return receipt if receipt.held and self._consumer is not None else None

    async def _republish_then_ack(
        self, receipt: Receipt, publish: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            await publish()
        except CONNECTION_ERRORS:
            if receipt.held:
                raise
            # The connection broke: the original is back in its queue, nothing is lost.
            log.debug("asynctasq: lease lost while republishing; the broker redelivers")
            return
        await self._ack([receipt])

    async def _recount(self, delivery: Delivery) -> None:
        """Republish a redelivered classic-queue message with the delivery counted, then ack.

        Classic queues only flag a redelivery; this turns the flag into the attempt header,
        so every lost connection counts, as in a quorum queue. If it fails, the message stays
        unacked and comes back again. Returns once the broker has processed the ack: the
        consumer holds the copy back until then (see `asynctasq_rabbitmq.consumer`).
        """
        receipt = self._held(delivery)
        consumer = self._consumer
        if receipt is None or consumer is None:
            return
        try:
            await self._republish_as_is(delivery, receipt)
            with contextlib.suppress(*CONNECTION_ERRORS):  # the lease ended with the channel
                await consumer.processed(receipt)
        except Exception as exc:
            log.warning("asynctasq: recounting a redelivered message failed: %r", exc)

    async def _bury_unreadable(self, delivery: Delivery, why: str) -> None:
        """Dead-letter a message whose AMQP properties could not be decoded (see
        `asynctasq_rabbitmq._frames`). If it fails, the message stays unacked and comes back."""
        failure = Failure(
            exception_type="asynctasq.errors.MalformedMessageError",
            message=f"the AMQP properties of this message cannot be read ({why})",
            traceback="",
        )
        if self._held(delivery) is None:
            return  # the lease ended (the driver is closing): the broker has it back
        try:
            await self.dead_letter(delivery, failure)
        except Exception as exc:
            log.warning("asynctasq: dead-lettering an unreadable message failed: %r", exc)
        else:
            log.error(
                "asynctasq: a message on queue %s could not be read and was dead-lettered (%s)",
                delivery.queue,
                why,
            )

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Put leased messages back, ready now, without counting the delivery.

        A `basic.nack` with requeue would count as a delivery in a quorum queue, so the
        message is republished with its attempt count (confirmed) and then acked. It goes to
        the back of its queue.
        """
        await asyncio.gather(*(self._release_one(delivery) for delivery in deliveries))

    async def _release_one(self, delivery: Delivery) -> None:
        receipt = self._held(delivery)
        if receipt is not None:
            await self._republish_as_is(delivery, receipt)

    async def _republish_as_is(self, delivery: Delivery, receipt: Receipt) -> None:
        """Publish `delivery` again, ready now, with the attempts it carries, then ack it."""
        publisher = await self._publisher_ready()
        await self._republish_then_ack(
            receipt,
            lambda: publisher.publish_task(
                delivery.queue,
                delivery.task_id,
                delivery.payload,
                attempts=delivery.attempts,
                delay=0.0,
                priority=receipt.priority,
            ),
        )

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """Republish with the delivery counted, ready after `delay` (confirmed), then ack."""
        receipt = self._held(delivery)
        if receipt is None:
            return  # stale: the lease already ended and the broker has the message back
        publisher = await self._publisher_ready()
        await self._republish_then_ack(
            receipt,
            lambda: publisher.publish_task(
                delivery.queue,
                delivery.task_id,
                delivery.payload,
                attempts=delivery.attempts + 1,
                delay=delay,
                priority=receipt.priority,
            ),
        )

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Publish to ``<queue>.dead`` with the error in headers (confirmed), then ack."""
        receipt = self._held(delivery)
        if receipt is None:
            self._settled_after_loss(delivery, failure)
            return
        publisher = await self._publisher_ready()
        properties = dead_letter_properties(delivery, failure, datetime.now(UTC), receipt.priority)
        target = publisher.dead_letter_target(delivery.queue)
        await self._republish_then_ack(
            receipt, lambda: publisher.publish(target, delivery.payload, properties)
        )

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Nothing to do: RabbitMQ holds a delivery for as long as the connection lives.

        The only clock is the broker's consumer timeout (see `consumer_timeout`).
        """

    def check_queue_name(self, queue: str) -> None:
        """Refuse a queue name RabbitMQ cannot hold with this prefix (`QueueNameRule`).

        Raises:
            ValueError: says what a name may hold here.
        """
        self._topology.check_name(queue)

    # -- inspection ----------------------------------------------------------------------
    async def queue_names(self) -> list[str]:
        """Work queues in the registry, plus those this process declared."""
        names = set(await self._registry.names())
        return sorted(names | self._topology.known_queues())

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Counts per queue: ready, delayed and dead from the broker; in flight as seen here.

        AMQP reports ready messages and consumers only; `in_flight` counts the deliveries
        leased to this process (handed out or buffered), not those of other workers.
        """
        connection = await self._amqp()
        consumer = self._consumer
        return [
            await queue_stats(
                connection, self._topology, queue, consumer.in_flight(queue) if consumer else 0
            )
            for queue in queues
        ]

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of `queue` (and what this process buffered)."""
        removed = await purge_queue(await self._amqp(), self._topology, queue)
        if self._consumer is not None:
            buffered = self._consumer.drain(queue)
            await self.ack(buffered)
            removed += len(buffered)
        return removed

    # -- dead letters --------------------------------------------------------------------
    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (scans the dead-letter queues; see `dead_letters`)."""
        return await self._dead_letters.list(queue=queue, task_ids=task_ids, limit=limit)

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Move dead letters back to their queues, ready now, attempts from zero."""
        return await self._dead_letters.retry(queue=queue, task_ids=task_ids)

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters; with neither filter, all of them."""
        return await self._dead_letters.purge(queue=queue, task_ids=task_ids)

    # -- housekeeping --------------------------------------------------------------------
    async def delete_topology(self) -> None:
        """Delete every queue and exchange of this driver's namespace, messages included.

        For tests and decommissioning: the work, delay and dead-letter queues of every
        registered queue, the registry, the delay exchanges and the main exchange.
        """
        names = await self.queue_names()
        await delete_namespace(await self._amqp(), self._topology, names)
        self._registry.forget()


__all__ = ["RabbitMQDriver"]


async def _library_tasks_done(before: set[asyncio.Task[Any]]) -> None:
    """Wait (briefly) for the tasks aio-pika and aiormq started while a connection closed.

    They run the connection's close callbacks (``OneShotCallback``) and close its writer in
    tasks of their own that may still be pending when ``close()`` returns; an event loop that
    ends right after (a script's ``run()``, a test) would report them destroyed while
    pending. The libraries offer no handle on those tasks, so they are recognised by the
    file their coroutine comes from; this is the one place that looks.
    """
    current = asyncio.current_task()
    # A close callback may start further tasks of its own (the robust connection's, then
    # the writer's): look again after each round, a few rounds at most.
    for _ in range(4):
        started = [
            t
            for t in asyncio.all_tasks() - before
            if t is not current
            and not t.done()
            and any(
                lib in getattr(getattr(t.get_coro(), "cr_code", None), "co_filename", "")
                for lib in ("aio_pika", "aiormq")
            )
        ]
        if not started:
            return
        await asyncio.wait(started, timeout=5)
        await asyncio.sleep(0)  # let what they scheduled start
