"""What tests may read of the in-memory driver: its messages, dead letters, and `join()`.

Tests assert on what was queued without reaching into the driver's private state (the shape
of which changes). Like dramatiq's ``StubBroker.join``, `join()` waits until a queue is idle,
while a worker runs alongside.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from asynctasq.drivers.base import DeadLetter

if TYPE_CHECKING:
    from asynctasq.drivers.memory import _State

MessageState = Literal["ready", "delayed", "in_flight"]
_STATES: tuple[MessageState, ...] = ("ready", "delayed", "in_flight")

EnqueueHook = Callable[[], Awaitable[None]]
enqueue_hooks: dict[str, EnqueueHook] = {}
"""Called (awaited) after every enqueue into a namespace: how `asynctasq.testing`'s eager
mode runs a dispatched task before ``dispatch()`` returns, without the driver knowing of
workers."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message the in-memory driver holds (queued or leased), in its stored form.

    `asynctasq.testing.decode_message` turns ``payload`` into the task name and arguments.

    Attributes:
        task_id: The task's id.
        queue: The queue it is on.
        payload: The envelope bytes, as dispatched.
        state: ``ready`` (can be fetched now), ``delayed`` (due later: a ``delay()`` or a
            retry's wait) or ``in_flight`` (leased to a worker).
        deliveries: How many times it was handed to a worker so far.
    """

    task_id: str
    queue: str
    payload: bytes
    state: MessageState
    deliveries: int


class MemoryInspection:
    """Read-only views of an in-memory driver's queues, for tests."""

    _s: _State
    namespace: str | None

    async def _after_enqueue(self) -> None:
        if self.namespace is not None:
            hook = enqueue_hooks.get(self.namespace)
            if hook is not None:
                await hook()

    def messages(
        self, queue: str | None = None, *, state: MessageState | None = None
    ) -> list[QueuedMessage]:
        """Messages not yet acknowledged or dead-lettered, oldest first.

        Args:
            queue: Only this queue (None: every queue).
            state: Only messages in this state (None: all).

        Raises:
            ValueError: `state` is not one of ``ready``, ``delayed``, ``in_flight``.
        """
        if state is not None and state not in _STATES:
            raise ValueError(f"state must be one of {', '.join(_STATES)}, got {state!r}")
        now = time.monotonic()
        due = {task_id: at for at, _, task_id in self._s.delayed}
        out: list[QueuedMessage] = []
        for record in list(self._s.records.values()):
            if queue is not None and record.queue != queue:
                continue
            if record.lease is not None:
                current: MessageState = "in_flight"
            elif due.get(record.task_id, 0.0) > now:
                current = "delayed"
            else:
                current = "ready"
            if state is None or state == current:
                out.append(
                    QueuedMessage(
                        record.task_id, record.queue, record.payload, current, record.deliveries
                    )
                )
        return out

    def queued(self, queue: str | None = None) -> list[QueuedMessage]:
        """Messages waiting for a worker (ready or delayed), oldest first."""
        return [m for m in self.messages(queue) if m.state != "in_flight"]

    def in_flight(self, queue: str | None = None) -> list[QueuedMessage]:
        """Messages leased to a worker now."""
        return self.messages(queue, state="in_flight")

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        """Every dead letter (of `queue`, or of all queues), oldest first."""
        return [d for d in list(self._s.dead.values()) if queue is None or d.queue == queue]

    def make_due(self, queue: str | None = None) -> int:
        """Make every delayed message (of `queue`, or of all queues) ready now, as if its
        delay had passed: tests need not wait for a ``delay()`` or a retry's backoff.

        Returns:
            How many messages were made ready.
        """
        moved = 0
        kept: list[tuple[float, int, str]] = []
        for due, seq, task_id in self._s.delayed:
            record = self._s.records.get(task_id)
            if record is not None and (queue is None or record.queue == queue):
                due = float("-inf")
                moved += 1
            kept.append((due, seq, task_id))
        heapq.heapify(kept)
        self._s.delayed[:] = kept
        if moved and self._s.changed is not None:
            self._s.changed.set()
        return moved

    def clear(self) -> None:
        """Forget every message, lease, dead letter and kept result of this driver's
        namespace (status records and event logs stay)."""
        self._s.records.clear()
        self._s.ready.clear()
        self._s.delayed.clear()
        self._s.leases.clear()
        self._s.dead.clear()
        self._s.results.clear()

    def idle(self, queue: str | None = None) -> bool:
        """Whether nothing is queued, delayed or in flight (on `queue`, or anywhere)."""
        if queue is None:
            return not self._s.records
        return not any(r.queue == queue for r in list(self._s.records.values()))

    async def join(self, queue: str | None = None, *, timeout: float = 10.0) -> None:
        """Wait until `queue` (None: every queue) is idle: nothing ready, delayed or leased.

        Something else must be working on the queue meanwhile (a `Worker` running in another
        asyncio task); a task dead-lettered counts as done.

        Args:
            queue: The queue to wait for, or None for all of them.
            timeout: Seconds to wait at most.

        Raises:
            TimeoutError: the queue was still busy after `timeout` seconds (the message says
                how many messages were left, in which states).
            ValueError: `timeout` is not a positive number.
        """
        if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        deadline = time.monotonic() + timeout
        pause = 0.001
        while not self.idle(queue):
            if time.monotonic() >= deadline:
                left = self.messages(queue)
                counts = ", ".join(f"{sum(1 for m in left if m.state == s)} {s}" for s in _STATES)
                where = "any queue" if queue is None else f"queue {queue!r}"
                raise TimeoutError(
                    f"{where} still busy after {timeout} s ({counts}): is a worker running on it?"
                )
            # Acks do not wake anyone up in this driver: poll, a little slower each time.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)
