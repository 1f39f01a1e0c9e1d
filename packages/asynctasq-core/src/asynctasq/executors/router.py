"""Where a task runs: the event loop, a thread pool, or a child process."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Sequence
from typing import Any

from asynctasq.config import Config
from asynctasq.core.task import BaseTask, Execution, invoke
from asynctasq.errors import TaskTimeoutError
from asynctasq.executors.process import ProcessExecutor
from asynctasq.executors.thread_call import ThreadCall
from asynctasq.executors.threads import TASK_THREAD_PREFIX, DaemonThreadPool
from asynctasq.lifecycle.context import running_task

log = logging.getLogger("asynctasq.worker")

THREAD_STOP_WAIT = 30.0
"""Seconds a thread past its task's timeout may take to return before the run fails without
it (its retry then possibly beside it)."""


class ExecutorRouter:
    """Runs a task where its kind says, stopping it at its timeout.

    * async: awaited in the loop; at the timeout it is cancelled.
    * sync (thread): run in a thread pool with the caller's context variables; at the timeout
      its ``cancel_requested`` turns true and the run fails once the thread returned (or
      `THREAD_STOP_WAIT` passed): Python cannot stop a thread safely.
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
        if kind == "thread":
            return await self._in_thread(task, timeout, name)
        if timeout is None:  # the common case, without a timeout scope
            return await invoke(task)
        try:
            async with asyncio.timeout(timeout) as scope:
                result = await invoke(task)
        except TimeoutError as exc:
            if scope.expired():
                raise TaskTimeoutError(
                    f"task {name} ran longer than its timeout of {timeout} s and was stopped"
                ) from exc
            raise
        if scope.expired():  # the cancellation reached it, and it returned all the same
            raise TaskTimeoutError(
                f"task {name} ran longer than its timeout of {timeout} s: it caught the "
                "cancellation that stops it there and returned"
            )
        deadline = scope.when()
        if deadline is not None and asyncio.get_running_loop().time() > deadline:
            # It ended past its deadline without the cancellation reaching it: it held the
            # event loop (time.sleep, sync I/O), which nothing in the process can interrupt.
            log.warning(
                "task %s ended past its timeout of %s s, which could not stop it: the event "
                "loop was held (by this task or another of this worker: time.sleep, sync I/O, "
                "long computations), which delays every task; run blocking code in a def task "
                "(a thread) or with process=True",
                name,
                timeout,
            )
        return result

    async def _in_thread(self, task: BaseTask[Any], timeout: float | None, name: str) -> Any:
        """Run `task` on the thread pool. Its timeout counts from when a thread takes it: a
        wait for a free thread is not part of the run, but is bounded by the timeout too (a
        pool whose threads are all stuck must not hold the task, and its worker, for ever).
        At its timeout its ``cancel_requested`` turns true (a thread cannot be stopped
        safely, see `asynctasq.executors.thread_call`) and the run fails once the thread
        has returned, or `THREAD_STOP_WAIT` passed, so its retry does not run beside it. One
        given up on while still waiting for a free thread never starts."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] | None = None
        on_start = None
        if timeout is not None:
            started = loop.create_future()
            on_start = functools.partial(loop.call_soon_threadsafe, _resolve, started)
        call = ThreadCall(functools.partial(contextvars.copy_context().run, invoke, task), on_start)
        running = loop.run_in_executor(self._threads, call)
        # Read whatever it ends with, so an end nobody awaits is not reported as an
        # exception never retrieved.
        running.add_done_callback(_retrieve)
        scope: asyncio.Timeout | None = None
        try:
            if started is not None:
                await asyncio.wait(
                    (started, running), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not call.give_up():
                    raise TaskTimeoutError(
                        f"task {name} waited longer than its timeout of {timeout} s for a "
                        "free thread and did not run (every thread of the pool was busy)"
                    )
            async with asyncio.timeout(timeout) as scope:
                return await asyncio.shield(running)
        except TimeoutError:
            if scope is None or not scope.expired():  # the body's own, or no thread came
                raise
            _ask_to_stop()
            # asyncio.wait, not a timeout scope: that would cancel `running` at its end and
            # make a thread still running look finished.
            await asyncio.wait({running}, timeout=THREAD_STOP_WAIT)
            if running.done():
                raise TaskTimeoutError(
                    f"task {name} ran longer than its timeout of {timeout} s (its thread "
                    "ran on to its end)"
                ) from None
            log.warning(
                "task %s: its thread still runs %.0f s past its timeout; its retry may run "
                "beside it",
                name,
                THREAD_STOP_WAIT,
            )
            raise TaskTimeoutError(
                f"task {name} ran longer than its timeout of {timeout} s; its thread is still "
                f"running {THREAD_STOP_WAIT:.0f} s later, and runs on in the background"
            ) from None
        except asyncio.CancelledError:
            if call.give_up():
                _ask_to_stop()  # given back: a task that polls cancel_requested stops
            raise

    def close(self, *, kill: bool = False) -> None:
        """Release the pools."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.processes.close(kill=kill)


def _ask_to_stop() -> None:
    """Ask the running task to stop (its thread shares the context object)."""
    context = running_task()
    if context is not None:
        context.ask_to_stop()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
