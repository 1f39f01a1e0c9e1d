"""Records of live workers, as each worker stores them with every heartbeat."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from asynctasq.lifecycle import _checked
from asynctasq.lifecycle.status import clip


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
        """The record a stored entry holds; None when it is not valid. Whoever can write to
        the broker can write these: a record past `MAX_RECORD` bytes is not one, and each
        name is cut to `MAX_NAME` characters, so listing workers stays bounded work."""
        if len(raw) > MAX_RECORD:
            return None
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict):
                return None
            queues, running = doc.get("queues"), doc.get("running", [])
            started, beat = _checked.moment(doc, "started_at"), _checked.moment(doc, "heartbeat_at")
            if (
                not isinstance(queues, list)
                or not isinstance(running, list)
                or not all(isinstance(x, str) for x in [*queues, *running])
                or started is None
                or beat is None
            ):
                return None
            return cls(
                worker_id=_cut(_checked.text(doc, "worker_id")),
                host=_cut(_checked.text(doc, "host")),
                pid=_checked.count(doc, "pid"),
                queues=tuple(map(_cut, queues)),
                concurrency=_checked.count(doc, "concurrency"),
                version=_cut(_checked.text(doc, "version")),
                started_at=started,
                heartbeat_at=beat,
                running=tuple(map(_cut, running)),
                processed=_checked.count(doc, "processed"),
                succeeded=_checked.count(doc, "succeeded"),
                failed=_checked.count(doc, "failed"),
                retried=_checked.count(doc, "retried"),
            )
        except (orjson.JSONDecodeError, ValueError):  # _checked.Invalid is a ValueError
            return None


MAX_RECORD = 4 << 20
"""Bytes of the largest worker record read: a worker serving 1,000 queues and running 50,000
tasks writes about 2 MiB."""
MAX_NAME = 256
"""Characters kept of an id, host, version or queue name of a worker record (a queue name
is at most 200, a host name 255 bytes)."""


def _cut(text: str) -> str:
    return clip(text, MAX_NAME - 3)  # with its "...", at most MAX_NAME


__all__ = ["MAX_NAME", "MAX_RECORD", "WorkerInfo"]
