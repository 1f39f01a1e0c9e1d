"""Records of live workers, as each worker stores them with every heartbeat."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker.

    Attributes:
        worker_id: ``host:pid:random``.
        host: Host name.
        pid: Process id.
        queues: Queues it serves.
        concurrency: Most tasks it runs at once.
        version: AsyncTasQ version.
        started_at: When it started.
        heartbeat_at: Its last heartbeat.
        running: Ids of the tasks it runs now.
        processed: Tasks it took since it started.
        succeeded: ... that succeeded.
        failed: ... that were dead-lettered.
        retried: ... that were retried.
    """

    worker_id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    running: tuple[str, ...] = ()
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain values (times as ISO 8601), for JSON output."""
        out = dataclasses.asdict(self)
        out["queues"] = list(self.queues)
        out["running"] = list(self.running)
        out["started_at"] = self.started_at.isoformat()
        out["heartbeat_at"] = self.heartbeat_at.isoformat()
        return out

    def encode(self) -> bytes:
        """The stored form."""
        doc = self.as_dict()
        doc["started_at"] = self.started_at.timestamp()
        doc["heartbeat_at"] = self.heartbeat_at.timestamp()
        return orjson.dumps(doc)

    @classmethod
    def decode(cls, raw: bytes) -> WorkerInfo | None:
        """The record a stored entry holds; None when it is not valid."""
        try:
            doc = orjson.loads(raw)
            return cls(
                worker_id=str(doc["worker_id"]),
                host=str(doc["host"]),
                pid=int(doc["pid"]),
                queues=tuple(str(q) for q in doc["queues"]),
                concurrency=int(doc["concurrency"]),
                version=str(doc["version"]),
                started_at=datetime.fromtimestamp(float(doc["started_at"]), UTC),
                heartbeat_at=datetime.fromtimestamp(float(doc["heartbeat_at"]), UTC),
                running=tuple(str(t) for t in doc.get("running", ())),
                processed=int(doc.get("processed", 0)),
                succeeded=int(doc.get("succeeded", 0)),
                failed=int(doc.get("failed", 0)),
                retried=int(doc.get("retried", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError):
            return None


__all__ = ["WorkerInfo"]
