"""Where a task runs: the event loop, a thread pool, or a child process."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Sequence
from typing import Any

from asynctasq.config import Config
from asynctasq.core.task import BaseTask, Execution, invoke
from asynctasq.errors import TaskTimeoutError
from asynctasq.executors.process import ProcessExecutor
from asynctasq.executors.threads import TASK_THREAD_PREFIX, DaemonThreadPool


class ExecutorRouter:
    """Runs a task where its kind says, stopping it at its timeout.

    * async: awaited in the loop; at the timeout it is cancelled.
    * sync (thread): run in a thread pool with the caller's context variables; at the timeout
      the worker stops waiting and fails the run (Python cannot stop a thread; the thread
      finishes in the background).
    * process: run in a child; at the timeout the child is killed and replaced.
    """

    def __init__(
        self,
        *,
        thread_pool_size: int | None,
        process_pool_size: int | None,
        process_max_tasks_per_child: int | None,
        allowed_roots: Sequence[str],
        config: Config,
        imports: Sequence[str] = (),
    ) -> None:
        self._threads = DaemonThreadPool(thread_pool_size, thread_name_prefix=TASK_THREAD_PREFIX)
        self.processes = ProcessExecutor(
            process_pool_size, process_max_tasks_per_child, allowed_roots, config, imports
        )

    async def run(
        self,
        kind: Execution,
        task: BaseTask[Any] | None,
        payload: bytes,
        attempts: int,
        timeout: float | None,
        name: str,
    ) -> Any:
        """Run a task and return its result.

        Args:
            kind: Where it runs (the task's execution mode).
            task: The task instance; None for a process task, which the child builds from
                `payload` (its message bytes).
            payload: The message bytes.
            attempts: Runs before this one.
            timeout: Seconds it may run, or None.
            name: The task's name, for the timeout error.
        """
        if kind == "process":
            try:
                return await self.processes.run(payload, attempts, timeout, name)
            except TimeoutError as exc:
                raise TaskTimeoutError(
                    f"task {name} ran longer than its timeout of {timeout} s and was stopped"
                ) from exc
        assert task is not None
        if kind == "async" and timeout is None:  # the common case, without a timeout scope
            return await invoke(task)
        try:
            if kind == "async":
                async with asyncio.timeout(timeout) as scope:
                    return await invoke(task)
            if kind == "thread":
                loop = asyncio.get_running_loop()
                call = functools.partial(contextvars.copy_context().run, invoke, task)
                async with asyncio.timeout(timeout) as scope:
                    return await loop.run_in_executor(self._threads, call)
        except TimeoutError as exc:
            if scope.expired():
                raise TaskTimeoutError(
                    f"task {name} ran longer than its timeout of {timeout} s and was stopped"
                ) from exc
            raise

    def close(self, *, kill: bool = False) -> None:
        """Release the pools."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.processes.close(kill=kill)
