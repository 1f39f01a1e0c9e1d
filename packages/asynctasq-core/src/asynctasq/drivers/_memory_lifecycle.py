"""The in-memory driver's lifecycle capabilities: status records, logs, worker records."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asynctasq.drivers.base import MAX_WORKER_RECORDS, StatusWrite


@dataclass(slots=True)
class LifecycleState:
    """What the capabilities keep, shared by every instance of a namespace."""

    statuses: dict[str, tuple[StatusWrite, float, int]] = field(default_factory=dict)
    logs: dict[str, list[tuple[int, float, bytes]]] = field(default_factory=dict)
    workers: dict[str, tuple[bytes, float]] = field(default_factory=dict)
    seq: int = 0
    appended: asyncio.Condition | None = None
    appended_loop: asyncio.AbstractEventLoop | None = None


class MemoryLifecycle:
    """`StatusStore`, `EventLog` and `WorkerRegistry` in dicts (one process)."""

    _l: LifecycleState

    def _next(self) -> int:
        self._l.seq += 1
        return self._l.seq

    # -- statuses ----------------------------------------------------------------------
    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        now = time.monotonic()
        for write in writes:
            self._l.statuses[write.task_id] = (write, now + write.ttl, self._next())

    async def read_status(self, task_id: str) -> bytes | None:
        kept = self._l.statuses.get(task_id)
        if kept is None or kept[1] <= time.monotonic():
            return None
        return kept[0].record

    async def list_statuses(
        self, *, queue: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[bytes]:
        now = time.monotonic()
        live = [
            (seq, write)
            for write, until, seq in self._l.statuses.values()
            if until > now
            and (queue is None or write.queue == queue)
            and (state is None or write.state == state)
        ]
        live.sort(key=lambda item: item[0], reverse=True)
        return [write.record for _, write in live[:limit]]

    # -- logs --------------------------------------------------------------------------
    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._l.appended is None or self._l.appended_loop is not loop:
            self._l.appended, self._l.appended_loop = asyncio.Condition(), loop
        return self._l.appended

    async def append_log(self, log: str, entries: Sequence[bytes], retention: float) -> None:
        now = time.monotonic()
        kept = self._l.logs.setdefault(log, [])
        kept[:] = [e for e in kept if e[1] > now]
        kept.extend((self._next(), now + retention, bytes(e)) for e in entries)
        condition = self._condition()
        async with condition:
            condition.notify_all()

    def _after(self, log: str, cursor: str | None, limit: int) -> list[tuple[int, float, bytes]]:
        after = int(cursor) if cursor else 0
        now = time.monotonic()
        return [e for e in self._l.logs.get(log, []) if e[0] > after and e[1] > now][:limit]

    async def read_log(
        self,
        log: str,
        cursor: str | None,
        *,
        wait: float,
        limit: int = 1000,
        max_entry: int | None = None,
    ) -> tuple[list[bytes], str]:
        found = self._after(log, cursor, limit)
        if not found and wait > 0:
            condition = self._condition()
            with contextlib.suppress(TimeoutError):
                async with condition:
                    await asyncio.wait_for(
                        condition.wait_for(lambda: bool(self._after(log, cursor, limit))), wait
                    )
            found = self._after(log, cursor, limit)
        if not found:
            return [], cursor or "0"
        small = [e[2] for e in found if max_entry is None or len(e[2]) <= max_entry]
        return small, str(found[-1][0])

    async def log_tail(self, log: str) -> str:
        return str(self._l.seq)

    # -- workers -----------------------------------------------------------------------
    async def heartbeat_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        self._l.workers[worker_id] = (info, time.monotonic() + ttl)

    async def remove_worker(self, worker_id: str) -> None:
        self._l.workers.pop(worker_id, None)

    async def list_workers(self) -> list[bytes]:
        now = time.monotonic()
        live = (info for info, until in self._l.workers.values() if until > now)
        return list(itertools.islice(live, MAX_WORKER_RECORDS))


def lifecycle_state(shared: dict[str, Any], namespace: str | None) -> LifecycleState:
    """The lifecycle state for `namespace` (a fresh one when None)."""
    if namespace is None:
        return LifecycleState()
    state = shared.setdefault(namespace, LifecycleState())
    assert isinstance(state, LifecycleState)
    return state
