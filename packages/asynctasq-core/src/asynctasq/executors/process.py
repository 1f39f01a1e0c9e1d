"""The process pool: CPU-bound tasks in child processes that can be killed and replaced.

pebble's `ProcessPool` does what `concurrent.futures` cannot: a task past its timeout (or
cancelled at shutdown) has its child process killed and a fresh one started in its place,
and ``max_tasks`` recycles children after that many tasks. Children get the task's envelope
bytes, not pickled objects, and rebuild the task exactly as the worker does.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from pebble import ProcessExpired

from asynctasq.config import Config, use_config
from asynctasq.core import envelope
from asynctasq.core.resolver import TaskResolver
from asynctasq.core.task import invoke, set_attempts
from asynctasq.errors import AsyncTasQError
from asynctasq.executors._context import task_process_context
from asynctasq.executors._pool import ProcessPool
from asynctasq.lifecycle.context import TaskContext, set_current
from asynctasq.serializer import set_import_guard
from asynctasq.utils.affinity import unpin_thread, unpinned_cpus
from asynctasq.utils.cpus import cpu_count
from asynctasq.utils.processes import die_with

log = logging.getLogger("asynctasq.worker")

_resolver: Any = None
_in_child = False


class TaskProcessDiedError(AsyncTasQError, ProcessExpired):
    """A process task's child died before the task finished: killed by a signal or exited.

    A failed run like any other (retried while attempts allow). Still a pebble
    ``ProcessExpired``, whose ``exitcode`` (negative: the signal's number) and ``pid`` it keeps.
    """


def child_died(name: str, expired: ProcessExpired) -> TaskProcessDiedError:
    """The error for task `name` whose child ended with `expired`, saying how it ended."""
    code = expired.exitcode
    if isinstance(code, int) and code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = "an unknown signal"
        how = f"was killed by signal {signame} ({-code})"
        if -code == signal.SIGKILL:
            # What users meet most: the kernel's out-of-memory killer, or a container limit.
            how += " (the out-of-memory killer sends SIGKILL: check the task's memory use)"
    elif isinstance(code, int):
        how = f"exited with code {code} (os._exit, or a crash in native code)"
    else:
        how = "ended with no exit status"
    return TaskProcessDiedError(  # type: ignore[no-untyped-call]  # pebble's __init__
        f"task {name}: its child process (pid {expired.pid}) {how} before the task finished",
        code,
        expired.pid,
    )


def in_task_child() -> bool:
    """Whether this process is a task child of a worker's process pool."""
    return _in_child


def _child_init(
    sys_path: list[str],
    allowed_roots: list[str],
    config: Config,
    environ: dict[str, str],
    imports: list[str],
    worker: int,
    cpus: list[int] | None = None,
) -> None:
    global _resolver, _in_child
    _in_child = True
    # A worker killed with SIGKILL leaves no task running: the broker hands its task out
    # again, and this one would run at the same time as that.
    die_with(worker)
    # Children fork from a long-lived forkserver: give them the worker's environment as it is
    # now, not as it was when the forkserver started.
    os.environ.clear()
    os.environ.update(environ)
    unpin_thread(cpus)  # a pinned worker's pool (forked from its pinned thread): every CPU
    sys.path[:] = sys_path
    use_config(config)
    _resolver = TaskResolver(allowed_roots)
    set_import_guard(_resolver.check_module)
    for module in imports:
        importlib.import_module(module)


_runner: asyncio.Runner | None = None


def _run_coroutine(coro: Any) -> Any:
    """Run `coro` on the child's one event loop, kept for its life (loop-bound pools live)."""
    global _runner
    if _runner is None:
        from asynctasq.runner import loop_factory

        _runner = asyncio.Runner(loop_factory=loop_factory())
    return _runner.run(coro)


def _child_run(payload: bytes, attempts: int) -> Any:
    """Entry point in the child: rebuild the task from its envelope and run it."""
    resolver = _resolver or TaskResolver()
    env = envelope.decode(payload)
    target = resolver.resolve(env.task, env.script)
    if env.async_refs:
        task = _run_coroutine(envelope.build_async(target, env))
    else:
        task = envelope.build(target, env)
    set_attempts(task, attempts)
    # The task's context in the child: its id and attempt; progress reports from a child are
    # not carried back to the worker (they are accepted and dropped), so a task may report
    # progress whichever way it runs.
    set_current(TaskContext(env.task_id, env.task, "", attempts))
    result = invoke(task)
    if inspect.isawaitable(result):
        result = _run_coroutine(result)
    return result


class ProcessExecutor:
    """A lazily started pool of child processes.

    Args:
        size: Number of children (default: CPU count).
        max_tasks_per_child: Recycle a child after this many tasks (None: never).
        allowed_roots: Where children may import task code from.
        config: The configuration children run with.
    """

    def __init__(
        self,
        size: int | None,
        max_tasks_per_child: int | None,
        allowed_roots: Sequence[str],
        config: Config,
        imports: Sequence[str] = (),
    ) -> None:
        self._imports = list(imports)
        self.size = size or cpu_count()
        self.max_tasks_per_child = max_tasks_per_child
        self._allowed_roots = list(allowed_roots)
        self._config = config
        self._pool: ProcessPool | None = None

    def _ensure_pool(self) -> ProcessPool:
        if self._pool is not None and not self._pool.active:
            # pebble gave up on it (BrokenProcessPool: a child died and no task of it was
            # known, a result could not be unpickled, one of its threads failed): it takes
            # no task any more, so the next ones get a new pool.
            log.warning("the process pool broke; starting a new one for the next tasks")
            _discard(self._pool)
            self._pool = None
        if self._pool is None:
            self._pool = ProcessPool(
                max_workers=self.size,
                max_tasks=self.max_tasks_per_child or 0,
                initializer=_child_init,
                initargs=(
                    list(sys.path),
                    self._allowed_roots,
                    self._config,
                    dict(os.environ),
                    self._imports,
                    os.getpid(),
                    sorted(unpinned_cpus() or ()),
                ),
                context=task_process_context(),
            )
        return self._pool

    async def run(
        self, payload: bytes, attempts: int, timeout: float | None, name: str = "(process task)"
    ) -> Any:
        """Run the task in `payload` in a child; kill the child if it passes `timeout`.

        Raises:
            TaskProcessDiedError: the child died before the task finished (task `name`).
        """
        future: Future[Any] = self._ensure_pool().schedule(
            _child_run, args=(payload, attempts), timeout=timeout
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # pebble kills the child running it
            raise
        except ProcessExpired as exc:
            if hasattr(exc, "traceback"):
                raise  # raised by the task's own code (pebble attaches the child's traceback)
            # pebble's own text is "Abnormal termination": say which task and how it ended.
            raise child_died(name, exc) from exc

    def close(self, *, kill: bool = False) -> None:
        """Stop the children: wait for running tasks, or kill them with `kill`."""
        if self._pool is None:
            return
        if kill:
            self._pool.stop()  # type: ignore[no-untyped-call]
        else:
            self._pool.close()  # type: ignore[no-untyped-call]
        self._pool.join(timeout=10)
        self._pool = None


def _discard(pool: ProcessPool) -> None:
    """Stop a broken pool's children and threads, without blocking the event loop."""

    def stop() -> None:
        pool.stop()  # type: ignore[no-untyped-call]
        pool.join(timeout=10)

    threading.Thread(target=stop, name="asynctasq-pool-discard", daemon=True).start()
