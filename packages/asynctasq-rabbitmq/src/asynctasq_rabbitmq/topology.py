"""Names and declarations: the exchanges and queues one driver uses on the broker.

For a work queue ``q`` with prefix ``p`` and exchange ``x``:

* ``p + q``: the work queue, durable, classic by default (see `RabbitMQDriver`), bound to the
  direct exchange ``x`` with its own name as routing key. A classic work queue is declared
  with ``x-max-priority`` `MAX_PRIORITY` (priorities 0-9, higher first); a quorum queue
  without (it refuses the argument, see `priority_levels`). A work queue that already exists
  with the other type, or without ``x-max-priority`` (declared by an older version or another
  setting), is used as it is: the arguments of a queue cannot change, and refusing it would
  stop every worker.
* ``p + q + ".dead"``: its dead letters, a durable classic queue (list/retry/purge scan it and
  requeue what they leave, which keeps the order in a classic queue).
* ``p + q + ".delay.N"``: delay level ``N`` (see `asynctasq_rabbitmq.delays`), declared on
  first use up to the highest level a delay needed.
* ``x + ".delay.N"``: the topic exchanges of the delay levels, shared by every work queue.
* ``p + x + ".queues"``: the registry of work queue names (see `QueueRegistry`).

Declarations are cached per process; a publish that comes back unroutable (someone deleted a
queue) makes the driver `forget` the queue and declare it again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Queue
from pamqp.constants import DOMAIN_REGEX

from asynctasq.core.options import check_queue
from asynctasq.drivers.base import MAX_PRIORITY
from asynctasq_rabbitmq import delays

QUORUM = "quorum"
CLASSIC = "classic"

MAX_PRIORITY_ARG = "x-max-priority"
_CURRENT_LEVELS = re.compile(r"'x-max-priority'.*current is (?:the value )?'(\d{1,3})'")
"""The ``x-max-priority`` a queue has, in the broker's refusal of another value."""


MAX_NAME_BYTES = 255
"""Longest queue name AMQP can carry (a short string)."""
QUEUE_NAME = DOMAIN_REGEX["queue-name"]
"""The characters the AMQP client takes in a queue name (it refuses others at each call)."""


def priority_levels(queue_type: str) -> int:
    """The ``x-max-priority`` a new work queue of `queue_type` is declared with (0: none).

    Classic queues order by the message `priority` property up to ``x-max-priority``.
    Quorum queues refuse the argument; RabbitMQ 4.0 and later give them two levels of their
    own (0-4 and 5 and up, served 2:1 rather than strictly), earlier versions none: neither
    is the strict order of the driver contract, so the driver counts them as FIFO.
    """
    return MAX_PRIORITY if queue_type == CLASSIC else 0


log = logging.getLogger("asynctasq.rabbitmq")


class Topology:
    """Knows every name, declares on first use and remembers what it declared.

    Args:
        exchange: The main (direct) exchange; the delay exchanges are named after it.
        prefix: Prepended to every queue name (isolates tenants and tests).
        queue_type: ``"quorum"`` or ``"classic"`` for work queues.
        consumer_timeout_ms: `x-consumer-timeout` of work queues, or None to leave the
            server's `consumer_timeout` in force.
        on_new_queue: Awaited once per process for each work queue declared (the registry).
        private_channel: Opens a throwaway channel (to learn a work queue's type on the
            broker without risking the shared channels: a refused declaration closes its
            channel). Without it, the configured type is declared as it is.
    """

    def __init__(
        self,
        *,
        exchange: str,
        prefix: str,
        queue_type: str,
        consumer_timeout_ms: int | None,
        on_new_queue: Callable[[str], Awaitable[None]],
        private_channel: Callable[[], Awaitable[AbstractChannel]] | None = None,
    ) -> None:
        self.exchange = exchange
        self.prefix = prefix
        self.queue_type = queue_type
        self._private_channel = private_channel
        self._types: dict[str, str] = {}
        self._levels: dict[str, int] = {}
        self._consumer_timeout_ms = consumer_timeout_ms
        self._on_new_queue = on_new_queue
        self._lock = asyncio.Lock()
        self._exchange_declared = False
        self._work: set[str] = set()
        self._dead: set[str] = set()
        self._delay_levels: dict[str, int] = {}
        self._delay_exchanges: set[int] = set()

    # -- names ---------------------------------------------------------------------------
    def work_queue(self, queue: str) -> str:
        """Broker name of the work queue `queue`."""
        return self.prefix + queue

    def dead_queue(self, queue: str) -> str:
        """Broker name of the dead-letter queue of `queue`."""
        return self.prefix + queue + ".dead"

    def delay_queue(self, queue: str, level: int) -> str:
        """Broker name of delay level `level` of `queue`."""
        return f"{self.prefix}{queue}.delay.{level}"

    def delay_exchange(self, level: int) -> str:
        """Name of the topic exchange of delay level `level`."""
        return f"{self.exchange}.delay.{level}"

    @property
    def registry_queue(self) -> str:
        """Broker name of the queue-name registry."""
        return f"{self.prefix}{self.exchange}.queues"

    def check_name(self, queue: str) -> None:
        """Refuse `queue` when a broker name made of it is not one AMQP and its client take.

        Raises:
            ValueError: names the queue, the prefix, and what names may hold.
        """
        longest = self.delay_queue(queue, delays.DELAY_LEVELS - 1)
        shown = f"{queue[:60]!r}{'...' if len(queue) > 60 else ''}"
        if not QUEUE_NAME.fullmatch(longest):
            raise ValueError(
                f"queue {shown} cannot be a RabbitMQ queue here: with the prefix "
                f"{self.prefix!r}, a queue name may hold only ASCII letters, digits and "
                "- _ . : @ # , / +"
            )
        if len(longest) > MAX_NAME_BYTES:
            room = MAX_NAME_BYTES - len(longest) + len(queue)
            raise ValueError(
                f"queue {shown} is too long for RabbitMQ: with the prefix {self.prefix!r} "
                f"and the driver's suffixes its names reach {len(longest)} characters, AMQP "
                f"allows {MAX_NAME_BYTES}; a queue name may have at most {max(room, 0)} here"
            )

    def usable(self, queue: str) -> bool:
        """Whether `queue` is a valid queue name whose broker names fit AMQP."""
        try:
            check_queue(queue)
            self.check_name(queue)
        except ValueError:
            return False
        return True

    def is_quorum(self, queue: str) -> bool:
        """Whether the work queue `queue` is a quorum queue (as found on the broker)."""
        return self._types.get(queue, self.queue_type) == QUORUM

    def max_priority(self, queue: str) -> int | None:
        """The highest priority the work queue `queue` orders by (0: FIFO only), as found on
        the broker; None until this process declared it."""
        return self._levels.get(queue)

    def work_arguments(
        self, queue_type: str | None = None, levels: int | None = None
    ) -> dict[str, Any]:
        """Arguments of a work queue declaration (of `queue_type`, default the setting, and
        ``x-max-priority`` `levels`, default `priority_levels` of the type; 0 leaves it out)."""
        queue_type = queue_type or self.queue_type
        arguments: dict[str, Any] = {"x-queue-type": queue_type}
        if levels is None:
            levels = priority_levels(queue_type)
        if levels:
            arguments[MAX_PRIORITY_ARG] = levels
        if self._consumer_timeout_ms is not None:
            arguments["x-consumer-timeout"] = self._consumer_timeout_ms
        return arguments

    def delay_target(self, queue: str, units: int) -> tuple[str, str]:
        """Exchange and routing key of a message for `queue` delayed by `units`."""
        qid = delays.queue_id(self.work_queue(queue))
        return self.delay_exchange(delays.top_level(units)), delays.routing_key(units, qid)

    # -- declarations --------------------------------------------------------------------
    def known(self, queue: str) -> bool:
        """Whether this process already declared the work queue `queue`."""
        return queue in self._work

    def known_queues(self) -> set[str]:
        """Work queues this process declared."""
        return set(self._work)

    def forget(self, queue: str) -> None:
        """Drop what is cached about `queue` so the next use declares it again."""
        self._work.discard(queue)
        self._dead.discard(queue)
        # Deleted behind our back (perhaps to re-create it with priorities): look again.
        self._types.pop(queue, None)
        self._levels.pop(queue, None)
        self._delay_levels.pop(queue, None)
        self._delay_exchanges.clear()
        self._exchange_declared = False

    async def _declare_exchange(self, channel: AbstractChannel) -> None:
        if not self._exchange_declared:
            await channel.exchange_declare(self.exchange, exchange_type="direct", durable=True)
            self._exchange_declared = True

    async def declare_work_queue(self, channel: AbstractChannel, queue: str) -> Queue.DeclareOk:
        """Declare (again) the work queue `queue` and its binding; returns the broker's answer.

        The answer's `message_count` is the number of ready messages.
        """
        self.check_name(queue)
        async with self._lock:
            await self._declare_exchange(channel)
            name = self.work_queue(queue)
            if queue not in self._types:
                self._types[queue], self._levels[queue] = await self._existing_shape(name)
            declared = await channel.queue_declare(
                name,
                durable=True,
                arguments=self.work_arguments(self._types[queue], self._levels[queue]),
            )
            await channel.queue_bind(name, self.exchange, routing_key=name)
            first = queue not in self._work
            self._work.add(queue)
        if first:
            await self._on_new_queue(queue)
        return declared

    async def _existing_shape(self, name: str) -> tuple[str, int]:
        """The type and ``x-max-priority`` to declare `name` with: the setting's, or those it
        already has (an existing queue's arguments cannot change).

        Each guess is a declaration on a throwaway channel, since the broker closes the channel
        of a refused one: the setting first, then the same type without priorities (a queue
        declared before them), then the other type; when the broker names another
        ``x-max-priority`` the queue has, that one.
        """
        levels = priority_levels(self.queue_type)
        if self._private_channel is None:
            return self.queue_type, levels
        other = CLASSIC if self.queue_type == QUORUM else QUORUM
        guesses = [(t, n) for t in (self.queue_type, other) for n in {priority_levels(t), 0}]
        guesses.sort(key=lambda guess: (guess[0] != self.queue_type, guess[1] == 0))
        tried: set[tuple[str, int]] = set()
        while guesses:
            shape = guesses.pop(0)
            tried.add(shape)
            channel = await self._private_channel()
            try:
                await channel.queue_declare(
                    name, durable=True, arguments=self.work_arguments(*shape)
                )
            except ChannelPreconditionFailed as exc:
                text = str(exc)
                if "x-queue-type" not in text and MAX_PRIORITY_ARG not in text:
                    raise
                found = _CURRENT_LEVELS.search(text)
                if found and (CLASSIC, int(found[1])) not in tried:
                    guesses.insert(0, (CLASSIC, int(found[1])))
                continue  # the broker closed that channel
            await channel.close()
            self._warn_about(name, *shape)
            return shape
        return self.queue_type, levels  # let the declaration report what is wrong

    def _warn_about(self, name: str, queue_type: str, levels: int) -> None:
        """Say once (per process and queue) how an adopted queue differs from the setting."""
        if queue_type != self.queue_type:
            log.warning(
                "asynctasq: work queue %r exists as a %s queue; using it as it is "
                "(queue_type %r applies to new queues)",
                name,
                queue_type,
                self.queue_type,
            )
        if queue_type == CLASSIC and levels < MAX_PRIORITY:
            log.warning(
                "asynctasq: work queue %r exists %s: it is used as it is, and dispatching a "
                "task of priority above %d to it is refused. To order it by priority 0-%d, "
                "let the workers drain it (no ready, delayed or retrying tasks left) and "
                "delete it: the next use declares it with x-max-priority %d. Or dispatch "
                "to a new queue name",
                name,
                f"with x-max-priority {levels}" if levels else "without x-max-priority (FIFO)",
                levels,
                MAX_PRIORITY,
                MAX_PRIORITY,
            )

    def refuse_unordered(self, queue: str, priority: int, task_id: str) -> None:
        """Raise when the work queue `queue` (declared by this process) cannot order a
        message of `priority` (see the driver contract: refuse, never queue out of order).

        Raises:
            ValueError: The queue is a quorum queue, or a classic queue declared without
                ``x-max-priority`` or with a lower one.
        """
        levels = self._levels.get(queue, priority_levels(self.queue_type))
        if priority <= levels:
            return
        name = self.work_queue(queue)
        if self._types.get(queue, self.queue_type) == QUORUM:
            why = (
                f"work queue {name!r} is a quorum queue, and quorum queues do not order by "
                "priorities 0-9 (none before RabbitMQ 4.0, two non-strict levels since). "
                "Use a classic queue for it (queue_type='classic' and a new queue name)"
            )
        else:
            declared = f"with x-max-priority {levels}" if levels else "without x-max-priority"
            why = (
                f"work queue {name!r} exists {declared} (declared before this driver ordered "
                "by priority) and the arguments of an existing queue cannot change. Drain "
                "and delete it (the next use declares it with x-max-priority "
                f"{MAX_PRIORITY}), or use a new queue name"
            )
        raise ValueError(
            f"task {task_id} has priority {priority} but {why}. Nothing was queued. A queue "
            f"per priority also works (e.g. .on_queue({queue + '-urgent'!r}) with workers "
            "of its own)"
        )

    def declared(self, queue: str, level: int | None = None) -> bool:
        """Whether this process declared the work queue `queue` (with `level`: and its delay
        levels 0..`level`), so that publishing to it needs no declaration first."""
        if level is None:
            return queue in self._work
        return self._delay_levels.get(queue, -1) >= level

    def dead_declared(self, queue: str) -> bool:
        """Whether this process declared the dead-letter queue of `queue`."""
        return queue in self._dead

    async def ensure_work_queue(self, channel: AbstractChannel, queue: str) -> None:
        """Declare the work queue `queue` unless this process already did."""
        if queue not in self._work:
            await self.declare_work_queue(channel, queue)

    async def ensure_dead_queue(self, channel: AbstractChannel, queue: str) -> None:
        """Declare the dead-letter queue of `queue` unless this process already did."""
        if queue in self._dead:
            return
        async with self._lock:
            await channel.queue_declare(self.dead_queue(queue), durable=True)
            self._dead.add(queue)

    async def ensure_delay_levels(self, channel: AbstractChannel, queue: str, level: int) -> None:
        """Declare delay levels 0..`level` of `queue` (and their exchanges) where missing."""
        if self._delay_levels.get(queue, -1) >= level:
            return
        await self.ensure_work_queue(channel, queue)
        async with self._lock:
            await self._declare_exchange(channel)
            work = self.work_queue(queue)
            qid = delays.queue_id(work)
            for n in range(self._delay_levels.get(queue, -1) + 1, level + 1):
                exchange = self.delay_exchange(n)
                if n not in self._delay_exchanges:
                    await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
                    if n > 0:
                        await channel.exchange_bind(
                            destination=self.delay_exchange(n - 1),
                            source=exchange,
                            routing_key=delays.pass_through_pattern(n),
                        )
                    self._delay_exchanges.add(n)
                arguments: dict[str, Any] = {"x-message-ttl": delays.level_ttl_ms(n)}
                if n == 0:
                    arguments["x-dead-letter-exchange"] = self.exchange
                    arguments["x-dead-letter-routing-key"] = work
                else:
                    arguments["x-dead-letter-exchange"] = self.delay_exchange(n - 1)
                name = self.delay_queue(queue, n)
                await channel.queue_declare(name, durable=True, arguments=arguments)
                await channel.queue_bind(
                    name, exchange, routing_key=delays.level_queue_pattern(n, qid)
                )
                if n == 0:
                    await channel.queue_bind(work, exchange, routing_key=delays.ready_pattern(qid))
                self._delay_levels[queue] = n


__all__ = ["CLASSIC", "MAX_PRIORITY_ARG", "QUORUM", "Topology", "priority_levels"]
