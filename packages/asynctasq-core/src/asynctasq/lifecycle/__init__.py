"""The task lifecycle: status, cancellation, progress, live workers and events.

* `status` / `TaskId.status`: where a tracked task (``track=True``) is (`TaskStatus`).
* `cancel` / `TaskId.cancel`: a queued task never runs, a running one is stopped.
* `current_task`: the running task's context (progress, cancellation flag).
* `list_workers`: the live workers; `events.subscribe`: the event stream.

Each is stored through an optional driver capability (`StatusStore`, `EventLog`,
`WorkerRegistry`); a driver without it says so when asked.
"""

from asynctasq.lifecycle.context import TaskContext, current_task
from asynctasq.lifecycle.control import CancelOutcome, cancel, list_tasks, list_workers, status
from asynctasq.lifecycle.events import Event, EventType, subscribe
from asynctasq.lifecycle.status import TaskState, TaskStatus
from asynctasq.lifecycle.workers import WorkerInfo

__all__ = [
    "CancelOutcome",
    "Event",
    "EventType",
    "TaskContext",
    "TaskState",
    "TaskStatus",
    "WorkerInfo",
    "cancel",
    "current_task",
    "list_tasks",
    "list_workers",
    "status",
    "subscribe",
]
