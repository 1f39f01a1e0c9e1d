"""Deliveries handed to the driver's consumer in the channel's reader, without a task each.

aiormq runs every consumer callback as a new task, so a delivery reaches the consumer one
loop iteration (and a task's setup) after its frames were read, on the dispatch-to-start path
of every task. The driver's callback only files the message in its buffer and wakes the
waiting dequeue, which never blocks: `Channel` calls such a callback (`at_once`) directly.
Any other consumer is run by aiormq as before, so other users of aiormq in the process see
no change; an `at_once` callback still works on aiormq's own channel, as a task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from types import FunctionType
from typing import Any

import aiormq.channel
import aiormq.connection
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

log = logging.getLogger("aiormq.channel")  # where aiormq reports a consumer's failure


_AT_ONCE = "_asynctasq_at_once"

ConsumerCallback = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


def at_once(deliver: Callable[[DeliveredMessage], None]) -> ConsumerCallback:
    """The consumer callback for `deliver`, which must not block: `Channel` calls `deliver`
    in its reader; aiormq's own channel runs the callback as a task, as any other.

    A coroutine function, not an object: aiormq wraps any other callable in one of its own.
    """

    async def consumer(message: DeliveredMessage) -> None:
        deliver(message)

    setattr(consumer, _AT_ONCE, deliver)
    return consumer


def _deliver_of(consumer: object) -> Callable[[DeliveredMessage], None] | None:
    """The `deliver` of an `at_once` callback, else None.

    Read from the function's own attributes only: `getattr` on another library's consumer
    (a mock, an object with `__getattr__`) could make one up and take its messages.
    """
    if type(consumer) is not FunctionType:
        return None
    deliver: Callable[[DeliveredMessage], None] | None = consumer.__dict__.get(_AT_ONCE)
    return deliver


class Channel(aiormq.channel.Channel):
    """aiormq's channel, calling `at_once` consumers in its reader (see the module docstring)."""

    async def _on_deliver_frame(self, frame: Basic.Deliver) -> None:
        tag = frame.consumer_tag
        if tag is None or _deliver_of(self.consumers.get(tag)) is None:
            await super()._on_deliver_frame(frame)
            return
        header = await self._get_frame()
        if not isinstance(header, ContentHeader):  # as aiormq's own reading refuses it
            raise ValueError(f"Unexpected frame {header!r} instead of ContentHeader", header)
        message = await self._read_content(frame, header)
        consumer = self.consumers.get(tag)  # cancelled meanwhile: dropped, as aiormq does
        deliver = _deliver_of(consumer)
        if deliver is None:
            if consumer is not None:  # replaced meanwhile by another consumer with this tag
                task = self.create_task(consumer(message))
                task.add_done_callback(self._on_consumer_done)
            return
        try:
            deliver(message)
        except Exception:  # as aiormq treats a failed consumer task: logged, reading goes on
            log.exception("Consumer callback failed")


_USED = ("_on_deliver_frame", "_get_frame", "_read_content", "_on_consumer_done")


def install() -> None:
    """Make aiormq's connections open `Channel` (once per process).

    Only with an aiormq that has the parts `Channel` uses (they are not its public
    interface): with another, deliveries run as tasks, as aiormq runs them.
    """
    base = aiormq.channel.Channel
    if not all(hasattr(base, part) for part in _USED):
        return
    # The name aiormq's `Connection.channel` builds channels with (imported there, so not
    # exported as part of the module's interface).
    name = "Channel"
    if not issubclass(getattr(aiormq.connection, name), Channel):
        setattr(aiormq.connection, name, Channel)


__all__ = ["Channel", "at_once", "install"]
