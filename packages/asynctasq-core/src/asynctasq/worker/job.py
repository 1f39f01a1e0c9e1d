"""A task being worked on: the delivery, its decoded envelope and the task instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asynctasq.core.envelope import Envelope
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import Delivery


@dataclass(slots=True)
class Job:
    """What middleware sees of a task run.

    Attributes:
        delivery: The leased message.
        envelope: The decoded envelope, None when the message could not be decoded.
        task: The task instance, None until it was built.
        started_at: Monotonic time the run started.
        state: Free-form storage for middleware (e.g. timers).
    """

    delivery: Delivery
    envelope: Envelope | None = None
    task: BaseTask[Any] | None = None
    started_at: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.delivery.task_id

    @property
    def task_name(self) -> str:
        return self.envelope.task if self.envelope is not None else "?"

    @property
    def queue(self) -> str:
        return self.delivery.queue

    @property
    def attempts(self) -> int:
        """Runs before this one (0 on the first)."""
        return self.delivery.attempts
