"""The worker's lifecycle duties: status records, events, cancel requests, heartbeats.

It is middleware (task events ride on the worker's hooks) plus three background loops:

* a flusher that writes buffered status records and events in batches: a task never waits
  for them, and a broken channel is logged and the work goes on;
* a cancel watcher that reads the ``cancels`` log (woken at once on pushing drivers) and
  tells the worker which task to stop; ids are remembered so a queued task never runs;
* a heartbeat that renews this worker's record in the registry (and emits
  ``worker-heartbeat`` when events are on).

Each duty is on only when the driver has the capability (and, for events, when asked for):
with tracking and events off, a task costs one dict lookup (is it cancelled?).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from asynctasq.background import cancel_and_wait, cancel_requested
from asynctasq.drivers.base import (
    Driver,
    EventLog,
    Failure,
    StatusStore,
    StatusWrite,
    WorkerRegistry,
)
from asynctasq.lifecycle import control, events
from asynctasq.lifecycle.events import EventType
from asynctasq.lifecycle.status import KEYS, TaskState, clip
from asynctasq.lifecycle.workers import WorkerInfo
from asynctasq.middleware import Middleware
from asynctasq.worker.failures import text_of, type_name

if TYPE_CHECKING:
    from asynctasq.worker.job import Job

log = logging.getLogger("asynctasq.worker")

MAX_BUFFERED_EVENTS = 10_000
"""Events kept in memory while the channel is down; the oldest are dropped beyond this."""
PROGRESS_INTERVAL = 0.5
"""Seconds between two progress writes of one task (the latest report wins)."""
CANCEL_POLL = 1.0
"""Longest wait of one read of the cancels log (pushing drivers return sooner)."""
MAX_REMEMBERED_CANCELS = 100_000
"""Cancel requests a worker keeps in memory at most."""
CANCELS_PER_READ = 1000
"""Entries of the cancels log one read returns at most."""
MAX_CANCEL = 1024
"""Bytes of the largest cancels-log entry read (a task id; a worker keeps 100 characters):
anything larger was written behind core's back and never reaches the worker, so a flood
of huge entries cannot exhaust its memory."""
MAX_EMPTY_PAGES = 50
"""Reads of the cancels log in a row that only passed over entries before the reader waits
(the loop goes on from there later): bounded work, even with a driver whose cursor moves on
every read."""
WRITTEN_WAIT = 1.0
"""Longest wait of `Lifecycle.written` for a status write."""
FLUSH_DELAY = 0.05
"""Seconds buffered records wait to be written with others: a short task's ``running`` and
``succeeded`` then go out as one write of the latter, in one batch with its neighbours'."""


def new_worker_id() -> str:
    """``host:pid:random``: unique, and readable in `asynctasq workers`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _now() -> float:
    return time.time()


class _Warnings:
    """Logs a broken channel once per minute, not once per batch."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last.get(what, -1e9) >= 60:
            self._last[what] = now
            log.warning("%s failed (%s: %s); the work goes on", what, type(exc).__name__, exc)


class Lifecycle(Middleware):
    """Tracking, events, cancellation and heartbeats for one worker.

    Args:
        driver: The worker's driver (its capabilities decide what is on).
        worker_id: This worker's id.
        describe: Returns this worker's record for the registry (called per heartbeat).
        on_cancel: Called with a task id whose cancellation was asked for.
        events_on: Publish events (when the driver keeps an event log).
        heartbeat_interval: Seconds between heartbeats; the record expires after three.
        events_retention: Seconds events are kept.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        worker_id: str,
        describe: Callable[[], WorkerInfo],
        on_cancel: Callable[[str], None],
        events_on: bool,
        heartbeat_interval: float,
        events_retention: float = events.DEFAULT_RETENTION,
    ) -> None:
        self.worker_id = worker_id
        self._statuses = driver if isinstance(driver, StatusStore) else None
        self._log = driver if isinstance(driver, EventLog) else None
        self._registry = driver if isinstance(driver, WorkerRegistry) else None
        self.events_on = events_on and self._log is not None
        self._describe = describe
        self._on_cancel = on_cancel
        self._heartbeat_interval = heartbeat_interval
        self._events_retention = events_retention
        self._cancelled: dict[str, float] = {}
        # task id -> (its latest status, seconds to keep it): each record replaces the one
        # before, so only the latest is encoded and written (insertion order = write order).
        self._status_buffer: dict[str, tuple[dict[str, Any], float]] = {}
        self._after_write: list[Callable[[], None]] = []  # run once the buffer is written
        self._writing = 0  # status writes under way
        self._event_buffer: deque[bytes] = deque(maxlen=MAX_BUFFERED_EVENTS)
        self._dirty: asyncio.Event | None = None
        self._urgent: asyncio.Event | None = None  # flush without waiting FLUSH_DELAY
        self._loops: list[asyncio.Task[None]] = []
        self._progress: dict[str, tuple[Job, float, str | None]] = {}
        self._progress_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warnings = _Warnings()

    # -- start and stop ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the cancel requests still kept, then start the background loops."""
        self._loop = asyncio.get_running_loop()
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        cursor: str | None = None
        if self._log is not None:
            try:
                cursor = await self._read_cancels(None, wait=0)
            except Exception as exc:
                self._warnings.warn("reading cancel requests", exc)
        loop = self._loop
        self._loops.append(loop.create_task(self._flush_loop(), name="asynctasq-lifecycle"))
        if self._log is not None:
            self._loops.append(
                loop.create_task(self._cancel_loop(cursor), name="asynctasq-cancels")
            )
        if self._registry is not None or self.events_on:
            self._loops.append(loop.create_task(self._heartbeat_loop(), name="asynctasq-beat"))
        if self.events_on:
            self._emit_worker(EventType.WORKER_ONLINE)

    async def stop(self) -> None:
        """Say goodbye, write what is buffered, and stop the loops."""
        if self.events_on:
            self._emit_worker(EventType.WORKER_OFFLINE)
        await cancel_and_wait(self._loops)
        self._loops.clear()
        if self._progress_timer is not None:
            self._progress_timer.cancel()
        await self._flush()
        if self._registry is not None:
            try:
                await self._registry.remove_worker(self.worker_id)
            except Exception as exc:
                self._warnings.warn("removing the worker record", exc)

    # -- cancellation -------------------------------------------------------------------------
    def is_cancelled(self, task_id: str) -> bool:
        """Whether a cancellation of `task_id` was asked for."""
        return task_id in self._cancelled

    async def _read_cancels(self, cursor: str | None, *, wait: float) -> str:
        assert self._log is not None
        empty = 0  # reads in a row that moved on without returning anything
        while True:
            if _passes_max_entry(self._log):
                entries, after = await self._log.read_log(
                    control.CANCELS, cursor, wait=wait, limit=CANCELS_PER_READ, max_entry=MAX_CANCEL
                )
            else:  # an event log written before `max_entry`: the bound is kept here instead
                entries, after = await self._log.read_log(
                    control.CANCELS, cursor, wait=wait, limit=CANCELS_PER_READ
                )
                entries = [raw for raw in entries if len(raw) <= MAX_CANCEL]
            now = time.monotonic()
            for raw in entries:
                task_id = raw.decode("utf-8", "replace")[:100]
                if task_id not in self._cancelled:
                    self._cancelled[task_id] = now
                    self._on_cancel(task_id)
            # Read on until a read moves nothing: a page is not known to be the last by its
            # size, as entries passed over (too large) count toward it without coming back.
            empty = 0 if entries else empty + 1
            if after == cursor or cancel_requested() or empty >= MAX_EMPTY_PAGES:
                return after
            cursor = after
            self._forget_old_cancels()  # a flooded log must not grow memory while it is read
            wait = 0  # something came: read on before waiting again

    async def _cancel_loop(self, cursor: str | None) -> None:
        assert self._log is not None
        while not cancel_requested():
            try:
                if cursor is None:
                    cursor = await self._log.log_tail(control.CANCELS)
                cursor = await self._read_cancels(cursor, wait=CANCEL_POLL)
                self._forget_old_cancels()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warnings.warn("reading cancel requests", exc)
                await asyncio.sleep(CANCEL_POLL)

    def _forget_old_cancels(self) -> None:
        if len(self._cancelled) < 10_000:
            return
        oldest = time.monotonic() - control.CANCEL_RETENTION
        for task_id in [t for t, seen in self._cancelled.items() if seen < oldest]:
            del self._cancelled[task_id]
        # Anyone who can write to the broker can flood the cancels log: memory stays bounded
        # (the oldest requests go first; their tasks have most likely been seen already).
        excess = len(self._cancelled) - MAX_REMEMBERED_CANCELS
        for task_id in list(itertools.islice(self._cancelled, max(excess, 0))):
            del self._cancelled[task_id]

    # -- status records and events --------------------------------------------------------
    def _wake(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def record(self, job: Job, state: TaskState, **changes: Any) -> None:
        """Buffer a new status record for a tracked `job` (no-op when untracked)."""
        env = job.envelope
        if env is None or not env.track or self._statuses is None:
            return
        doc = job.status
        if doc is None:
            # The runs before this delivery: a record written before this one starts (it was
            # cancelled while waiting to retry, given back) must not read as never run.
            doc = job.status = {"id": job.task_id, "t": env.task, "q": job.queue, "n": job.attempts}
            if env.dispatched_at:
                doc["e"] = env.dispatched_at
        doc["s"] = str(state)
        doc["w"] = self.worker_id
        for name, value in changes.items():
            doc[KEYS[name]] = value
        buffer = self._status_buffer
        buffer.pop(job.task_id, None)  # re-inserted last: written after the others
        buffer[job.task_id] = (doc, env.track)
        self._wake()

    def emit(self, type_: EventType, job: Job | None = None, **data: Any) -> None:
        """Buffer an event (no-op when events are off)."""
        if not self.events_on:
            return
        fields: dict[str, Any] = {"worker": self.worker_id, "data": data}
        if job is not None:
            fields.update(task_id=job.task_id, task_name=job.task_name, queue=job.queue)
        self._event_buffer.append(events.make(type_, **fields).encode())
        self._wake()

    def _emit_worker(self, type_: EventType) -> None:
        info = self._describe()
        self.emit(type_, info=info.as_dict())

    def statuses_pending(self) -> bool:
        """Whether status records are buffered or being written, not written yet."""
        return bool(self._status_buffer) or self._writing > 0

    def after_statuses(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the status records buffered now are written (at once when
        none are). The worker acknowledges tasks this way: a SIGKILL can then leave a
        finished task unacknowledged (it runs again), never acknowledged with a record that
        still says it is running."""
        if not self.statuses_pending():
            callback()
            return
        # Run by the next flush, which follows the write in progress (the flush loop writes
        # one batch at a time).
        self._after_write.append(callback)
        self._wake()

    async def written(self) -> None:
        """Return once the status records buffered now are written, flushed at once rather
        than after the usual batching delay (by the flush loop, which keeps writes in order;
        given up after `WRITTEN_WAIT` seconds, as a broker that does not answer would hold
        the task's run for longer than its record is worth)."""
        if not self.statuses_pending() or self._urgent is None or self._loop is None:
            return
        written: asyncio.Future[None] = self._loop.create_future()

        def done() -> None:
            if not written.done():
                written.set_result(None)

        self.after_statuses(done)
        self._urgent.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(written), WRITTEN_WAIT)

    async def flush(self) -> None:
        """Write what is buffered now (statuses and events), then run what waited for it."""
        await self._flush()

    async def _flush(self) -> None:
        buffered, self._status_buffer = self._status_buffer, {}
        waiting, self._after_write = self._after_write, []
        statuses = [_write(doc, keep) for doc, keep in buffered.values()]
        if statuses and self._statuses is not None:
            self._writing += 1
            try:
                await self._statuses.write_statuses(statuses)
            except asyncio.CancelledError:
                # Stopped mid-write (the worker is shutting down): the records and the acks
                # waiting for them go back, for `stop`'s last flush, instead of being lost.
                for task_id, entry in buffered.items():
                    self._status_buffer.setdefault(task_id, entry)  # a newer one wins
                self._after_write[:0] = waiting
                raise
            except Exception as exc:
                self._warnings.warn("writing task status", exc)
            finally:
                self._writing -= 1
        for callback in waiting:  # written (or failed and warned): never held back for good
            callback()
        if self._event_buffer and self._log is not None:
            batch = list(self._event_buffer)
            self._event_buffer.clear()
            try:
                await self._log.append_log(events.LOG, batch, self._events_retention)
            except Exception as exc:
                self._warnings.warn("publishing events", exc)

    async def _flush_loop(self) -> None:
        assert self._dirty is not None and self._urgent is not None
        while not cancel_requested():
            await self._dirty.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), FLUSH_DELAY)
            self._urgent.clear()
            self._dirty.clear()
            await self._flush()

    # -- heartbeats ---------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while not cancel_requested():
            info = self._describe()
            if self._registry is not None:
                try:
                    await self._registry.heartbeat_worker(
                        self.worker_id, info.encode(), self._heartbeat_interval * 3
                    )
                except Exception as exc:
                    self._warnings.warn("the worker heartbeat", exc)
            if self.events_on:
                self.emit(EventType.WORKER_HEARTBEAT, info=info.as_dict())
            await asyncio.sleep(self._heartbeat_interval)

    # -- progress -------------------------------------------------------------------------------
    def progress_sink(self, job: Job) -> Callable[[float, str | None], None]:
        """The function a task's context reports progress through (any thread)."""
        loop = self._loop
        assert loop is not None

        def report(fraction: float, message: str | None) -> None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._progress_reported(job, fraction, message)
            else:
                loop.call_soon_threadsafe(self._progress_reported, job, fraction, message)

        return report

    def _progress_reported(self, job: Job, fraction: float, message: str | None) -> None:
        job.progress = (fraction, message)
        self._progress[job.task_id] = (job, fraction, message)
        if self._progress_timer is None and self._loop is not None:
            self._progress_timer = self._loop.call_later(PROGRESS_INTERVAL, self._take_progress)

    def _take_progress(self) -> None:
        self._progress_timer = None
        reports, self._progress = self._progress, {}
        for job, fraction, message in reports.values():
            if job.finished:
                continue
            self.record(job, TaskState.RUNNING, progress=fraction, progress_message=clip(message))
            self.emit(EventType.TASK_PROGRESS, job, progress=fraction, message=clip(message))

    # -- the worker's hooks -----------------------------------------------------------------
    def before_process(self, job: Job) -> None:
        self.record(job, TaskState.RUNNING, attempts=job.attempts + 1, started_at=_now())
        self.emit(EventType.TASK_STARTED, job, attempt=job.attempts)

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        if exception is None:
            if not job.finished:  # else recorded already (`record_success`)
                self.record_success(job)
            self.emit(EventType.TASK_SUCCEEDED, job, duration=_duration(job))

    def record_success(self, job: Job) -> None:
        """Buffer the ``succeeded`` record of a run that succeeded (before its result is
        kept, where the worker then waits for it with `written`); the event follows with
        `after_process`, once the task is settled."""
        job.finished = True
        self.record(job, TaskState.SUCCEEDED, finished_at=_now(), **_progress_of(job))

    def after_retry(self, job: Job, exception: BaseException, delay: float) -> None:
        job.finished = True
        # Named as a failed task's error is (module and class), and read as safely: the
        # message of an exception whose __str__ raises is not this worker's problem.
        error = {"error_type": type_name(exception), "error_message": clip(text_of(exception))}
        # How far the run got, as on every way a run ends (a report may still wait for its
        # timer, which skips a finished job).
        self.record(job, TaskState.RETRYING, **error, **_progress_of(job))
        self.emit(EventType.TASK_RETRIED, job, delay=delay, **error)

    def after_dead_letter(self, job: Job, failure: Failure) -> None:
        job.finished = True
        error = {"error_type": failure.exception_type, "error_message": clip(failure.message)}
        self.record(job, TaskState.FAILED, finished_at=_now(), **error, **_progress_of(job))
        self.emit(EventType.TASK_FAILED, job, **error)

    def after_cancel(self, job: Job) -> None:
        job.finished = True
        self.record(
            job, TaskState.CANCELLED, finished_at=_now(), cancel_requested=True, **_progress_of(job)
        )
        self.emit(EventType.TASK_CANCELLED, job)

    def after_release(self, job: Job) -> None:
        job.finished = True
        self.record(job, TaskState.QUEUED)


def _write(doc: dict[str, Any], keep: float) -> StatusWrite:
    """The write that stores a record built by `Lifecycle.record`."""
    return control.record_write(doc["id"], doc["q"], TaskState(doc["s"]), orjson.dumps(doc), keep)


def _duration(job: Job) -> float | None:
    return round(time.monotonic() - job.started_at, 6) if job.started_at else None


def _progress_of(job: Job) -> dict[str, Any]:
    if job.progress is None:
        return {}
    return {"progress": job.progress[0], "progress_message": job.progress[1]}


async def stop_quietly(lifecycle: Lifecycle | None) -> None:
    """`Lifecycle.stop`, never raising (worker shutdown must go on)."""
    if lifecycle is not None:
        with contextlib.suppress(Exception):
            await lifecycle.stop()


_PASSES_MAX_ENTRY: dict[type, bool] = {}


def _passes_max_entry(log: EventLog) -> bool:
    """Whether `log.read_log` takes `max_entry` (a third-party event log written before it
    existed does not, and would fail on it)."""
    kind = type(log)
    known = _PASSES_MAX_ENTRY.get(kind)
    if known is None:
        try:
            parameters = inspect.signature(log.read_log).parameters.values()
        except (TypeError, ValueError):  # no signature to read: the protocol's is assumed
            known = True
        else:
            known = any(
                p.name == "max_entry" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
            )
        _PASSES_MAX_ENTRY[kind] = known
    return known


__all__ = ["Lifecycle", "new_worker_id"]
