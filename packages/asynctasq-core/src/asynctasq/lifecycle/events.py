"""The event stream: what happened to tasks and workers, as typed records.

Workers (and dispatching processes) with events on append events to the driver's ``events``
log (`EventLog`); anyone subscribes with `subscribe`. On Redis the log is a stream and on
PostgreSQL a table woken by NOTIFY, so subscribers are woken as events arrive; on the other
SQL drivers subscribers poll the table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from asynctasq.drivers.base import Driver, EventLog
from asynctasq.drivers.connections import get_driver
from asynctasq.drivers.registry import use_one_of
from asynctasq.lifecycle import _checked
from asynctasq.lifecycle.workers import MAX_RECORD

LOG = "events"
"""The name of the events log."""
DEFAULT_RETENTION = 3600.0
"""Seconds events are kept for late subscribers."""
MAX_EVENT = MAX_RECORD + (64 << 10)
"""Bytes of the largest event read: a worker's heartbeat carries its worker record (up to
`MAX_RECORD`, a worker running tens of thousands of tasks); every other event a few KiB."""
MAX_DEPTH = 16
"""Deepest nesting of an event's data read: a worker writes three levels at most, and
decoding takes 1,024 where encoding it again (``json.dumps``, orjson) fails far sooner."""


class EventType(StrEnum):
    """What an event says happened."""

    TASK_ENQUEUED = "task-enqueued"
    TASK_STARTED = "task-started"
    TASK_SUCCEEDED = "task-succeeded"
    TASK_RETRIED = "task-retried"
    TASK_FAILED = "task-failed"
    TASK_CANCELLED = "task-cancelled"
    TASK_EXPIRED = "task-expired"
    TASK_PROGRESS = "task-progress"
    WORKER_ONLINE = "worker-online"
    WORKER_HEARTBEAT = "worker-heartbeat"
    WORKER_OFFLINE = "worker-offline"
    SCHEDULE_FIRED = "schedule-fired"
    SCHEDULE_SKIPPED = "schedule-skipped"


@dataclass(frozen=True, slots=True)
class Event:
    """One event.

    Attributes:
        type: What happened.
        at: When (UTC).
        task_id: The task's id (task events).
        task_name: ``module:qualname`` (task events).
        queue: The task's queue (task events).
        worker: The worker's id (events from a worker).
        data: More, by type: ``attempt``, ``duration``, ``error_type``, ``error_message``,
            ``delay``, ``progress``, ``message``, a worker's ``info``; for schedules
            ``schedule`` and ``tick`` (fired) or ``first``, ``until``, ``reason`` (skipped).
    """

    type: EventType
    at: datetime
    task_id: str | None = None
    task_name: str | None = None
    queue: str | None = None
    worker: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for one JSON line."""
        out: dict[str, Any] = {"type": str(self.type), "at": self.at.isoformat()}
        for name in ("task_id", "task_name", "queue", "worker"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.data)
        return out

    def encode(self) -> bytes:
        """The stored form."""
        return orjson.dumps(
            {
                "y": str(self.type),
                "at": self.at.timestamp(),
                "id": self.task_id,
                "t": self.task_name,
                "q": self.queue,
                "w": self.worker,
                "d": self.data or None,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Event | None:
        """The event a stored entry holds; None when it is not a valid event. Whoever can
        write to the broker can write these: an entry past `MAX_EVENT` bytes or with data
        nested deeper than `MAX_DEPTH` is not one, so every subscriber can encode what it
        is given."""
        if len(raw) > MAX_EVENT:
            return None
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict):
                return None
            data = doc.get("d") or {}
            at = _checked.moment(doc, "at")
            if not isinstance(data, dict) or at is None or not _shallow(data, MAX_DEPTH):
                return None
            return cls(
                type=EventType(_checked.text(doc, "y")),
                at=at,
                task_id=_checked.maybe_text(doc, "id"),
                task_name=_checked.maybe_text(doc, "t"),
                queue=_checked.maybe_text(doc, "q"),
                worker=_checked.maybe_text(doc, "w"),
                data=data,
            )
        except (orjson.JSONDecodeError, ValueError):  # _checked.Invalid is a ValueError
            return None


def _shallow(value: Any, limit: int) -> bool:
    """Whether `value` (decoded JSON) nests `limit` levels deep at most."""
    level: list[Any] = [value]
    for _ in range(limit):
        inner: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                inner.extend(item.values())
            elif isinstance(item, list):
                inner.extend(item)
        if not inner:
            return True
        level = inner
    return not any(isinstance(item, dict | list) for item in level)


def make(type_: EventType, **fields: Any) -> Event:
    """An event of `type_` happening now."""
    data = fields.pop("data", None) or {}
    return Event(type=type_, at=datetime.fromtimestamp(time.time(), UTC), data=data, **fields)


def event_log(driver: Driver) -> EventLog:
    """`driver` as an `EventLog`.

    Raises:
        TypeError: the driver keeps no event log (names the drivers that do).
    """
    if not isinstance(driver, EventLog):
        raise TypeError(f"{type(driver).__name__} keeps no event stream; {use_one_of(EventLog)}")
    return driver


async def subscribe(
    *,
    driver: str | Driver | None = None,
    types: Collection[EventType | str] | None = None,
    from_start: bool = False,
    wait: float = 1.0,
) -> AsyncIterator[Event]:
    """Events as they happen, for as long as you iterate.

    ::

        async for event in asynctasq.events.subscribe(types={"task-failed"}):
            print(event.task_id, event.data["error_message"])

    Args:
        driver: The driver (a name or instance); default: the configured one.
        types: Only events of these types (default: all).
        from_start: Begin with the oldest event still kept instead of the next new one.
        wait: Longest single wait for new events (how often a quiet stream is re-checked).

    Raises:
        TypeError: the driver keeps no event stream.
    """
    log = event_log(await get_driver(driver))
    wanted = None if types is None else {EventType(t) for t in types}
    cursor = None if from_start else await log.log_tail(LOG)
    while True:
        entries, cursor = await log.read_log(LOG, cursor, wait=wait, max_entry=MAX_EVENT)
        for raw in entries:
            event = Event.decode(raw)
            if event is not None and (wanted is None or event.type in wanted):
                yield event
        if not entries:
            await asyncio.sleep(0)  # a driver that returned at once must not spin the loop


__all__ = ["DEFAULT_RETENTION", "Event", "EventType", "subscribe"]
