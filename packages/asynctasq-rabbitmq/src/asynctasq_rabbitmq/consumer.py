"""Push consumption: one `basic.consume` per work queue feeding an in-process buffer.

The worker asks `dequeue(queues, limit=free_slots, wait=...)`. Polling with `basic.get` would
cost a round-trip per message and add latency; instead each work queue gets a consumer (a
*lane*) whose deliveries the broker pushes into a buffer the moment they are ready, so an idle
worker sees a new task within milliseconds. A delivery in the buffer is already leased to this
connection (unacked) and invisible to other workers.

Flow control is the consumer prefetch (`basic.qos`, per consumer: quorum queues refuse the
channel-wide kind). It is the `prefetch_count` setting, or else `PREFETCH_PER_SLOT` times the
`limit` of the first dequeue, which is the worker's concurrency: the next tasks are already
here when running ones finish (no ack-to-delivery round-trip between two tasks), and a busy
worker holds only that bounded number beyond what it runs. When every
message a lane holds has been handed out, nothing was settled for `STARVED_GRACE` seconds and
the caller still asks for more (its concurrency grew, or several callers share one driver),
the lane fetches with `basic.get`, which the prefetch does not limit (not with a fixed
`prefetch_count`: that is a limit the user chose). (Re-subscribing instead
would be wrong on quorum queues: deliveries in flight when a consumer is cancelled go back to
the queue counted as a delivery.)

Recounts (classic queues, see `RabbitMQDriver`): the counted copy is published before the
redelivered original is acked, so with free prefetch the copy can reach this consumer while
the original is still unacked. It is held back, with every other delivery of that task id,
until the broker has processed the original's ack (a round-trip on its channel after the ack):
a process that dies while running the copy then leaves only the copy, never both.

Priorities: the broker pushes the highest priority first, but only into free prefetch slots,
so the buffer keeps that order itself (`asynctasq_rabbitmq.buffer`), and a delivery that was
already buffered when a dequeue began, from a queue that orders by priority, is first
compared with the queue's head, fetched with `basic.get`: a message that became ready since
(a delayed one, a retry) and outranks it is handed out first; at most once per
`RECHECK_AFTER` per queue, so a message that became ready just after a check may wait that
long behind buffered ones. Neither costs anything when deliveries arrive while a dequeue
waits for them, as they do for a worker with free slots.

Deliveries are bound to the channel that received them. After a reconnect (aio-pika's robust
connection reopens the channel) the lanes subscribe again and buffered deliveries of the dead
channel are dropped: the broker has already put them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import AbstractChannel, DeliveredMessage
from aiormq.exceptions import AMQPError
from pamqp.commands import Basic

from asynctasq.drivers.base import MAX_PRIORITY, Delivery
from asynctasq_rabbitmq._channel import at_once
from asynctasq_rabbitmq._frames import UnreadableProperties
from asynctasq_rabbitmq.acks import AckBook
from asynctasq_rabbitmq.buffer import Buffered, DeliveryBuffer
from asynctasq_rabbitmq.copies import LostCopies
from asynctasq_rabbitmq.messages import attempts_of, priority_of, task_id_of
from asynctasq_rabbitmq.topology import Topology

log = logging.getLogger("asynctasq.rabbitmq")

WARM_UP_SECONDS = 0.25
"""After subscribing to a queue that has ready messages, how long a dequeue waits for the
first deliveries, so that queue order holds from the first call."""
STARVED_GRACE = 0.05
"""How long a dequeue waits for a settle to free prefetch before it uses `basic.get`."""
PREFETCH_PER_SLOT = 2
"""Automatic prefetch per unit of the worker's concurrency (the first dequeue's `limit`)."""
GOT = -1
"""The generation of a delivery fetched with `basic.get` (outside the prefetch)."""
RECHECK_AFTER = 0.05
"""Seconds between two checks of one queue's head against its buffered deliveries (see the
module docstring): a worker whose buffers wait (busy with other queues) pays at most this
many ``basic.get`` round-trips a second per queue."""


@dataclass(slots=True, eq=False)
class Receipt:
    """The lease of one delivery: its channel and delivery tag.

    Attributes:
        channel: The channel the message was delivered on; the lease ends with it.
        delivery_tag: The broker's tag, valid on `channel` only.
        lane: The lane (work queue consumer) it came through.
        generation: The lane's subscription it came through (prefetch accounting).
        priority: The message's priority, for the copies the driver republishes.
        settled: Set once ack/retry/release/dead-letter used the receipt.
    """

    channel: AbstractChannel
    delivery_tag: int
    lane: Lane
    generation: int
    priority: int = 0
    settled: bool = False

    @property
    def held(self) -> bool:
        """Whether the lease still exists: not settled and its channel still open."""
        return not self.settled and not self.channel.is_closed


class Lane:
    """The consumer of one work queue and its buffer of leased deliveries."""

    __slots__ = (
        "arrived",
        "broker_queue",
        "buffer",
        "channel",
        "checked_at",
        "consumer_tag",
        "expected",
        "generation",
        "outstanding",
        "prefetch",
        "queue",
        "recounting",
        "unsettled",
        "warm_until",
    )

    def __init__(self, queue: str, broker_queue: str) -> None:
        self.queue = queue
        self.broker_queue = broker_queue
        self.buffer = DeliveryBuffer()
        self.checked_at = float("-inf")  # last compared with the queue's head
        self.channel: AbstractChannel | None = None
        self.consumer_tag: str | None = None
        self.generation = 0
        self.prefetch = 0
        self.unsettled = 0  # of the current subscription: buffered + handed out
        self.outstanding = 0  # handed out and not settled, any subscription
        self.recounting: list[int] = []  # priorities of the recounts in progress
        self.expected = 0
        self.arrived = 0
        self.warm_until = 0.0

    @property
    def active(self) -> bool:
        """Whether the lane has a live subscription."""
        return (
            self.consumer_tag is not None
            and self.channel is not None
            and not self.channel.is_closed
        )

    def starved(self) -> bool:
        """All the prefetch is handed out: the broker will send nothing until a settle."""
        return self.active and not self.buffer and self.unsettled >= self.prefetch

    def warming(self, now: float) -> bool:
        """Freshly subscribed and still waiting for messages that were ready."""
        return self.arrived < self.expected and now < self.warm_until


class Consumer:
    """All lanes of one driver, on one robust channel.

    Args:
        channel: The consume channel (aio-pika robust: reopened after a reconnect).
        topology: Names and declarations.
        prefetch_count: Fixed per-queue prefetch, or None to follow the worker's `limit`.
        lease_seconds: Reported as `Delivery.visibility_timeout`.
        recount: Called instead of handing out a message redelivered by a classic queue, to
            republish it with the delivery counted (classic queues keep no count; quorum
            queues count in `x-delivery-count`).
    """

    def __init__(
        self,
        channel: AbstractRobustChannel,
        topology: Topology,
        *,
        prefetch_count: int | None,
        lease_seconds: float,
        bury: Callable[[Delivery, str], Coroutine[Any, Any, None]],
        recount: Callable[[Delivery], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._channel = channel
        self._recount = recount
        self._bury = bury
        self._recounting: set[asyncio.Task[None]] = set()
        # Task ids being recounted, and the deliveries held back meanwhile.
        self._holding: dict[str, int] = {}
        self._held: list[tuple[Lane, Buffered]] = []
        # Messages a lost channel held here that no caller took: they come back counted as
        # a delivery, which they never were (see `_lost_unstarted`).
        self._unstarted: LostCopies[None] = LostCopies()
        self._topology = topology
        self._fixed_prefetch = prefetch_count
        self._auto_prefetch = prefetch_count is None
        self._prefetch = prefetch_count or 1
        self._lease_seconds = lease_seconds
        self._lanes: dict[str, Lane] = {}
        self._arrived = asyncio.Event()
        self._lock = asyncio.Lock()
        self._books: dict[int, tuple[AbstractChannel, AckBook]] = {}
        self._stopped = False
        channel.reopen_callbacks.add(self._on_reopen)

    # -- dequeue -------------------------------------------------------------------------
    async def take(self, queues: Sequence[str], limit: int, wait: float) -> list[Delivery]:
        """Up to `limit` deliveries from the buffers of `queues`, in that order of queues.

        Subscribes to queues seen for the first time. When nothing is buffered, waits up to
        `wait` seconds for the broker to push something.
        """
        if self._stopped:
            return []
        loop = asyncio.get_running_loop()
        started = loop.time()  # what arrives from now on (subscribing included) is fresh
        if self._fixed_prefetch is None and not self._lanes:
            self._prefetch = limit * PREFETCH_PER_SLOT  # the first call: its concurrency
        lanes = [await self._lane(queue) for queue in dict.fromkeys(queues)]
        deadline = loop.time() + max(wait, 0.0)
        await self._warm_up(lanes)
        fetch_at: float | None = None
        while True:
            await self._outranked(lanes, limit, started)
            taken = self._pop(lanes, limit)
            if taken or self._stopped:
                return taken
            now = loop.time()
            # A fixed `prefetch_count` is a limit the user chose: never fetch past it.
            starved = [lane for lane in lanes if lane.starved()] if self._auto_prefetch else []
            if not starved:
                fetch_at = None
            elif fetch_at is None:
                fetch_at = now + STARVED_GRACE
            elif now >= fetch_at:
                taken = await self._fetch(starved, limit)
                if taken:
                    return taken
                fetch_at = now + STARVED_GRACE  # nothing ready: look again later
            remaining = deadline - now
            if remaining <= 0:
                return []
            if fetch_at is not None:
                remaining = min(remaining, max(fetch_at - now, 0.0))
            self._arrived.clear()
            if any(lane.buffer for lane in lanes):
                continue
            # asyncio.timeout, not wait_for: wait_for runs the wait as a task of its own, and
            # its wake-up then takes two more loop iterations on the dispatch-to-start path.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    async def _fetch(self, lanes: Sequence[Lane], limit: int) -> list[Delivery]:
        """Take up to `limit` ready messages with `basic.get` (not bound by the prefetch)."""
        taken: list[Delivery] = []
        for lane in lanes:
            channel = lane.channel
            while channel is not None and not channel.is_closed and len(taken) < limit:
                message = await channel.basic_get(lane.broker_queue, no_ack=False)
                if not isinstance(message.delivery, Basic.GetOk):
                    break  # get-empty
                self._book(channel).add(int(getattr(message.delivery, "delivery_tag", 0) or 0))
                now = asyncio.get_running_loop().time()
                self._hand_out(taken, lane, Buffered(message, GOT, priority_of(message), now))
        return taken

    async def _outranked(self, lanes: Sequence[Lane], limit: int, started: float) -> None:
        """Fetch the head of each queue `_pop` is about to take from whose first buffered
        delivery arrived before `started` (the dequeue began) and could be outranked: it
        joins the buffer in its place (before the buffered ones when of a higher priority).

        Only lanes `_pop` takes at least one delivery from are looked at, and only while
        their buffer holds no fetched delivery: a buffer holds at most one beyond the
        prefetch, and a lane whose buffered deliveries wait (a worker busy with other queues)
        pays one `basic.get` per buffer-full it hands out, not one per call.
        """
        wanted = limit
        now = asyncio.get_running_loop().time()
        for lane in lanes:
            if wanted <= 0:
                return
            head = lane.buffer.head()
            if head is None:
                continue
            channel = lane.channel
            if (
                head.arrived < started
                and now - lane.checked_at >= RECHECK_AFTER
                and not lane.buffer.fetched
                and head.priority < MAX_PRIORITY
                and (self._topology.max_priority(lane.queue) or 0) > head.priority
                and channel is not None
                and not channel.is_closed
            ):
                lane.checked_at = now
                try:
                    message = await channel.basic_get(lane.broker_queue, no_ack=False)
                except (AMQPError, ConnectionError) as exc:  # the order check is best effort
                    log.debug("asynctasq: fetching a queue's head failed: %r", exc)
                else:
                    if isinstance(message.delivery, Basic.GetOk):
                        tag = int(getattr(message.delivery, "delivery_tag", 0) or 0)
                        self._book(channel).add(tag)
                        lane.buffer.add(Buffered(message, GOT, priority_of(message), started))
                    # What the broker pushed before answering (a copy a release or retry
                    # just published, once the ack freed prefetch) follows its answer on
                    # the wire: one more round-trip and that is buffered too.
                    try:
                        await self._round_trip(channel)
                    except (AMQPError, ConnectionError) as exc:
                        log.debug("asynctasq: a round-trip after basic.get failed: %r", exc)
            wanted -= len(lane.buffer)

    def _pop(self, lanes: Sequence[Lane], limit: int, *, hold: bool = True) -> list[Delivery]:
        taken: list[Delivery] = []
        for lane in lanes:
            while lane.buffer and len(taken) < limit:
                item = lane.buffer.popleft()
                if item.message.channel.is_closed:
                    self._lost_unstarted(item)  # the broker has it back
                    continue
                self._hand_out(taken, lane, item, hold=hold)
            if len(taken) >= limit:
                break
        return taken

    def _hand_out(
        self, taken: list[Delivery], lane: Lane, item: Buffered, *, hold: bool = True
    ) -> None:
        message = item.message
        delivery = self._delivery(lane, message, item.generation)
        properties = message.header.properties
        if isinstance(properties, UnreadableProperties):
            # Never handed out (what it would run is unknown) and never republished as it is
            # (a recount, or a release at close, would give it readable properties):
            # dead-lettered with the reason, or, once stopping, left to come back with the
            # connection. A purge (`drain`) takes it like any other.
            if not hold:
                if not self._stopped:
                    lane.outstanding += 1
                    taken.append(delivery)
                return
            lane.outstanding += 1
            buried = asyncio.get_running_loop().create_task(self._bury(delivery, properties.why))
            self._recounting.add(buried)
            buried.add_done_callback(self._recounting.discard)
            return
        if (
            hold
            and self._holding
            and (
                delivery.task_id in self._holding  # perhaps the counted copy
                or (lane.recounting and item.priority < max(lane.recounting))
            )
        ):
            self._held.append((lane, item))
            return
        if self._unstarted.pending:
            self._unstarted.forget(delivery.task_id)
        lane.outstanding += 1
        if (
            not hold
            or self._recount is None
            or not getattr(message.delivery, "redelivered", False)
            or self._topology.is_quorum(delivery.queue)
        ):
            taken.append(delivery)
            return
        # A classic queue gave back a message whose holder vanished: its count is only a
        # flag, so make it durable (republish counted, ack this copy) before anyone runs it.
        # Until it is through, deliveries of the same task id and, from the same queue, of a
        # lower priority are held back (the copy outranks them).
        task_id = delivery.task_id
        self._holding[task_id] = self._holding.get(task_id, 0) + 1
        lane.recounting.append(item.priority)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._recount(delivery))
        self._recounting.add(task)
        task.add_done_callback(partial(self._recounted, task_id, lane, item.priority))

    def _recounted(self, task_id: str, lane: Lane, priority: int, task: asyncio.Task[None]) -> None:
        """A recount is over: what was held back joins the buffers again (to be looked at
        again: other recounts may still hold some)."""
        self._recounting.discard(task)
        left = self._holding.pop(task_id, 1) - 1
        if left > 0:
            self._holding[task_id] = left
        with contextlib.suppress(ValueError):
            lane.recounting.remove(priority)
        self._unhold()
        self._arrived.set()

    def _lost_unstarted(self, item: Buffered) -> None:
        """Remember a message of a lost channel that no caller took: when it comes back,
        the broker counts that return as a delivery (redelivered, or ``x-delivery-count``),
        but nothing ran it; a task with ``max_attempts=1`` would be dead-lettered as lost
        without ever running."""
        message = item.message
        self._unstarted.remember(task_id_of(message), attempts_of(message), None)

    def _delivery(self, lane: Lane, message: DeliveredMessage, generation: int) -> Delivery:
        delivery = message.delivery
        assert isinstance(delivery, Basic.Deliver | Basic.GetOk)
        task_id = task_id_of(message)
        attempts = attempts_of(message)
        if self._unstarted.pending and self._unstarted.peek(task_id, attempts)[0]:
            attempts -= 1  # forgotten once handed out or recounted (`_hand_out`)
        return Delivery(
            task_id=task_id,
            queue=lane.queue,
            payload=message.body,
            attempts=attempts,
            receipt=Receipt(
                message.channel,
                int(delivery.delivery_tag or 0),
                lane,
                generation,
                priority_of(message),
            ),
            visibility_timeout=self._lease_seconds,
        )

    async def _warm_up(self, lanes: Sequence[Lane]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            warming = [lane for lane in lanes if lane.warming(now)]
            if not warming:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._arrived.wait(), min(lane.warm_until for lane in warming) - now
                )

    # -- settling ------------------------------------------------------------------------
    def settle(self, receipt: Receipt) -> bool:
        """Mark `receipt` used; True when its lease was still held (so ack it now)."""
        if receipt.settled:
            return False
        receipt.settled = True
        lane = receipt.lane
        if receipt.channel is lane.channel:
            lane.outstanding = max(lane.outstanding - 1, 0)
        if receipt.generation == lane.generation and lane.unsettled > 0:
            lane.unsettled -= 1
        return not receipt.channel.is_closed

    def _book(self, channel: AbstractChannel) -> AckBook:
        """The ack book of `channel` (created on first use; books of closed channels go)."""
        entry = self._books.get(id(channel))
        if entry is not None and entry[0] is channel:
            return entry[1]
        for key, (known, _) in list(self._books.items()):
            if known.is_closed:
                del self._books[key]
        channel.on_consumer_cancel_callbacks.add(self._on_cancel)
        book = AckBook()
        self._books[id(channel)] = (channel, book)
        return book

    def ack_frames(self, receipts: Sequence[Receipt]) -> list[tuple[AbstractChannel, int, bool]]:
        """``(channel, delivery_tag, multiple)`` acks for held `receipts`, runs coalesced."""
        by_channel: dict[int, tuple[AbstractChannel, list[int]]] = {}
        for receipt in receipts:
            by_channel.setdefault(id(receipt.channel), (receipt.channel, []))[1].append(
                receipt.delivery_tag
            )
        frames: list[tuple[AbstractChannel, int, bool]] = []
        for channel, tags in by_channel.values():
            upto, singles = self._book(channel).plan(tags)
            if upto:
                frames.append((channel, upto, True))
            frames += [(channel, tag, False) for tag in singles]
        return frames

    def in_flight(self, queue: str) -> int:
        """Messages of `queue` leased to this process: handed out or buffered."""
        lane = self._lanes.get(queue)
        if lane is None or not lane.active:
            return 0
        held = sum(known is lane for known, _ in self._held)
        return lane.outstanding + len(lane.buffer) + held

    def _unhold(self) -> None:
        """Put every held-back delivery back into its buffer."""
        held, self._held = self._held, []
        for lane, item in held:
            if item.message.channel.is_closed:
                self._lost_unstarted(item)
            else:
                lane.buffer.add(item)

    def drain(self, queue: str) -> list[Delivery]:
        """Take every buffered delivery of `queue` (to purge them)."""
        lane = self._lanes.get(queue)
        if lane is None:
            return []
        self._unhold()
        return self._pop([lane], len(lane.buffer), hold=False)

    # -- subscriptions -------------------------------------------------------------------
    async def _lane(self, queue: str) -> Lane:
        lane = self._lanes.get(queue)
        if lane is None:
            lane = self._lanes[queue] = Lane(queue, self._topology.work_queue(queue))
        if not lane.active and not self._channel.is_closed:
            async with self._lock:
                if not lane.active and not self._stopped:
                    channel = await self._channel.get_underlay_channel()
                    declared = await self._topology.declare_work_queue(channel, queue)
                    await self._subscribe(lane, channel, int(declared.message_count or 0))
        return lane

    async def _subscribe(self, lane: Lane, channel: AbstractChannel, ready: int) -> None:
        self._book(channel)
        lane.generation += 1
        lane.prefetch = self._prefetch
        lane.unsettled = 0
        lane.arrived = 0
        lane.expected = min(ready, lane.prefetch)
        lane.warm_until = asyncio.get_running_loop().time() + WARM_UP_SECONDS
        lane.channel = channel
        tag = f"asynctasq.{lane.queue}.{uuid.uuid4().hex[:12]}"
        await channel.basic_qos(prefetch_count=lane.prefetch)
        lane.consumer_tag = tag
        try:
            await channel.basic_consume(
                lane.broker_queue,
                at_once(partial(self._deliver, lane, lane.generation)),
                consumer_tag=tag,
            )
        except BaseException:
            lane.consumer_tag = None
            raise

    def _deliver(self, lane: Lane, generation: int, message: DeliveredMessage) -> None:
        now = asyncio.get_running_loop().time()
        lane.buffer.add(Buffered(message, generation, priority_of(message), now))
        self._book(message.channel).add(int(getattr(message.delivery, "delivery_tag", 0) or 0))
        if generation == lane.generation:
            lane.unsettled += 1
            lane.arrived += 1
        self._arrived.set()

    def _on_cancel(self, frame: Any) -> None:
        tag = getattr(frame, "consumer_tag", None)
        for lane in self._lanes.values():
            if lane.consumer_tag == tag:
                lane.consumer_tag = None  # the queue was deleted: declare it again when asked
                self._topology.forget(lane.queue)  # re-created perhaps with other arguments

    async def _on_reopen(self, _sender: Any = None) -> None:
        """The robust channel came back (reconnect or channel error): subscribe again."""
        async with self._lock:
            for _, item in self._held:  # their channel is gone: the broker has them back
                self._lost_unstarted(item)
            self._held.clear()
            for lane in self._lanes.values():
                while lane.buffer:
                    self._lost_unstarted(lane.buffer.popleft())
                lane.consumer_tag = None
                lane.outstanding = 0
                lane.unsettled = 0
            if self._stopped:
                return
            try:
                channel = await self._channel.get_underlay_channel()
                for lane in self._lanes.values():
                    declared = await self._topology.declare_work_queue(channel, lane.queue)
                    await self._subscribe(lane, channel, int(declared.message_count or 0))
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                # The next dequeue subscribes the lanes left inactive.
                log.warning("asynctasq: resubscribing after reconnect failed: %r", exc)
        self._arrived.set()

    async def stop(self) -> list[Delivery]:
        """Cancel every subscription; return the buffered deliveries nobody took."""
        self._stopped = True
        self._arrived.set()
        async with self._lock:
            for lane in self._lanes.values():
                if lane.active and lane.channel is not None and lane.consumer_tag is not None:
                    with contextlib.suppress(AMQPError, ConnectionError, RuntimeError):
                        await lane.channel.basic_cancel(lane.consumer_tag)
                lane.consumer_tag = None
        await asyncio.sleep(0)  # deliveries read before the cancel-ok reach the buffers
        if self._recounting:
            await asyncio.wait(list(self._recounting), timeout=10)
        self._unhold()
        leftovers: list[Delivery] = []
        for lane in self._lanes.values():
            leftovers += self._pop([lane], len(lane.buffer), hold=False)
        return leftovers

    async def processed(self, receipt: Receipt) -> None:
        """Return once the broker has processed every frame sent on `receipt`'s channel so
        far (an ack among them)."""
        await self._round_trip(receipt.channel)

    async def _round_trip(self, channel: AbstractChannel) -> None:
        """A synchronous method on `channel`: the broker answers it after every frame sent
        there before, and after every delivery it pushed there before.

        `basic.qos` with the per-consumer prefetch changes nothing: it applies to consumers
        started later, which set it themselves.
        """
        await channel.basic_qos(prefetch_count=self._prefetch)


__all__ = ["Consumer", "Lane", "Receipt"]
