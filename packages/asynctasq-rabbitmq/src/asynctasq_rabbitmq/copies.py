"""Recognising the broker's copy of a delivery whose connection was lost.

RabbitMQ puts every unacknowledged message of a lost connection back, counted as one more
delivery, and hands it out again. The process that held it knows what became of it (it
finished, it never started) and should settle or count the copy accordingly. A copy is
recognised by its task id *and* its count, exactly one more than the lost delivery's, within
`WINDOW` seconds of the loss being noticed: a later message with that id (a retry of the
dead letter, starting from zero; another worker's retry, counted further) is not a copy and
is handed out as usual.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

V = TypeVar("V")

WINDOW = 120.0
"""Seconds a lost delivery is remembered: its copy comes back as soon as the broker notices
the loss, to this process or to another one (then it is never seen here)."""
MAX_REMEMBERED = 10_000
"""Most lost deliveries remembered at once (the oldest go first past it)."""


class LostCopies(Generic[V]):
    """What became of lost deliveries, by task id, until their copies come back.

    Attributes:
        pending: Task id -> (count, remembered until, value). Read its truth on hot paths
            (every delivery) instead of calling a method: empty but after a lost connection.
    """

    def __init__(self) -> None:
        self.pending: dict[str, tuple[int, float, V]] = {}

    def remember(self, task_id: str, attempts: int, value: V) -> None:
        """Note a lost delivery of `task_id` counted `attempts`, and what became of it."""
        lost = self.pending
        lost.pop(task_id, None)
        while len(lost) >= MAX_REMEMBERED:
            del lost[next(iter(lost))]
        lost[task_id] = (attempts, time.monotonic() + WINDOW, value)

    def peek(self, task_id: str, attempts: int) -> tuple[bool, V | None]:
        """Whether a delivery of `task_id` counted `attempts` is the copy of a remembered
        one, and what became of that one."""
        entry = self.pending.get(task_id)
        if entry is None:
            return False, None
        before, until, value = entry
        if time.monotonic() > until:
            del self.pending[task_id]
            return False, None
        return attempts == before + 1, value

    def forget(self, task_id: str) -> None:
        """Drop what is remembered of `task_id` (its copy was dealt with)."""
        self.pending.pop(task_id, None)


__all__ = ["MAX_REMEMBERED", "WINDOW", "LostCopies"]
