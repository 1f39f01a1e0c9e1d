"""AsyncTasQ: an async-first task queue.

from asynctasq import task, init, run

@task(queue="emails")
async def send_email(to: str) -> None: ...

init({"driver": "redis"})
run(send_email(to="a@example.com").dispatch())
"""

from typing import TYPE_CHECKING, Any

from asynctasq import events
from asynctasq.config import get_config, init, set_global_config
from asynctasq.core.dispatch import dispatch_many
from asynctasq.core.function import FunctionTask, TaskFunction, task
from asynctasq.core.results import TaskId, result
from asynctasq.core.sync import dispatch_many_sync
from asynctasq.core.task import AsyncProcessTask, SyncProcessTask, SyncTask, Task
from asynctasq.lifecycle import (
    CancelOutcome,
    TaskContext,
    TaskState,
    TaskStatus,
    WorkerInfo,
    cancel,
    current_task,
    list_tasks,
    list_workers,
    status,
)
from asynctasq.middleware import Middleware
from asynctasq.runner import run
from asynctasq.schedules import cron, every, schedule
from asynctasq.workflows import WorkflowHandle, chain, chord, group

if TYPE_CHECKING:
    from asynctasq.utils.console import print

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Rich (and Pygments behind it) costs ~0.3 s to import: load it when `print` is used.
    if name == "print":
        from asynctasq.utils.console import print

        return print
    raise AttributeError(f"module 'asynctasq' has no attribute {name!r}")


__all__ = [
    "AsyncProcessTask",
    "CancelOutcome",
    "FunctionTask",
    "Middleware",
    "SyncProcessTask",
    "SyncTask",
    "Task",
    "TaskContext",
    "TaskFunction",
    "TaskId",
    "TaskState",
    "TaskStatus",
    "WorkerInfo",
    "WorkflowHandle",
    "__version__",
    "cancel",
    "chain",
    "chord",
    "cron",
    "current_task",
    "dispatch_many",
    "dispatch_many_sync",
    "events",
    "every",
    "get_config",
    "group",
    "init",
    "list_tasks",
    "list_workers",
    "print",
    "result",
    "run",
    "schedule",
    "set_global_config",
    "status",
    "task",
]
