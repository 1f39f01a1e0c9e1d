"""Task status records: where a tracked task is in its life, as stored by the driver.

A record is one small JSON document per task, replaced whole on every change. Any process
may read it, so decoding treats it as untrusted: a record that does not parse is no record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

MAX_TEXT = 2000
"""Characters of an error or progress message a record keeps."""


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


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """`text` cut to `limit` characters (records and events stay small)."""
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
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (times as ISO 8601 strings), for JSON output."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = str(self.state)
        return out

    def encode(self) -> bytes:
        """The stored form."""
        return orjson.dumps(
            {
                "id": self.task_id,
                "s": str(self.state),
                "t": self.task_name,
                "q": self.queue,
                "n": self.attempts,
                "e": _epoch(self.enqueued_at),
                "b": _epoch(self.started_at),
                "f": _epoch(self.finished_at),
                "w": self.worker,
                "et": self.error_type,
                "em": clip(self.error_message),
                "p": self.progress,
                "pm": clip(self.progress_message),
                "c": self.cancel_requested or None,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> TaskStatus | None:
        """The status a stored record holds; None when it is not a valid record."""
        try:
            doc = orjson.loads(raw)
            return cls(
                task_id=str(doc["id"]),
                state=TaskState(doc["s"]),
                task_name=str(doc["t"]),
                queue=str(doc["q"]),
                attempts=int(doc.get("n") or 0),
                enqueued_at=_time(doc.get("e")),
                started_at=_time(doc.get("b")),
                finished_at=_time(doc.get("f")),
                worker=doc.get("w"),
                error_type=doc.get("et"),
                error_message=doc.get("em"),
                progress=doc.get("p"),
                progress_message=doc.get("pm"),
                cancel_requested=bool(doc.get("c")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError):
            return None


__all__ = ["TaskState", "TaskStatus"]
