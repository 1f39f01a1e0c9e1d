"""The driver contract: what a queue backend must do for the worker to lose nothing.

A driver need not inherit from anything: any object with these methods is a driver
(`typing.Protocol`). `asynctasq.testing.DriverConformance` proves an implementation.

Delivery model (at-least-once):

* `enqueue` stores an opaque payload under a task id, ready at once or after a delay.
* `dequeue` hands out up to `limit` ready messages, each *leased* to the caller until its
  visibility timeout passes, and counts the delivery (`Delivery.attempts` is the number of
  deliveries *before* this one, so 0 the first time). A leased message is invisible to other
  consumers; when the lease expires without `ack`/`retry`/`dead_letter`/`release`, the message
  becomes ready again, with its delivery count kept.
* Every state change (ack, retry, dead-letter, release, extend) names a `Delivery`; the driver
  finds the lease through `Delivery.receipt`, a token only it interprets.
* Priority (`OutgoingMessage.priority`, ``MIN_PRIORITY``..``MAX_PRIORITY``, higher first):
  within one queue, a dequeue hands out the ready message of the highest priority first and,
  among equal priorities, the one ready longest first (FIFO, as far as the broker keeps order).
  A delayed message competes by its priority once it is due. The driver stores the priority
  with the message: a retry, a release, an expired lease and a retried dead letter keep it.
  Priority orders messages *within* a queue only; the order of `queues` in `dequeue` decides
  between queues. A driver that cannot order by priority refuses a message whose priority is
  not 0 in `enqueue`/`enqueue_many` (a `ValueError` before anything is stored), never drops
  it silently.
* Task ids are unique per dispatch (core makes a UUID for each). Drivers need not detect a
  duplicate id: an enqueue retried after a lost reply may store a message twice, which
  at-least-once delivery allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

DEFAULT_VISIBILITY_TIMEOUT = 3600.0
"""Seconds a dequeued message stays leased when its task set no visibility timeout."""

MALFORMED_LEASE = 60.0
"""Seconds a driver leases a stored message whose own visibility timeout no dispatch could
have set (NaN, infinite, 0 or less, past ten years): the worker that takes it dead-letters it
meanwhile, and a worker that crashed first leaves it stuck for no longer than this."""

MIN_PRIORITY = 0
"""The lowest priority, and every task's default."""
MAX_PRIORITY = 9
"""The highest priority: ten levels, the range RabbitMQ serves well (``x-max-priority``)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message on its way into a queue.

    Attributes:
        task_id: UUID string, unique per dispatch; the key for dead-letter operations.
        queue: Queue name.
        payload: Opaque bytes (the encoded task envelope).
        delay: Seconds before the message may be dequeued (0 = now).
        visibility_timeout: Lease length in seconds for each delivery of this message, for
            drivers that can store it per message; others use their own default and say so
            through `Delivery.visibility_timeout`.
        priority: ``MIN_PRIORITY``..``MAX_PRIORITY``; within its queue a ready message of a
            higher priority is handed out before lower ones (see the module docstring).
    """

    task_id: str
    queue: str
    payload: bytes
    delay: float = 0.0
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT
    priority: int = 0


@dataclass(slots=True)
class Delivery:
    """A leased message handed to a consumer.

    Attributes:
        task_id: The id given at enqueue.
        queue: The queue it came from.
        payload: The bytes given at enqueue.
        attempts: Deliveries of this message before this one (0 on the first delivery).
        receipt: The driver's lease token; opaque to everyone else.
        visibility_timeout: Seconds the lease granted by this dequeue lasts.
    """

    task_id: str
    queue: str
    payload: bytes
    attempts: int
    receipt: Any
    visibility_timeout: float


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a task failed: kept with its dead letter.

    Attributes:
        exception_type: Qualified name of the exception class (``module.Name``).
        message: ``str(exception)``.
        traceback: The formatted traceback, or an explanation when there is none.
    """

    exception_type: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that will not run again unless someone retries it.

    Attributes:
        task_id: The id given at enqueue.
        queue: The queue it was dequeued from (a retry puts it back there).
        payload: The original bytes, untouched.
        failure: The error that ended it.
        attempts: How many times it was delivered.
        failed_at: When it was dead-lettered (timezone-aware, UTC).
    """

    task_id: str
    queue: str
    payload: bytes
    failure: Failure
    attempts: int
    failed_at: datetime

    def __post_init__(self) -> None:
        # Read from a broker anyone may write to: a time no local clock can show (naive,
        # within a day of the limits of `datetime`, not a datetime at all) would fail whoever
        # converts or compares it, and with it a whole listing.
        object.__setattr__(self, "failed_at", showable_failed_at(self.failed_at))


UNKNOWN_FAILED_AT = datetime.fromtimestamp(0, UTC)
"""`DeadLetter.failed_at` when the stored time cannot be read (anyone who can write to the
broker writes these): the epoch, so such a dead letter lists first, where it is noticed."""

LAST_MOMENT = 253_402_300_799.0
"""9999-12-31 23:59:59 UTC in epoch seconds: the last moment a `datetime` holds."""


_EARLIEST_SHOWN = datetime(1, 1, 2, tzinfo=UTC)
_LATEST_SHOWN = datetime(9999, 12, 30, tzinfo=UTC)


def showable_failed_at(moment: object) -> datetime:
    """`moment` as an aware UTC datetime that converts to any time zone; a naive one is read
    as UTC, and anything else (not a datetime, or within a day of the first or last moment a
    `datetime` holds) is `UNKNOWN_FAILED_AT`."""
    if not isinstance(moment, datetime):
        return UNKNOWN_FAILED_AT
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return UNKNOWN_FAILED_AT
    return utc if _EARLIEST_SHOWN <= utc <= _LATEST_SHOWN else UNKNOWN_FAILED_AT


def failed_at_of(stamp: float | None) -> datetime:
    """Epoch seconds read from a broker as a `DeadLetter.failed_at`: `UNKNOWN_FAILED_AT`
    when missing or outside what a `datetime` holds."""
    if stamp is None:
        return UNKNOWN_FAILED_AT
    try:
        return datetime.fromtimestamp(stamp, UTC)
    except (ValueError, OverflowError, OSError):
        return UNKNOWN_FAILED_AT


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts for one queue at one moment (drivers may approximate where the broker does)."""

    queue: str
    ready: int = 0
    delayed: int = 0
    in_flight: int = 0
    dead: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Driver(Protocol):
    """The operations a reliable queue needs. All methods are coroutines.

    `connect` must be idempotent and is called lazily before first use; `close` releases
    connections and may be followed by `connect` again.
    """

    async def connect(self) -> None:
        """Open connections (idempotent)."""
        ...

    async def close(self) -> None:
        """Close connections; leased messages stay leased until their lease expires."""
        ...

    async def enqueue(self, message: OutgoingMessage) -> None:
        """Store one message, ready after `message.delay` seconds."""
        ...

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages, in as few round-trips as the broker allows."""
        ...

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Lease up to `limit` ready messages, taking from `queues` in the order given.

        Within a queue, higher `OutgoingMessage.priority` first, then oldest first; a lower
        priority waits as long as a higher one is ready in its queue (strict priority).

        Args:
            queues: Queue names; earlier names are served first (the worker rotates them for
                fairness).
            limit: Most messages to return (>= 1).
            wait: When nothing is ready, seconds to wait for a message before returning an
                empty list; the driver waits without busy polling where the broker allows.
        """
        ...

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages for good."""
        ...

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give leased messages back, ready now, without counting the delivery.

        Used on graceful shutdown for work that was taken but not finished.
        """
        ...

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """In one atomic step: end the lease and make the message ready after `delay`.

        The delivery count is kept (the next dequeue counts the next attempt).
        """
        ...

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """In one atomic step: end the lease and keep the message as a dead letter."""
        ...

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Push each lease's expiry to `visibility_timeout` seconds from now.

        A lease that is no longer held (expired and handed to someone else) is left alone.
        """
        ...

    async def queue_names(self) -> list[str]:
        """Names of the queues the driver knows about (ready, delayed, leased or dead)."""
        ...

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Counts per queue, in the order given."""
        ...

    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        ...

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Move dead letters back to their queues, ready now with a fresh attempt count.

        With neither filter, every dead letter is retried. Returns how many moved.
        """
        ...

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters; with neither filter, all of them. Returns how many."""
        ...

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of a queue. Returns how many."""
        ...


@runtime_checkable
class QueueNameRule(Protocol):
    """A driver whose broker takes fewer queue names than every driver's rule
    (`asynctasq.core.options.check_queue`): a worker checks its queues with it before it
    starts, so a name the broker cannot hold stops it at once instead of failing each fetch.
    """

    def check_queue_name(self, queue: str) -> None:
        """Raise `ValueError`, saying what is wrong, when the broker cannot hold `queue`."""
        ...


@runtime_checkable
class AckingDequeue(Protocol):
    """A driver that acknowledges finished deliveries in the broker call that takes the next
    ones: a worker draining a queue then settles a batch and fetches the next in one
    round-trip instead of two.
    """

    async def ack_and_dequeue(
        self, acks: Sequence[Delivery], queues: Sequence[str], *, limit: int, wait: float
    ) -> list[Delivery]:
        """`ack(acks)`, then `dequeue(queues, limit=limit, wait=wait)`. The acks are applied
        even when nothing is taken. After an error it is unknown whether they were, so the
        caller acknowledges them again (acking twice is harmless)."""
        ...


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """A driver that can queue inside the caller's database transaction (SQL drivers).

    ``dispatch(connection=conn)`` uses it: the task exists if and only if the caller's
    transaction commits.
    """

    async def enqueue_with_connection(
        self,
        connection: Any,
        messages: Sequence[OutgoingMessage],
        *,
        statuses: Sequence[StatusWrite] = (),
    ) -> None:
        """Insert `messages` using `connection`, inside whatever transaction it has open,
        after the status records `statuses` of the tracked ones among them (core passes
        them only when there are some; a driver that cannot track tasks gets none)."""
        ...


@runtime_checkable
class ResultStore(Protocol):
    """A driver that can keep task results (``keep_result`` on a task) for a while.

    Results are opaque bytes to the driver (core encodes them). A result is written at most
    a few times per task (a re-run after a crash overwrites it) and read by any number of
    waiters.
    """

    async def store_result(self, task_id: str, result: bytes, ttl: float) -> None:
        """Keep `result` for task `task_id` for `ttl` seconds (replacing an earlier one)."""
        ...

    async def fetch_result(self, task_id: str, wait: float) -> bytes | None:
        """The result of `task_id`, waiting up to `wait` seconds for it; None if there is
        none by then (not finished yet, never asked to keep one, or expired)."""
        ...


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """One task status record to store (tracking).

    Attributes:
        task_id: The task's id: the record's key.
        queue: The task's queue (for listing by queue).
        state: The task's state, a `asynctasq.lifecycle.TaskState` value (for listing by
            state).
        record: The whole record, opaque bytes (core encodes it); replaces the one before.
        ttl: Seconds to keep it from now.
    """

    task_id: str
    queue: str
    state: str
    record: bytes
    ttl: float


@runtime_checkable
class StatusStore(Protocol):
    """A driver that keeps task status records (``track=True`` on a task).

    Records are written by the process that dispatched a task, by the workers that run it and
    by whoever cancels it; each write replaces the whole record. Reads never block.
    """

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        """Store each record under its task id for its `ttl`, in the order given (of two
        writes for one id, the later wins)."""
        ...

    async def read_status(self, task_id: str) -> bytes | None:
        """The record of `task_id`, or None (never tracked, or expired)."""
        ...

    async def list_statuses(
        self, *, queue: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[bytes]:
        """Live records, most recently written first, filtered by queue and/or state."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """A driver that keeps append-only logs read with a cursor (events, cancel requests).

    Core uses two logs: ``"events"`` (the task and worker event stream) and ``"cancels"``
    (task ids whose cancellation was asked for). Entries are opaque bytes; each is kept for
    the retention given when it was appended (at least; a driver may trim later). A reader
    waits for new entries without busy polling where the broker allows (Redis streams,
    PostgreSQL LISTEN/NOTIFY); elsewhere it polls.
    """

    async def append_log(self, log: str, entries: Sequence[bytes], retention: float) -> None:
        """Append `entries`, in order, kept for at least `retention` seconds."""
        ...

    async def read_log(
        self,
        log: str,
        cursor: str | None,
        *,
        wait: float,
        limit: int = 1000,
        max_entry: int | None = None,
    ) -> tuple[list[bytes], str]:
        """Entries after `cursor` (from the oldest kept when None), oldest first, at most
        `limit`; waits up to `wait` seconds when there are none. Returns them and the cursor
        to continue from (the same cursor when there were none).

        Entries over `max_entry` bytes are passed over where the broker reads them (they
        count toward `limit`, and never travel): anyone who can write to the broker can
        append entries of any size, and each reader must stay bounded in memory. A read
        that passed over only such entries may return none, with a later cursor, before `wait`
        is up."""
        ...

    async def log_tail(self, log: str) -> str:
        """A cursor at the end of `log`: reading from it returns only later entries."""
        ...


MAX_WORKER_RECORDS = 10_000
"""Most records `WorkerRegistry.list_workers` returns: far more live workers than any fleet
runs, and anyone who can write to the broker can add records, so a listing (every refresh of
a dashboard) stays bounded work on the broker too."""


@runtime_checkable
class WorkerRegistry(Protocol):
    """A driver that keeps the records of live workers, each expiring unless renewed."""

    async def heartbeat_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        """Store (or renew) worker `worker_id`'s record for `ttl` seconds."""
        ...

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped (its record would otherwise expire)."""
        ...

    async def list_workers(self) -> list[bytes]:
        """The records of the workers whose record has not expired, `MAX_WORKER_RECORDS` at
        most (limited where the broker reads them, not after)."""
        ...


@runtime_checkable
class ClaimStore(Protocol):
    """A driver that keeps short-lived named claims, each taken atomically by one holder.

    Schedules claim each tick (``schedule:<name>:<tick>``) so that one tick is enqueued once
    however many workers run the scheduler; unique tasks claim their key for the task's id
    while it is queued or running. Keys and holders are short strings chosen by core; a claim
    ends when its holder releases it or its ttl passes (a crashed holder never keeps one).
    """

    async def claim(
        self, key: str, holder: str, ttl: float, *, replace: str | None = None
    ) -> str | None:
        """Atomically make `holder` hold `key` for `ttl` seconds from now, when nobody holds
        it (never claimed, released or expired) or when its current holder equals `replace`.

        Returns None when the claim was taken; otherwise the current holder, unchanged.
        """
        ...

    async def release_claim(self, key: str, holder: str) -> bool:
        """End the claim on `key` if `holder` holds it (compare and delete). Returns whether
        it did."""
        ...

    async def read_claim(self, key: str) -> str | None:
        """The current holder of `key`, or None (nobody, or expired)."""
        ...


@runtime_checkable
class SchemaManager(Protocol):
    """A driver whose broker keeps a versioned schema (tables) that must exist before use.

    The SQL drivers are schema managers. ``asynctasq migrate`` runs `init_schema` (and
    ``asynctasq migrate --dry-run`` prints `migration_sql`); a driver with ``auto_migrate``
    on runs it when it connects. Versions are numbered from 1 and applied in order, each once.
    """

    async def init_schema(self) -> list[int]:
        """Create the schema, or upgrade it to this driver's version.

        Idempotent: when the schema is current nothing is changed and the result is empty.
        Safe when several processes run it at once: each version is applied by exactly one
        of them, the others wait for it and then find it applied.

        Returns:
            The versions this call applied, in ascending order.
        """
        ...

    def migration_sql(self) -> str:
        """The whole schema as one script, for review or to run by hand (no connection).

        Running it has the effect of `init_schema` on an empty database: it records the
        versions it creates.
        """
        ...


__all__ = [
    "DEFAULT_VISIBILITY_TIMEOUT",
    "MALFORMED_LEASE",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "AckingDequeue",
    "ClaimStore",
    "DeadLetter",
    "Delivery",
    "Driver",
    "EventLog",
    "Failure",
    "OutgoingMessage",
    "QueueNameRule",
    "QueueStats",
    "ResultStore",
    "SchemaManager",
    "StatusStore",
    "StatusWrite",
    "TransactionalEnqueue",
    "WorkerRegistry",
]
