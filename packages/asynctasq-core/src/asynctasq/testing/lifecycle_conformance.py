"""Conformance tests of the lifecycle capabilities (`StatusStore`, `EventLog`,
`WorkerRegistry`), part of `DriverConformance`; each skips for a driver without it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import ClassVar

import pytest

from asynctasq.drivers.base import Driver, EventLog, StatusStore, StatusWrite, WorkerRegistry


def _id() -> str:
    return str(uuid.uuid4())


class LifecycleConformance:
    """The lifecycle capabilities' contract (mixed into `DriverConformance`)."""

    delay_slack: ClassVar[float] = 0.5
    push_logs: ClassVar[bool] = False
    """A waiting `read_log` is woken by an append (no polling delay); set by pushing drivers."""

    # -- StatusStore -----------------------------------------------------------------------
    @staticmethod
    def _statuses(driver: Driver) -> StatusStore:
        if not isinstance(driver, StatusStore):
            pytest.skip(f"{type(driver).__name__} does not track task status")
        return driver

    async def test_a_status_is_written_replaced_and_read(self, driver: Driver) -> None:
        store = self._statuses(driver)
        task_id, queue = _id(), f"st-{uuid.uuid4().hex[:8]}"
        assert await store.read_status(task_id) is None
        await store.write_statuses([StatusWrite(task_id, queue, "queued", b'{"s":"queued"}', 60)])
        assert await store.read_status(task_id) == b'{"s":"queued"}'
        await store.write_statuses(
            [
                StatusWrite(task_id, queue, "running", b'{"s":"running"}', 60),
                StatusWrite(task_id, queue, "succeeded", b'{"s":"succeeded"}', 60),
            ]
        )
        assert await store.read_status(task_id) == b'{"s":"succeeded"}'
        [only] = await store.list_statuses(queue=queue)
        assert only == b'{"s":"succeeded"}'
        assert await store.list_statuses(queue=queue, state="running") == []

    async def test_statuses_are_listed_by_queue_and_state_newest_first(
        self, driver: Driver
    ) -> None:
        store = self._statuses(driver)
        queue, other = f"st-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
        ids = [_id() for _ in range(5)]
        for n, task_id in enumerate(ids):  # one write at a time: their order is the test
            state = "running" if n % 2 else "queued"
            record = f'{{"n":{n}}}'.encode()
            await store.write_statuses([StatusWrite(task_id, queue, state, record, 60)])
        await store.write_statuses([StatusWrite(_id(), other, "running", b'{"n":99}', 60)])
        everything = await store.list_statuses(queue=queue)
        assert everything == [f'{{"n":{n}}}'.encode() for n in (4, 3, 2, 1, 0)]
        assert await store.list_statuses(queue=queue, state="running") == [b'{"n":3}', b'{"n":1}']
        assert await store.list_statuses(queue=queue, limit=2) == [b'{"n":4}', b'{"n":3}']
        # A rewrite makes a record the newest again.
        await store.write_statuses([StatusWrite(ids[0], queue, "running", b'{"n":0}', 60)])
        assert (await store.list_statuses(queue=queue, state="running"))[0] == b'{"n":0}'
        mine = await store.list_statuses(state="running", limit=1000)
        assert b'{"n":99}' in mine and b'{"n":3}' in mine

    async def test_a_status_expires(self, driver: Driver) -> None:
        store = self._statuses(driver)
        task_id, queue = _id(), f"st-{uuid.uuid4().hex[:8]}"
        await store.write_statuses([StatusWrite(task_id, queue, "succeeded", b"{}", 1)])
        assert await store.read_status(task_id) == b"{}"
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        assert await store.read_status(task_id) is None
        assert await store.list_statuses(queue=queue) == []

    # -- EventLog --------------------------------------------------------------------------
    @staticmethod
    def _logs(driver: Driver) -> EventLog:
        if not isinstance(driver, EventLog):
            pytest.skip(f"{type(driver).__name__} keeps no event log")
        return driver

    async def test_a_log_is_read_in_order_with_a_cursor(self, driver: Driver) -> None:
        logs = self._logs(driver)
        log, other = f"log-{uuid.uuid4().hex[:8]}", f"log-{uuid.uuid4().hex[:8]}"
        entries, cursor = await logs.read_log(log, None, wait=0)
        assert entries == []
        await logs.append_log(log, [b"a", b"\x00\xffb", b"c" * 10_000], 60)
        await logs.append_log(other, [b"elsewhere"], 60)
        entries, cursor = await logs.read_log(log, cursor, wait=0)
        assert entries == [b"a", b"\x00\xffb", b"c" * 10_000]
        assert await logs.read_log(log, cursor, wait=0) == ([], cursor)
        await logs.append_log(log, [b"d", b"e", b"f"], 60)
        first, cursor2 = await logs.read_log(log, cursor, wait=0, limit=2)
        rest, _ = await logs.read_log(log, cursor2, wait=0)
        assert (first, rest) == ([b"d", b"e"], [b"f"])
        everything, _ = await logs.read_log(log, None, wait=0)
        assert everything == [b"a", b"\x00\xffb", b"c" * 10_000, b"d", b"e", b"f"]

    async def test_entries_over_the_size_a_reader_takes_are_passed_over(
        self, driver: Driver
    ) -> None:
        """Anyone who can write to the broker can append entries of any size: a reader that
        sets `max_entry` never receives a larger one, and reads on past it."""
        logs = self._logs(driver)
        log = f"log-{uuid.uuid4().hex[:8]}"
        await logs.append_log(log, [b"a", b"x" * 5000, b"b" * 100, b"y" * 101], 60)
        entries, cursor = await logs.read_log(log, None, wait=0, max_entry=100)
        assert entries == [b"a", b"b" * 100]
        await logs.append_log(log, [b"z" * 200], 60)
        only_large, after = await logs.read_log(log, cursor, wait=0, max_entry=100)
        assert only_large == [] and after != cursor  # past the large one
        await logs.append_log(log, [b"c"], 60)
        assert (await logs.read_log(log, after, wait=0, max_entry=100))[0] == [b"c"]
        everything, _ = await logs.read_log(log, None, wait=0)
        assert len(everything) == 6

    async def test_reading_from_the_tail_gives_only_later_entries(self, driver: Driver) -> None:
        logs = self._logs(driver)
        log = f"log-{uuid.uuid4().hex[:8]}"
        await logs.append_log(log, [b"old"], 60)
        tail = await logs.log_tail(log)
        assert await logs.read_log(log, tail, wait=0) == ([], tail)
        await logs.append_log(log, [b"new"], 60)
        entries, _ = await logs.read_log(log, tail, wait=0)
        assert entries == [b"new"]

    async def test_a_waiting_reader_gets_an_entry_appended_later(self, driver: Driver) -> None:
        logs = self._logs(driver)
        log = f"log-{uuid.uuid4().hex[:8]}"
        tail = await logs.log_tail(log)
        reader = asyncio.ensure_future(logs.read_log(log, tail, wait=8))
        await asyncio.sleep(0.2)
        assert not reader.done()
        started = time.monotonic()
        await logs.append_log(log, [b"hello"], 60)
        entries, _ = await asyncio.wait_for(reader, 10)
        assert entries == [b"hello"]
        # Pushing drivers wake the reader; polling ones within their poll interval.
        assert time.monotonic() - started < (0.5 if self.push_logs else 2.0)

    async def test_log_entries_expire_after_their_retention(self, driver: Driver) -> None:
        logs = self._logs(driver)
        log = f"log-{uuid.uuid4().hex[:8]}"
        await logs.append_log(log, [b"short"], 1)
        await logs.append_log(log, [b"long"], 60)
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        await logs.append_log(log, [b"later"], 60)  # appending is where some drivers trim
        entries, _ = await logs.read_log(log, None, wait=0)
        assert entries == [b"long", b"later"]

    # -- WorkerRegistry --------------------------------------------------------------------
    @staticmethod
    def _registry(driver: Driver) -> WorkerRegistry:
        if not isinstance(driver, WorkerRegistry):
            pytest.skip(f"{type(driver).__name__} keeps no worker registry")
        return driver

    async def test_workers_heartbeat_expire_and_leave(self, driver: Driver) -> None:
        registry = self._registry(driver)
        a, b = f"w-{uuid.uuid4().hex}", f"w-{uuid.uuid4().hex}"
        await registry.heartbeat_worker(a, a.encode() + b":1", 60)
        await registry.heartbeat_worker(b, b.encode() + b":1", 1)
        mine = {r for r in await registry.list_workers() if r.startswith((a.encode(), b.encode()))}
        assert mine == {a.encode() + b":1", b.encode() + b":1"}
        await registry.heartbeat_worker(a, a.encode() + b":2", 60)  # renewed, replaced
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        mine = {r for r in await registry.list_workers() if r.startswith((a.encode(), b.encode()))}
        assert mine == {a.encode() + b":2"}  # b missed its heartbeat
        await registry.remove_worker(a)
        assert not [r for r in await registry.list_workers() if r.startswith(a.encode())]
