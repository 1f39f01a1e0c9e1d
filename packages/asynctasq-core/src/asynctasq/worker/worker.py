"""The worker: takes leased tasks from a driver, runs them, and settles every one.

Guarantees, with any driver that keeps the contract:

* a task is acknowledged only after it finished; a worker that dies loses nothing (the lease
  expires and the task runs again);
* a failed run is retried (the task's delay, fixed or exponential) until its attempts are
  used up or ``should_retry`` says no; then it is dead-lettered with its error and its
  ``failed`` hook is called once;
* a message that cannot be decoded, or names code the worker may not load, is dead-lettered
  without running anything;
* on SIGTERM/SIGINT the worker stops taking work, waits for running tasks up to its shutdown
  deadline, and gives back what did not finish; a second signal stops at once;
* broker errors are logged and retried with backoff; the loop never dies of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import importlib
import inspect
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asynctasq.background import cancel_and_wait
from asynctasq.config import Config, get_config
from asynctasq.core import envelope
from asynctasq.core.function import TaskFunction
from asynctasq.core.options import check_queue, is_positive_seconds
from asynctasq.core.resolver import TaskResolver
from asynctasq.core.task import BaseTask, Execution, set_attempts
from asynctasq.drivers.base import (
    AckingDequeue,
    Delivery,
    Driver,
    EventLog,
    Failure,
    QueueNameRule,
    StatusStore,
    WorkerRegistry,
)
from asynctasq.drivers.connections import build_driver
from asynctasq.errors import (
    ForbiddenTaskError,
    MalformedMessageError,
    PermanentError,
    TaskAbortedError,
    TaskLostError,
    TaskNotFoundError,
)
from asynctasq.executors.process import in_task_child
from asynctasq.executors.router import ExecutorRouter
from asynctasq.lifecycle.context import TaskContext, reset_current, set_current
from asynctasq.lifecycle.workers import WorkerInfo
from asynctasq.middleware import Middleware, call_hooks, dispatch_middleware
from asynctasq.serializer import DeserializationError, get_import_guard, set_import_guard
from asynctasq.supervisor.ran import RAN_VARIABLE, report_ran
from asynctasq.utils import affinity
from asynctasq.utils.affinity import unpin_thread
from asynctasq.worker import limits, outcomes
from asynctasq.worker.failures import brief, clip, failure_from, printable
from asynctasq.worker.health import HealthFile
from asynctasq.worker.job import Job
from asynctasq.worker.leases import LeaseKeeper
from asynctasq.worker.lifecycle import Lifecycle, new_worker_id, stop_quietly
from asynctasq.worker.retry import retry_delay
from asynctasq.worker.signals import ABORT_SIGNAL, SIGNAL_ECHO
from asynctasq.worker.stall import STALL_GRACE, StallReport
from asynctasq.worker.task_log import TaskLog
from asynctasq.worker.timed import TimedTasks
from asynctasq.worker.unserved import note_unserved_queues
from asynctasq.workflows import runner as workflow_steps

if TYPE_CHECKING:
    from asynctasq.schedules.scheduler import Scheduler

CANCEL_WAIT = 10.0
"""Seconds a stopping worker waits for its cancelled tasks to end before it goes on."""
BURST_RETRY_WAIT = 10.0
"""Seconds ahead a burst run's own retries may be due and still be waited for."""

log = logging.getLogger("asynctasq.worker")

# A message failing with one of these can never run: dead-letter it at once. A task that is
# merely not found (not deployed here yet) is retried like a failed run instead.
_NEVER_RUNNABLE = (MalformedMessageError, DeserializationError, PermanentError)
NOT_FOUND_RETRY_DELAY = 5.0
"""Shortest delay before a task whose code was not found is tried again."""
_REPLAY_HINT = (
    " (once the code is deployed, replay it with `asynctasq dead-letters retry <task id>`)"
)


def _replay_hint(exc: BaseException) -> str:
    """How to run a dead-lettered task again, where replaying the same message can work:
    not for a name the worker refuses (it would be refused again)."""
    if isinstance(exc, ForbiddenTaskError) or not isinstance(
        exc, TaskNotFoundError | TaskLostError
    ):
        return ""
    return _REPLAY_HINT


@dataclass(slots=True)
class WorkerStats:
    """Counters since the worker started."""

    processed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    cancelled: int = 0
    expired: int = 0
    deferred: int = 0
    """Runs that found their concurrency or rate limit full and were put back to wait."""


class _Backoff:
    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first, self.cap, self.current = first, cap, 0.0

    def next(self) -> float:
        self.current = self.first if self.current == 0 else min(self.current * 2, self.cap)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class Worker:
    """Runs tasks from `queues` with at most `concurrency` at a time.

    Every argument left as None comes from the configuration (``worker`` section).

    Args:
        driver: A driver instance, a driver name, or None for the configured driver.
        queues: Queue names, served fairly (the order rotates on every fetch).
        concurrency: Most tasks running at once.
        shutdown_timeout: Seconds running tasks get to finish after a stop request.
        burst: Exit once the queues are empty instead of waiting for work; a retry this
            worker scheduled for a failed run, due within `BURST_RETRY_WAIT` seconds, is
            waited for.
        process_pool_size: Child processes for ``process=True`` tasks (default: CPU count).
        process_max_tasks_per_child: Recycle a child after this many tasks.
        thread_pool_size: Threads for sync tasks (default: 32).
        middleware: Hooks around the worker's events, in order.
        allowed_roots: Directories task code may be imported from (default: the cwd).
        poll_wait: Longest a single fetch waits for work.
        install_signal_handlers: Handle SIGTERM/SIGINT (only in the main thread).
        imports: Modules to import at start-up (task modules, set-up such as
            ``django.setup()``), in the worker and in each process-pool child.
        events: Publish task and worker events (when the driver keeps an event log).
        heartbeat_interval: Seconds between the worker's heartbeats in the registry.
        prefetch: Messages taken beyond the free slots and started as slots free up, so short
            tasks never wait for a fetch (default ``worker.prefetch``, 0); their leases are
            kept while they wait, and a stop gives them back without counting an attempt.
        schedules: Run the scheduler beside the worker: dispatch the ticks of the schedules
            its imports declare, once across all workers doing so (`asynctasq.schedule`).
    """

    def __init__(
        self,
        driver: Driver | str | None = None,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        shutdown_timeout: float | None = None,
        burst: bool = False,
        process_pool_size: int | None = None,
        process_max_tasks_per_child: int | None = None,
        thread_pool_size: int | None = None,
        middleware: Sequence[Middleware] = (),
        allowed_roots: Sequence[str] | None = None,
        poll_wait: float | None = None,
        install_signal_handlers: bool = True,
        imports: Sequence[str] | None = None,
        config: Config | None = None,
        events: bool | None = None,
        heartbeat_interval: float | None = None,
        schedules: bool | None = None,
        prefetch: int | None = None,
    ) -> None:
        self.config = config or get_config()
        ws = self.config.worker
        self.queues = list(queues if queues is not None else ws.queues)
        if not self.queues:
            raise ValueError(f"queues must name at least one queue, got {queues!r}")
        for queue in self.queues:
            check_queue(queue, "queues")
        self.concurrency = concurrency if concurrency is not None else ws.concurrency
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        self.shutdown_timeout = (
            shutdown_timeout if shutdown_timeout is not None else ws.shutdown_timeout
        )
        self.burst = burst
        # A burst run's own retries it waits for: task id -> monotonic time it waits until.
        self._burst_retries: dict[str, float] = {}
        self.poll_wait = poll_wait if poll_wait is not None else ws.poll_wait
        own = list(middleware)
        # Process-wide middleware (add_middleware) first: it wraps the worker's own.
        self.middleware = [m for m in dispatch_middleware() if m not in own] + own
        self.allowed_roots = list(allowed_roots if allowed_roots is not None else ws.allowed_roots)
        self.install_signal_handlers = install_signal_handlers
        self.imports = list(imports if imports is not None else ws.imports)
        self._driver_spec = driver
        self._owns_driver = not (driver is not None and not isinstance(driver, str))
        self.driver: Driver | None = None if self._owns_driver else driver  # type: ignore[assignment]
        self._router_settings = {
            "thread_pool_size": thread_pool_size or ws.thread_pool_size,
            "process_pool_size": process_pool_size or ws.process_pool_size,
            "process_max_tasks_per_child": (
                process_max_tasks_per_child or ws.process_max_tasks_per_child
            ),
        }
        self.stats = WorkerStats()
        self.unstoppable = 0
        """Tasks still running after the stop cancelled them (they catch the cancellation):
        their leases are no longer renewed, so the process should end (see `run`)."""
        # Under a supervisor: say so once the first task starts (see asynctasq.supervisor.ran).
        self._report_ran = RAN_VARIABLE in os.environ
        self._running: dict[asyncio.Task[None], Job] = {}
        # Taken ahead of free slots (`prefetch`): started as slots free, leases kept meanwhile.
        self._waiting: collections.deque[Delivery] = collections.deque()
        self.prefetch = prefetch if prefetch is not None else ws.prefetch
        if not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ValueError(f"prefetch must be a whole number >= 0, got {self.prefetch!r}")
        self._stopping = False
        self._aborting = False
        self._signalled_at = -math.inf
        # Running tasks get `shutdown_timeout` from the stop request, not from whenever the
        # fetch in flight returns (up to `poll_wait` later): a timer holds the deadline.
        self._stop_deadline: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # while `run` runs
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._cancelled_at_deadline: set[asyncio.Task[None]] = set()
        self._slot_free: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._ack_buffer: list[Delivery] = []
        self._ack_scheduled = False
        # The fetch loop waits for a free slot, and the driver takes acks with a dequeue:
        # acks wait for the fetch the finishing task's freed slot brings (one round-trip).
        self._acks_ride = False
        self._background: set[asyncio.Task[Any]] = set()
        self._given_back: set[str] = set()  # task ids given back (counted once each)
        self._signals_installed: list[int] = []
        self._stall: StallReport | None = None
        self._resolver: TaskResolver | None = None
        self._router: ExecutorRouter | None = None
        self._leases: LeaseKeeper | None = None
        self.events = bool(events if events is not None else self.config.events.enabled)
        self.heartbeat_interval = float(
            heartbeat_interval if heartbeat_interval is not None else ws.heartbeat_interval
        )
        if not self.heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be > 0 seconds, got {heartbeat_interval!r}")
        self.worker_id = new_worker_id()
        self.started_at = time.time()
        self._lifecycle: Lifecycle | None = None
        self._by_id: dict[str, tuple[asyncio.Task[None], Job]] = {}
        self._timed = TimedTasks(self)
        self.last_fetch_at: float | None = None
        """Monotonic time the last fetch from the broker returned (for readiness probes)."""
        self.last_fetch_error: str | None = None
        """Why the last fetch failed; None once one went through again."""
        if ws.log_tasks:
            self.middleware.append(TaskLog())
        if ws.health_file:
            self.middleware.append(HealthFile(ws.health_file))
        self.schedules = bool(schedules if schedules is not None else ws.schedules)

    # -- control ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop taking work; running tasks get `shutdown_timeout` seconds to finish.

        Safe to call from another thread: the request is then passed to the worker's loop.
        """
        loop = self._loop
        if loop is not None and not _in_loop(loop):
            try:
                loop.call_soon_threadsafe(self.request_stop)
                return
            except RuntimeError:  # closed: the worker has stopped already
                loop = None
        self._stopping = True
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.shutdown_timeout
            if loop is not None:  # running: `run` cancels the timer when it ends
                self._deadline_timer = loop.call_later(self.shutdown_timeout, self._at_deadline)
        if self._slot_free is not None:
            self._slot_free.set()
        if self._stop_event is not None:
            self._stop_event.set()

    def _at_deadline(self) -> None:
        """The shutdown deadline passed while the fetch loop still waited on the broker."""
        self._deadline_timer = None
        running = [task for task in self._running if not task.done()]
        if running and not self._aborting:
            _log_given_back_at_deadline(len(running))
            for task in running:
                self._cancelled_at_deadline.add(task)
                task.cancel()

    def abort(self) -> None:
        """Stop now: cancel running tasks and give them back."""
        self._aborting = True
        self.request_stop()
        for task in list(self._running):
            task.cancel()

    def _on_signal(self, signum: int) -> None:
        now = time.monotonic()
        if self._stopping and now - self._signalled_at < SIGNAL_ECHO:
            # The same stop delivered twice (see SIGNAL_ECHO).
            log.info(
                "%s again within %.1f s: taken as the same stop (send it again to stop now)",
                signal.Signals(signum).name,
                SIGNAL_ECHO,
            )
            return
        self._signalled_at = now
        if self._stopping:
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            self.abort()
        else:
            log.info(
                "%s: finishing running tasks (up to %.0f s); send again to stop now",
                signal.Signals(signum).name,
                self.shutdown_timeout,
            )
            self.request_stop()
            # Whoever sent the signal kills this process if it does not stop: before that,
            # say what it is stuck on.
            self._stall = StallReport(self.shutdown_timeout + STALL_GRACE)
            self._stall.arm(asyncio.get_running_loop())

    def _on_abort_signal(self, signum: int) -> None:
        log.warning("%s from the supervisor: stopping now", signal.Signals(signum).name)
        self.abort()

    def _retry_scheduled(self, task_id: str, delay: float) -> None:
        """Note a retry of a failed run this worker scheduled `delay` seconds ahead: a burst
        run waits for it when it is due within `BURST_RETRY_WAIT` seconds, until it is
        taken, so a short retry is not left behind in a queue it calls empty. (Not a wait for
        a limit, which another worker's long task may hold, nor a retry of code not deployed
        here: both would keep a burst run going for as long as they last.) Each run retries
        a bounded number of times, so the wait ends."""
        if self.burst and delay <= BURST_RETRY_WAIT:
            # slack for a broker that rounds delays up (SQS: whole seconds) and for polling
            self._burst_retries[task_id] = time.monotonic() + delay + 2.0

    def _awaits_retries(self) -> bool:
        """Whether a burst run still waits for a retry it scheduled (one not taken yet)."""
        now = time.monotonic()
        for task_id in [t for t, until in self._burst_retries.items() if until <= now]:
            del self._burst_retries[task_id]
        return bool(self._burst_retries)

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stopping

    @property
    def aborted(self) -> bool:
        """Whether the worker was told to stop at once (second signal or `abort()`)."""
        return self._aborting

    @property
    def prefetched(self) -> int:
        """Messages taken ahead of free slots (``prefetch``), waiting to start."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Tasks running now."""
        return len(self._running)

    # -- main loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Work until stopped (or, in burst mode, until the queues are empty).

        When it returns with `unstoppable` above 0, tasks that caught their cancellation
        are still running, their leases no longer renewed: end the process (``os._exit``)
        rather than let them finish while another worker runs them again.

        Raises:
            Exception: the driver could not connect at start-up (a configuration or
                connectivity problem is reported at once rather than retried silently).
        """
        if in_task_child():
            raise RuntimeError(
                "a worker cannot start inside a task's child process: the module that defines "
                "the task starts a worker when imported; put that code under "
                "`if __name__ == '__main__':`"
            )
        loop = self._loop = asyncio.get_running_loop()
        self._slot_free = asyncio.Event()
        self._stop_event = asyncio.Event()
        if self.driver is None:
            spec = self._driver_spec if isinstance(self._driver_spec, str) else None
            self.driver = build_driver(spec, self.config)
        driver = self.driver
        if isinstance(driver, QueueNameRule):
            for queue in self.queues:
                driver.check_queue_name(queue)
        # From the first moment: a SIGTERM during a slow start-up (connecting, importing the
        # task modules) is a stop, not the default action that kills the process.
        self._install_signals(loop)
        try:
            await driver.connect()
        except BaseException:
            self._remove_signals(loop)
            raise
        keeper: asyncio.Task[None] | None = None
        unserved: asyncio.Task[None] | None = None
        scheduler: Scheduler | None = None
        previous_guard = get_import_guard()
        booted: list[Middleware] = []
        # Everything set up below is undone in `finally`, whatever start-up step fails (an
        # import, a boot hook): no guard left installed, no lease task pending, no pool alive.
        try:
            if self._stopping:  # asked while connecting: imports and boot hooks would delay it
                return
            self._resolver = TaskResolver(self.allowed_roots)
            # Payloads may name Enum and model classes to import: vet them like task code.
            set_import_guard(self._resolver.check_module)
            for module in self.imports:
                importlib.import_module(module)
            self._router = ExecutorRouter(
                allowed_roots=[str(r) for r in self._resolver.allowed_roots],
                imports=self.imports,
                config=self.config,
                **self._router_settings,
            )
            self._leases = LeaseKeeper(driver)
            keeper = loop.create_task(self._leases.run(), name="asynctasq-leases")
            if isinstance(driver, StatusStore | EventLog | WorkerRegistry):
                self._lifecycle = Lifecycle(
                    driver,
                    worker_id=self.worker_id,
                    describe=self.describe,
                    on_cancel=self._cancel_running,
                    events_on=self.events,
                    heartbeat_interval=self.heartbeat_interval,
                    events_retention=self.config.events.retention,
                )
                await self._lifecycle.start()
            for m in self.middleware:
                # May be a coroutine (initialise an ORM, open a pool); an error stops start-up.
                await _maybe_await(m.before_worker_boot(self))
                booted.append(m)
            if self.schedules:  # a separate component: nothing on the fetch path
                from asynctasq.schedules.scheduler import Scheduler

                scheduler = Scheduler.for_worker(self, driver)
                scheduler.start(self._stop_event)
            _pin_as_planned(loop)
            unserved = loop.create_task(note_unserved_queues(driver, self.queues))
            await self._fetch_loop(driver)
        finally:
            try:
                if unserved is not None:
                    await cancel_and_wait([unserved])
                if scheduler is not None:
                    await scheduler.stop()
                await self._shutdown(driver)
                await stop_quietly(self._lifecycle)
                if self._background:  # acks the lifecycle's last flush let go
                    await asyncio.wait(list(self._background), timeout=10)
                if keeper is not None:
                    await cancel_and_wait([keeper])
                self._remove_signals(loop)
                set_import_guard(previous_guard)
                if self._router is not None:
                    self._router.close(kill=self._aborting)
                if self._owns_driver:
                    await driver.close()
                # Only what booted is shut down: a stop while connecting, or a failing boot
                # hook, leaves the others with nothing to close.
                call_hooks(booted, "after_worker_shutdown", self, reverse=True)
            finally:
                self._loop = None
                if self._deadline_timer is not None:
                    self._deadline_timer.cancel()
                    self._deadline_timer = None
                if self._stall is not None:
                    self._stall.disarm()

    async def _fetch_loop(self, driver: Driver) -> None:
        assert self._slot_free is not None
        loop = asyncio.get_running_loop()
        backoff = _Backoff()
        rotation = 0
        idle_once = False
        queues = self.queues
        # With prefetch, the next batch is fetched while the current one runs, but only once
        # a quarter of the window is free: one finished task must not cost a fetch of one.
        window = self.concurrency + self.prefetch
        batch = max(1, window // 4) if self.prefetch else 1
        acking = driver.ack_and_dequeue if isinstance(driver, AckingDequeue) else None
        while not self._stopping:
            free = window - len(self._running) - len(self._waiting)
            idle_slots = not self._waiting and len(self._running) < self.concurrency
            if free <= 0 or (free < batch and not idle_slots):
                self._flush_acks_now()  # no fetch to ride with now
                self._acks_ride = acking is not None
                self._slot_free.clear()
                try:
                    await self._slot_free.wait()
                finally:  # woken, stopping or cancelled: acks go the usual way again
                    self._acks_ride = False
                continue
            order = queues[rotation:] + queues[:rotation] if len(queues) > 1 else queues
            rotation = (rotation + 1) % len(queues)
            wait = min(self.poll_wait, 0.2) if self.burst else self.poll_wait
            acks = self._acks_for_fetch() if acking is not None else []
            try:
                if acks:
                    assert acking is not None
                    deliveries = await acking(acks, order, limit=free, wait=wait)
                else:
                    deliveries = await driver.dequeue(order, limit=free, wait=wait)
            except BaseException as exc:
                if acks:  # unknown whether they were applied: again, the usual way
                    self._ack_buffer[:0] = acks
                    self._flush_acks_now()
                if not isinstance(exc, Exception):
                    raise
                self.last_fetch_error = f"{type(exc).__name__}: {brief(exc)}"
                if self.middleware:
                    call_hooks(self.middleware, "after_broker_error", self, "dequeue", exc)
                delay = backoff.next()
                log.warning(
                    "fetching tasks failed (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._sleep_unless_stopping(delay)
                continue
            backoff.reset()
            self.last_fetch_at, self.last_fetch_error = time.monotonic(), None
            if self.stopping:
                if deliveries:
                    await self._release(deliveries)
                break
            if not deliveries:
                if self.burst and not self._running and not self._waiting:
                    if idle_once and not self._awaits_retries():
                        break
                    idle_once = True
                continue
            idle_once = False
            if self._burst_retries:  # taken: no longer waited for
                for delivery in deliveries:
                    self._burst_retries.pop(delivery.task_id, None)
            for delivery in deliveries:
                if delivery.attempts and self._adopt(delivery):
                    continue
                if len(self._running) < self.concurrency:
                    self._start(delivery, loop)
                else:
                    assert self._leases is not None
                    self._leases.track(delivery, delivery.visibility_timeout)
                    self._waiting.append(delivery)
            if len(deliveries) < free:
                # A short batch: the queues ran dry and this worker waits for work, so what
                # counts is how soon a task starts. Its task runs first; the next fetch would
                # otherwise set up its wait before the task's first line.
                await asyncio.sleep(0)

    def _start(self, delivery: Delivery, loop: asyncio.AbstractEventLoop) -> None:
        job = Job(delivery)
        task = loop.create_task(self._process(job))
        self._running[task] = job
        task.add_done_callback(self._on_done)

    def _adopt(self, delivery: Delivery) -> bool:
        """Whether `delivery` is a newer delivery of a task this worker holds, which it then
        takes the place of.

        The broker hands a message out again once the lease of the delivery held here ended
        (a lost connection gives RabbitMQ's back at once; renewals that failed through an
        outage let others expire), possibly to this same worker. Run again, it would run
        twice at once here, or be dead-lettered as lost while it runs. Instead the run (or
        the wait) goes on and is settled through the newer delivery: the older one's lease is
        gone, and settling through it would be ignored. A task still waiting here keeps its
        count, as it never ran.
        """
        assert self._leases is not None
        task_id = delivery.task_id
        # Only while its code runs: before, and while it is settled, a copy may be the
        # task's own doing (a retry, a wait for its limit publish it again).
        running = self._by_id.get(task_id)
        if running is not None:
            # The run keeps its count (the loss is not a run; a wait for a limit took its
            # deferrals off it) and its task's lease length.
            job = running[1]
            assert job.envelope is not None  # decoded before its code runs
            newer = dataclasses.replace(delivery, attempts=job.delivery.attempts)
            self._leases.forget(job.delivery)
            job.delivery = newer
            self._leases.track(newer, job.envelope.visibility_timeout)
            _log_adopted(delivery, "running")
            return True
        for i, waiting in enumerate(self._waiting):
            if waiting.task_id == task_id:
                self._leases.forget(waiting)
                newer = dataclasses.replace(delivery, attempts=waiting.attempts)
                self._waiting[i] = newer
                self._leases.track(newer, newer.visibility_timeout)
                _log_adopted(delivery, "waiting to start")
                return True
        return False

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if self._waiting and not self._stopping:
            assert self._leases is not None
            loop = task.get_loop()
            while self._waiting and len(self._running) < self.concurrency:
                # Its lease stays renewed on its schedule: `_process` keeps it on.
                self._start(self._waiting.popleft(), loop)
        if self._slot_free is not None:
            self._slot_free.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error while handling a task", exc_info=task.exception())

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    async def _shutdown(self, driver: Driver) -> None:
        self._stopping = True
        self._acks_ride = False  # no fetch comes any more: acks of tasks ending now go alone
        self._flush_acks_now()
        if self._waiting:  # taken ahead, never started: back to the queue, no attempt counted
            waiting = list(self._waiting)
            self._waiting.clear()
            if self._leases is not None:
                for delivery in waiting:
                    self._leases.forget(delivery)
            await self._release(waiting)
        if self._deadline_timer is not None:  # the deadline is kept here from now on
            self._deadline_timer.cancel()
            self._deadline_timer = None
        running = [task for task in self._running if task not in self._cancelled_at_deadline]
        if running and not self._aborting:
            deadline = self._stop_deadline
            left = self.shutdown_timeout if deadline is None else deadline - time.monotonic()
            _, pending = await asyncio.wait(running, timeout=max(left, 0.0))
            if pending:
                _log_given_back_at_deadline(len(pending))
        for task in list(self._running):
            task.cancel()
        if self._running:
            _, stuck = await asyncio.wait(list(self._running), timeout=CANCEL_WAIT)
            self.unstoppable = len(stuck)
            if stuck:  # they hold their messages' leases: given back would mean run twice
                log.error(
                    "%d task(s) did not stop when cancelled (they catch the cancellation): "
                    "not given back; the broker hands them out again when their leases end, "
                    "so this process must end now (the CLI does)",
                    len(stuck),
                )
        self._flush_acks_now()
        if self._lifecycle is not None:
            await self._lifecycle.flush()  # acks waiting for status records go out now
        if self._background:
            await asyncio.wait(list(self._background), timeout=10)

    # -- one task --------------------------------------------------------------------------
    async def _process(self, job: Job) -> None:
        assert self._resolver is not None and self._router is not None
        assert self._leases is not None and self.driver is not None
        # The delivery it started with: its count decides this run. `job.delivery` is the
        # one to renew and settle through, which a newer delivery may replace (`_adopt`).
        delivery = job.delivery
        # Renewed from the first line: decoding, limits and building the task (which may
        # fetch model arguments) take time too, and a prefetched one comes with its lease
        # half used.
        self._leases.track(delivery, delivery.visibility_timeout)
        try:
            self.stats.processed += 1
            if self._report_ran:
                self._report_ran = False
                report_ran()
            try:
                _check_delivery(delivery)
                env = job.envelope = envelope.decode(delivery.payload)
            except Exception as exc:
                await self._dead_letter(job, exc, "cannot run")
                return
            lifecycle = self._lifecycle
            if lifecycle is not None and lifecycle.is_cancelled(delivery.task_id):
                await self._finish_cancelled(job, lifecycle)  # cancelled while queued: never runs
                return
            if env.expires_at and env.expires_at <= time.time():
                await self._timed.expire(job, lifecycle)  # before its code is even loaded
                return
            workflow_step = bool(env.headers) and workflow_steps.HEADER in env.headers
            if workflow_step and not await workflow_steps.admit(self, job):
                return  # a stale copy, or cancelled with its workflow
            if env.limits is not None and not await limits.admit(self, job):
                return  # waits for its limit on the broker, or could never run here
            # Lifecycle hooks are called only for a task they have work for (tracked, or events
            # on): the common case costs nothing.
            hooks = (
                lifecycle if lifecycle is not None and (env.track or lifecycle.events_on) else None
            )
            allowed = max(env.max_attempts, 1)
            if delivery.attempts >= allowed:
                # Counted before anything the message names is loaded: a message whose code kills
                # the worker (at import, or while its arguments are decoded) is dead-lettered here
                # once its attempts are used up, without running it again. Its module is loaded
                # after that, for its failed() hook: code that kills at import costs one worker
                # more, never a loop; arguments naming modules not loaded yet are not decoded.
                lost = TaskLostError(
                    f"task {env.task} [{delivery.task_id}] was delivered {delivery.attempts} "
                    f"times before without being settled (its worker was killed or lost the "
                    f"lease, while it ran or before it started); max_attempts is "
                    f"{env.max_attempts}"
                )
                await self._fail_for_good(job, lost, hooks=hooks)
                return
            try:
                target = self._resolver.resolve(env.task, env.script)
                kind = _execution_of(target)
                if kind == "process" and env.async_refs:
                    # The child fetches the model arguments itself; fetching them here too would
                    # double every query. The parent builds the task only if a hook needs it.
                    task = None
                else:
                    task = job.task = await envelope.build_async(target, env)
            except BaseException as exc:  # SystemExit too: see _failure_of
                failure = _failure_of(exc)
                if failure is None:
                    await self._release([job.delivery])
                    raise
                if lifecycle is not None and lifecycle.is_cancelled(delivery.task_id):
                    await self._finish_cancelled(job, lifecycle)  # cancelled meanwhile
                elif isinstance(failure, _NEVER_RUNNABLE):
                    await self._dead_letter(job, failure, "cannot run")
                else:
                    # Rebuilding the task failed for a reason that may pass (a database blip
                    # while fetching a model argument, a module not deployed here yet): retry
                    # while attempts allow.
                    await self._handle_build_failure(job, failure)
                return
            if lifecycle is not None and lifecycle.is_cancelled(delivery.task_id):
                # Cancelled while it waited for its limit or was being built: a cancel that
                # arrives from here on finds it running (`_cancel_running`), none before.
                await self._finish_cancelled(job, lifecycle)
                return
            if task is not None:
                set_attempts(task, delivery.attempts)
            self._leases.renew_to(job.delivery, env.visibility_timeout)
            context = job.context = TaskContext(
                delivery.task_id, env.task, job.queue, delivery.attempts
            )
            if hooks is not None:  # progress is kept only where there is a record or an event
                context._sink = hooks.progress_sink(job)
            if self.middleware:
                call_hooks(self.middleware, "before_process", job)
            if hooks is not None:
                hooks.before_process(job)
            job.started_at = time.monotonic()
            runner = asyncio.current_task()
            assert runner is not None
            self._by_id[delivery.task_id] = (runner, job)
            token = set_current(context)
            try:
                result = await self._router.run(
                    kind, task, delivery.payload, delivery.attempts, env.timeout, env.task
                )
                if runner.cancelling():
                    # It caught this worker's cancellation (a stop, a cancel request) and
                    # returned: its run was cut short, whatever it returned, so it ends as
                    # that cancellation ends a task (given back, or cancelled).
                    raise asyncio.CancelledError
            except BaseException as exc:  # SystemExit too: see _failure_of
                self._by_id.pop(delivery.task_id, None)
                self._leases.forget(job.delivery)
                if job.cancel_requested:
                    if runner.cancelling():
                        runner.uncancel()  # our own cancellation of this task, handled here
                    await self._finish_cancelled(job, lifecycle)
                    return
                failure = _failure_of(exc)
                if failure is None:
                    await self._release([job.delivery])
                    call_hooks(self.middleware, "after_release", job, reverse=True)
                    if hooks is not None:
                        hooks.after_release(job)
                    raise
                if workflow_step:
                    workflow_steps.note_failure(job, failure)
                call_hooks(self.middleware, "after_process", job, None, failure, reverse=True)
                await self._handle_failure(job, failure, hooks)
                return
            finally:
                reset_current(token)
            self._by_id.pop(delivery.task_id, None)
            self._leases.forget(job.delivery)
            self.stats.succeeded += 1
            if env.keep_result:  # kept before the ack: a caller never misses a finished task
                if hooks is not None and env.track:
                    # Its record says so before the result can be read: a caller's status()
                    # right after result() must not still say queued or running. Bounded
                    # (`WRITTEN_WAIT`): a slow status store delays the result, never holds it.
                    hooks.record_success(job)
                    await hooks.written()
                await outcomes.keep(
                    self.driver, job, lambda: outcomes.value_outcome(job, result), self._settle
                )
            if workflow_step:  # what follows is queued before the ack: a crash loses nothing
                await workflow_steps.advance(self, job, result)
            self._ack(job.delivery)
            if env.unique_key:
                self._timed.release_claim(env.unique_key, delivery.task_id)
            if self.middleware:
                call_hooks(self.middleware, "after_process", job, result, None, reverse=True)
            if hooks is not None:
                hooks.after_process(job, result, None)
        finally:  # every way out (an early settle may race a renewal: drivers ignore a stale one)
            self._leases.forget(job.delivery)

    # -- lifecycle -------------------------------------------------------------------------
    def describe(self) -> WorkerInfo:
        """This worker's record for the registry."""
        return WorkerInfo(
            worker_id=self.worker_id,
            host=self.worker_id.split(":", 1)[0],
            pid=os.getpid(),
            queues=tuple(self.queues),
            concurrency=self.concurrency,
            version=_version(),
            started_at=datetime.fromtimestamp(self.started_at, UTC),
            heartbeat_at=datetime.fromtimestamp(time.time(), UTC),
            running=tuple(j.delivery.task_id for j in self._running.values()),
            processed=self.stats.processed,
            succeeded=self.stats.succeeded,
            failed=self.stats.dead_lettered,
            retried=self.stats.retried,
        )

    def _cancel_running(self, task_id: str) -> None:
        """Stop task `task_id` if it runs here: async and process tasks are cancelled (a
        process task's child is killed); a thread task sees its context's flag."""
        entry = self._by_id.get(task_id)
        if entry is None:
            return
        runner, job = entry
        job.cancel_requested = True
        if job.context is not None:
            job.context.ask_to_stop()
        assert job.envelope is not None and self._resolver is not None
        target = self._resolver.cached(job.envelope.task)
        if target is None or _execution_of(target) != "thread":
            runner.cancel()

    async def _finish_cancelled(self, job: Job, lifecycle: Lifecycle | None) -> None:
        """Settle a cancelled task: removed from the queue, never retried."""
        driver = self.driver
        assert driver is not None
        if not await self._settle("ack", lambda: driver.ack([job.delivery])):
            return
        self.stats.cancelled += 1
        if job.envelope is not None and job.envelope.unique_key:
            self._timed.release_claim(job.envelope.unique_key, job.task_id)
        log.info("task %s [%s] was cancelled", printable(job.task_name), printable(job.task_id))
        call_hooks(self.middleware, "after_cancel", job, reverse=True)
        if lifecycle is not None:
            lifecycle.after_cancel(job)

    async def _handle_build_failure(self, job: Job, exc: Exception) -> None:
        assert job.envelope is not None and self.driver is not None
        runs_done = job.delivery.attempts + 1
        if runs_done >= job.envelope.max_attempts:
            await self._dead_letter(job, exc, "could not be prepared, for good")
            return
        delay = retry_delay(job.envelope, runs_done)
        if isinstance(exc, TaskNotFoundError):
            # Code not deployed here (yet): however soon the message asks to retry, a worker
            # must not spin on it.
            delay = max(delay, NOT_FOUND_RETRY_DELAY)
        log.warning(
            "task %s [%s] could not be prepared (%s: %s); retrying in %s s",
            printable(job.task_name),
            printable(job.task_id),
            type(exc).__name__,
            brief(exc),
            _seconds(delay),
        )
        driver = self.driver
        if await self._settle("retry", lambda: driver.retry(job.delivery, delay=delay)):
            self.stats.retried += 1
            if not isinstance(exc, TaskNotFoundError):  # a blip, not code missing here
                self._retry_scheduled(job.task_id, delay)
            call_hooks(self.middleware, "after_retry", job, exc, delay, reverse=True)

    async def _task_for_hooks(self, job: Job, *, lost: bool = False) -> BaseTask[Any] | None:
        """The task instance, built now if `_process` left it to the child (process tasks).

        For a `lost` task (its message already dead-lettered: nothing here can loop it) the
        task's own code is loaded like any task's, so its ``failed()`` hook runs in a worker
        that never ran it before, but its arguments may name only modules this process has
        loaded already: decoding them may be what killed the last workers.
        """
        if job.task is None:
            assert job.envelope is not None and self._resolver is not None
            env = job.envelope
            try:
                target = self._resolver.resolve(env.task, env.script)
            except TaskNotFoundError:
                if lost:
                    return None  # not deployed here: it was dead-lettered all the same
                raise
            if not lost:
                job.task = await envelope.build_async(target, env)
            elif env.async_refs:
                return None  # model arguments are fetched with awaits: the guard is global
            else:
                previous = set_import_guard(_loaded_only)
                try:
                    job.task = envelope.build(target, env)  # no await: no other task decodes
                finally:
                    set_import_guard(previous)
            set_attempts(job.task, job.delivery.attempts)
        return job.task

    async def _handle_failure(self, job: Job, exc: Exception, hooks: Lifecycle | None) -> None:
        assert job.envelope is not None and self.driver is not None
        runs_done = job.delivery.attempts + 1
        retry = runs_done < job.envelope.max_attempts and not isinstance(exc, PermanentError)
        if retry:
            try:
                task = await self._task_for_hooks(job)
                assert task is not None
                retry = bool(await _maybe_await(task.should_retry(exc)))
            except BaseException as hook_error:  # user code must not end the worker
                if _failure_of(hook_error) is None:
                    raise
                log.exception("should_retry() of %s raised; retrying", printable(job.task_name))
        if not retry:
            await self._fail_for_good(job, exc, hooks=hooks)
            return
        delay = retry_delay(job.envelope, runs_done)
        log.warning(
            "task %s [%s] failed (run %d of %d): %s: %s; retrying in %s s",
            printable(job.task_name),
            printable(job.task_id),
            runs_done,
            job.envelope.max_attempts,
            type(exc).__name__,
            brief(exc),
            _seconds(delay),
        )
        driver = self.driver
        if await self._settle("retry", lambda: driver.retry(job.delivery, delay=delay)):
            self.stats.retried += 1
            self._retry_scheduled(job.task_id, delay)
            call_hooks(self.middleware, "after_retry", job, exc, delay, reverse=True)
            if hooks is not None:
                hooks.after_retry(job, exc, delay)

    async def _fail_for_good(
        self, job: Job, exc: Exception, *, hooks: Lifecycle | None = None
    ) -> None:
        # A task failing for good is the normal end of its retries: a warning, as before;
        # a message that can never run is an error.
        level = logging.ERROR if isinstance(exc, TaskLostError) else logging.WARNING
        if isinstance(exc, TaskLostError):
            # Deliveries, not runs: one taken ahead by a worker that was killed before
            # starting it counts as well, and nobody knows how many of them started.
            why = f"failed for good after {job.delivery.attempts} unsettled deliveries"
        else:
            why = f"failed for good after {job.delivery.attempts + 1} run(s)"
        if not await self._dead_letter(job, exc, why, level=level):
            return
        if hooks is not None:
            hooks.after_dead_letter(job, failure_from(exc))
        try:
            lost = isinstance(exc, TaskLostError)
            task = await self._task_for_hooks(job, lost=lost)
            if task is not None:
                await _maybe_await(task.failed(exc))
        except BaseException as hook_error:  # user code must not end the worker
            if _failure_of(hook_error) is None:
                raise
            log.exception("failed() hook of %s raised", printable(job.task_name))

    async def _dead_letter(
        self, job: Job, exc: BaseException, why: str, *, level: int = logging.ERROR
    ) -> bool:
        """Dead-letter the job's message, keeping `exc`; log once it is done."""
        assert self.driver is not None
        failure: Failure = failure_from(exc)
        driver = self.driver
        if not await self._settle("dead-letter", lambda: driver.dead_letter(job.delivery, failure)):
            return False
        log.log(
            level,
            "task %s [%s] %s and was dead-lettered: %s: %s%s",
            printable(job.task_name),
            printable(job.task_id),
            why,
            type(exc).__name__,
            brief(exc),
            _replay_hint(exc),
        )
        await outcomes.keep(driver, job, lambda: outcomes.failure_outcome(failure), self._settle)
        self.stats.dead_lettered += 1
        if job.envelope is not None and job.envelope.unique_key:
            self._timed.release_claim(job.envelope.unique_key, job.task_id)
        call_hooks(self.middleware, "after_dead_letter", job, failure, reverse=True)
        return True

    async def _release(self, deliveries: list[Delivery]) -> None:
        # Shielded with its count, and awaited by _shutdown through _background: a second
        # cancellation (abort() after shutdown had already cancelled the task) interrupts only
        # this wait, never the give-back nor its count.
        give_back = asyncio.ensure_future(self._give_back(deliveries))
        self._background.add(give_back)
        give_back.add_done_callback(self._background.discard)
        await asyncio.shield(give_back)

    async def _give_back(self, deliveries: list[Delivery]) -> None:
        assert self.driver is not None
        driver = self.driver
        if await self._settle("release", lambda: driver.release(deliveries), tries=2):
            # A fetch still waiting when the stop came can take back what a cancelled task
            # just gave back, and give it back again: each task counts once.
            new = {d.task_id for d in deliveries} - self._given_back
            self._given_back |= new
            self.stats.released += len(new)

    async def _settle(
        self, what: str, op: Callable[[], Awaitable[None]], *, tries: int = 5
    ) -> bool:
        """Run a state change, retrying broker errors; False if it never went through.

        A change that never goes through loses nothing: the lease expires and the task is
        delivered again.
        """
        backoff = _Backoff(0.1, 2.0)
        for attempt in range(1, tries + 1):
            try:
                await asyncio.shield(op())
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.middleware:
                    call_hooks(self.middleware, "after_broker_error", self, what, exc)
                if attempt == tries or self._aborting:
                    log.error(
                        "%s failed %d time(s), leaving it to the lease: %s", what, attempt, exc
                    )
                    return False
                await asyncio.sleep(backoff.next())
        return False

    # -- batched acks ----------------------------------------------------------------------
    def _ack(self, delivery: Delivery) -> None:
        self._ack_buffer.append(delivery)
        if not self._ack_scheduled and not self._acks_ride:
            self._ack_scheduled = True
            # Acks of tasks finishing in the same loop iteration go out as one call.
            asyncio.get_running_loop().call_soon(self._flush_acks_now)

    def _acks_for_fetch(self) -> list[Delivery]:
        """The buffered acks, to go with the next dequeue (none while tracked tasks' final
        records are being written: their acks follow those)."""
        lifecycle = self._lifecycle
        if not self._ack_buffer or (lifecycle is not None and lifecycle.statuses_pending()):
            self._flush_acks_now()
            return []
        batch, self._ack_buffer = self._ack_buffer, []
        return batch

    def _flush_acks_now(self) -> None:
        self._ack_scheduled = False
        if not self._ack_buffer or self.driver is None:
            return
        batch, self._ack_buffer = self._ack_buffer, []
        driver = self.driver
        loop = asyncio.get_running_loop()

        def send() -> None:
            task = loop.create_task(self._settle("ack", lambda: driver.ack(batch)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        lifecycle = self._lifecycle
        if lifecycle is not None and lifecycle.statuses_pending():
            # Tracked tasks' final records first, then their acks (with the next flush).
            lifecycle.after_statuses(send)
        else:
            send()

    # -- signals ---------------------------------------------------------------------------
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if (
            not self.install_signal_handlers
            or threading.current_thread() is not threading.main_thread()
        ):
            return
        handlers: list[tuple[int, Callable[[int], None]]] = [
            (signal.SIGTERM, self._on_signal),
            (signal.SIGINT, self._on_signal),
        ]
        from asynctasq.supervisor.sizing import child_number  # the package imports this one

        if ABORT_SIGNAL is not None and child_number() is not None:
            # Only under the supervisor: elsewhere SIGUSR2 may mean something to the app.
            handlers.append((ABORT_SIGNAL, self._on_abort_signal))
        for sig, handler in handlers:
            try:
                loop.add_signal_handler(sig, handler, sig)
                self._signals_installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix loops
                pass

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in self._signals_installed:
            loop.remove_signal_handler(sig)
        self._signals_installed.clear()


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _log_given_back_at_deadline(count: int) -> None:
    log.warning("%d task(s) still running at the shutdown deadline: giving them back", count)


def _seconds(delay: float) -> str:
    """A delay for a log line as the user set it: 0.05, 1.5, 60 (not 0.1 or 60.0)."""
    return f"{delay:.2f}".rstrip("0").rstrip(".")


def _log_adopted(delivery: Delivery, where: str) -> None:
    log.warning(
        "task [%s] was delivered again while %s here (the lease of its earlier delivery "
        "ended: a lost connection, or renewals that failed); it goes on here, settled "
        "through the new delivery",
        printable(clip(delivery.task_id, 100)),  # a waiting one's id was not checked yet
        where,
    )


def _failure_of(exc: BaseException) -> Exception | None:
    """`exc` as a task failure, or None when it is this worker being cancelled.

    A task (or a module it imports) may raise anything: ``SystemExit`` from ``sys.exit()``,
    ``KeyboardInterrupt``, even a stray ``CancelledError``. Raised out of an asyncio task, the
    first two would end the event loop and the worker with it, so they are failures of the
    task like any other. Only a cancellation of the worker's own task (shutdown) is not.
    """
    if isinstance(exc, Exception) and not isinstance(exc, asyncio.CancelledError):
        return exc
    current = asyncio.current_task()
    if isinstance(exc, asyncio.CancelledError) and current is not None and current.cancelling():
        return None
    failure = TaskAbortedError(f"{type(exc).__name__}: {brief(exc)}")
    failure.__cause__ = exc
    return failure


def _loaded_only(module: str) -> None:
    if module not in sys.modules:
        raise TaskNotFoundError(f"{module!r} is not loaded in this worker")


def _check_delivery(delivery: Delivery) -> None:
    """Refuse a delivery whose driver-side fields are not what the contract says (a row
    written behind the driver's back): it would fail later, outside any error handling."""
    if (
        not isinstance(delivery.payload, bytes | bytearray | memoryview)
        or type(delivery.attempts) is not int
        or delivery.attempts < 0
        # A lease no dispatch could have asked for (NaN, infinite, 0 or less, or past ten
        # years): the driver read a row written behind its back.
        or not is_positive_seconds(delivery.visibility_timeout)
        or not isinstance(delivery.task_id, str)
    ):
        raise MalformedMessageError(
            f"the driver delivered a malformed record (attempts {delivery.attempts!r:.40}, "
            f"visibility timeout {delivery.visibility_timeout!r:.40})"
        )


def _version() -> str:
    from asynctasq import __version__

    return __version__


def _execution_of(target: Any) -> Execution:
    """Where a resolved task target runs (a task function or a task class)."""
    if isinstance(target, TaskFunction):
        return target.execution
    return target._execution  # type: ignore[no-any-return]


def _pin_as_planned(loop: asyncio.AbstractEventLoop) -> None:
    """Under ``--pin-cpus``: pin this thread, now that the task modules are imported and the
    driver and boot hooks started their threads (they all keep every CPU); ``to_thread`` and
    ``run_in_executor(None, ...)`` calls still get every CPU, as task threads do."""
    if affinity.apply_plan() is not None:
        executor = ThreadPoolExecutor(thread_name_prefix="asyncio", initializer=unpin_thread)
        loop.set_default_executor(executor)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
