"""Task status records: where a tracked task is in its life, as stored by the driver.

A record is one small JSON document per task, replaced whole on every change. Any process
may read it, so decoding treats it as untrusted: a record that does not parse is no record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, overload

import orjson

from asynctasq.lifecycle import _checked

MAX_TEXT = 2000
"""Characters of an error or progress message a record keeps."""
MAX_RECORD = 64 << 10
"""Bytes of the largest status record read (two messages of `MAX_TEXT` characters, four bytes
each in UTF-8, and ids, names and times)."""


class TaskState(StrEnum):
    """Where a task is in its life."""

    QUEUED = "queued"
    """Waiting in its queue, ready to run."""
    SCHEDULED = "scheduled"
    """Waiting for its delay (or a retry's) to pass."""
    RUNNING = "running"
    """A worker runs it now."""
    RETRYING = "retrying"
    """A run failed; it waits for its retry delay before the next run."""
    SUCCEEDED = "succeeded"
    """Its last run returned."""
    FAILED = "failed"
    """It failed for good and was dead-lettered."""
    CANCELLED = "cancelled"
    """Cancelled before or while it ran."""
    EXPIRED = "expired"
    """Not run because it was past its expiry when a worker took it."""

    @property
    def finished(self) -> bool:
        """Whether the task will not run again (unless a dead letter is retried)."""
        return self in _FINISHED


_FINISHED = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED}
)


KEYS: dict[str, str] = {
    "task_id": "id",
    "state": "s",
    "task_name": "t",
    "queue": "q",
    "attempts": "n",
    "enqueued_at": "e",
    "started_at": "b",
    "finished_at": "f",
    "worker": "w",
    "error_type": "et",
    "error_message": "em",
    "progress": "p",
    "progress_message": "pm",
    "cancel_requested": "c",
}
"""Each field's key in the stored record (times as epoch seconds). Workers build records as
plain dicts with these keys: a task's life costs no `TaskStatus` objects on the hot path."""


@overload
def clip(text: str, limit: int = MAX_TEXT) -> str: ...
@overload
def clip(text: None, limit: int = MAX_TEXT) -> None: ...
def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """`text` cut to `limit` characters and ``...`` (records and events stay small)."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "..."


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A tracked task's status.

    Attributes:
        task_id: The id `dispatch()` returned.
        state: Where the task is (`TaskState`).
        task_name: ``module:qualname``.
        queue: Its queue.
        attempts: Runs started so far.
        enqueued_at: When it was dispatched.
        started_at: When its last run started.
        finished_at: When it finished for good (succeeded, failed, cancelled, expired).
        worker: The id of the worker that runs or ran it last.
        error_type: The last run's exception type, when a run failed.
        error_message: That exception's message (cut to 2,000 characters).
        progress: The last progress a run reported, from 0.0 to 1.0.
        progress_message: The message that came with it.
        cancel_requested: Whether a cancellation was asked for.
    """

    task_id: str
    state: TaskState
    task_name: str
    queue: str
    attempts: int = 0
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        """Whether the task will not run again."""
        return self.state.finished

    def replace(self, **changes: Any) -> TaskStatus:
        """A copy with `changes` applied."""
        # Workers call this twice per tracked task: a plain constructor call costs a third
        # of `dataclasses.replace`, which inspects the fields every time.
        values = {name: getattr(self, name) for name in _FIELD_NAMES}
        values.update(changes)
        return TaskStatus(**values)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (times as ISO 8601 strings), for JSON output."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = str(self.state)
        return out

    def encode(self) -> bytes:
        """The stored form (`KEYS`; fields without a value are left out: records stay small)."""
        doc: dict[str, Any] = {}
        for name, key in KEYS.items():
            value = getattr(self, name)
            if value is None or value is False or (name == "attempts" and value == 0):
                continue
            if isinstance(value, datetime):
                value = value.timestamp()
            elif name in ("error_message", "progress_message"):
                value = clip(value)
            doc[key] = str(value) if name == "state" else value
        return orjson.dumps(doc)

    @classmethod
    def decode(cls, raw: bytes) -> TaskStatus | None:
        """The status a stored record holds; None when it is not a valid record. Whoever can
        write to the broker can write these: a record past `MAX_RECORD` bytes is not one (a
        worker writes a few KiB at most), and messages are cut to `MAX_TEXT` characters."""
        if len(raw) > MAX_RECORD:
            return None
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict):
                return None
            return cls(
                task_id=_checked.text(doc, "id"),
                state=TaskState(_checked.text(doc, "s")),
                task_name=_checked.text(doc, "t"),
                queue=_checked.text(doc, "q"),
                attempts=_checked.count(doc, "n"),
                enqueued_at=_checked.moment(doc, "e"),
                started_at=_checked.moment(doc, "b"),
                finished_at=_checked.moment(doc, "f"),
                worker=_checked.maybe_text(doc, "w"),
                error_type=_checked.maybe_text(doc, "et"),
                error_message=clip(_checked.maybe_text(doc, "em")),
                progress=_checked.number(doc, "p", low=0.0, high=1.0),
                progress_message=clip(_checked.maybe_text(doc, "pm")),
                cancel_requested=doc.get("c") is True,
            )
        except (orjson.JSONDecodeError, ValueError):  # _checked.Invalid is a ValueError
            return None


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TaskStatus))

__all__ = ["TaskState", "TaskStatus"]
