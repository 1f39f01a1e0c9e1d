"""A task being worked on: the delivery, its decoded envelope and the task instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asynctasq.core.envelope import Envelope
from asynctasq.core.headers import NO_HEADERS
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import Delivery
from asynctasq.lifecycle.context import TaskContext


@dataclass(slots=True)
class Job:
    """What middleware sees of a task run.

    Attributes:
        delivery: The leased message.
        envelope: The decoded envelope, None when the message could not be decoded.
        task: The task instance, None until it was built.
        started_at: Monotonic time the run started.
        state: Free-form storage for middleware (e.g. timers).
        context: What the running task sees as `current_task()`.
        cancel_requested: Someone asked to cancel this task while it ran.
        status: The last status record written for it (tracked tasks), in its stored form
            (see `asynctasq.lifecycle.status.KEYS`).
        progress: The last progress it reported: (fraction, message).
        finished: Its run has ended (late progress reports are dropped).
    """

    delivery: Delivery
    envelope: Envelope | None = None
    task: BaseTask[Any] | None = None
    started_at: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    context: TaskContext | None = None
    cancel_requested: bool = False
    status: dict[str, Any] | None = None
    progress: tuple[float, str | None] | None = None
    finished: bool = False

    @property
    def task_id(self) -> str:
        return self.delivery.task_id

    @property
    def task_name(self) -> str:
        return self.envelope.task if self.envelope is not None else "?"

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers dispatch-side middleware attached to the message
        (`Middleware.message_headers`); empty when there are none or the message could not
        be decoded. Checked by the worker: at most 32, names of at most 64 safe characters,
        string values of at most 1024 characters."""
        return self.envelope.headers if self.envelope is not None else NO_HEADERS

    @property
    def queue(self) -> str:
        return self.delivery.queue

    @property
    def attempts(self) -> int:
        """Runs before this one (0 on the first)."""
        return self.delivery.attempts
