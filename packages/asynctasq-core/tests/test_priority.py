"""Task priorities: the setting on both task styles, its validation, and the order a worker
starts tasks in (on the in-memory driver; the drivers prove the order in the conformance
suite)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from asynctasq import Task, dispatch_many, task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker

started: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    started.clear()


@task(queue="prio")
async def plain(name: str) -> None:
    started.append(name)


@task(queue="prio", priority=6)
async def urgent(name: str) -> None:
    started.append(name)


class Report(Task[None]):
    queue = "prio"
    priority = 4

    def __init__(self, name: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    async def handle(self) -> None:
        started.append(self.name)


class Plain(Task[None]):
    queue = "prio"

    async def handle(self) -> None:
        started.append("plain-class")


def test_default_is_zero() -> None:
    assert prepare(plain("a")).priority == 0
    assert prepare(Plain()).priority == 0


def test_decorator_class_attribute_and_chain_methods() -> None:
    assert prepare(urgent("a")).priority == 6
    assert prepare(urgent("a").priority(9)).priority == 9
    assert prepare(plain("a").priority(2)).priority == 2
    assert prepare(Report()).priority == 4
    assert prepare(Report().priority(0)).priority == 0
    assert prepare(Plain().priority(1)).priority == 1
    assert Report.priority == 4  # read on the class: the configured value
    assert Report().priority == 4  # read on an instance: the value it will be sent with


def test_a_chain_override_is_for_that_dispatch_only() -> None:
    assert prepare(urgent("a").priority(1)).priority == 1
    assert prepare(urgent("b")).priority == 6


@pytest.mark.parametrize("bad", [-1, 10, 100, 1.0, 2.5, True, "3", None])
def test_out_of_range_or_not_a_whole_number_is_refused_at_the_call(bad: Any) -> None:
    with pytest.raises(ValueError, match="priority must be") as caught:
        plain("a").priority(bad)
    assert repr(bad) in str(caught.value)


def test_refused_on_the_decorator_and_the_class() -> None:
    with pytest.raises(ValueError, match=r"priority must be from 0 \(the default\) to 9"):
        task(priority=10)
    with pytest.raises(ValueError, match="Bad.priority: priority must be"):

        class Bad(Task[None]):
            priority = -3

            async def handle(self) -> None: ...


async def test_a_worker_starts_higher_priorities_first_and_equal_ones_in_order() -> None:
    await dispatch_many(
        [
            plain("p0-first"),
            Report("p4"),
            urgent("p6"),
            plain("p0-second"),
            plain("p9").priority(9),
            urgent("p6-later"),
            Plain(),
        ]
    )
    worker = Worker(
        await get_driver(),
        queues=["prio"],
        concurrency=1,
        poll_wait=0.05,
        install_signal_handlers=False,
    )
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 10
    while len(started) < 7:
        assert time.monotonic() < deadline, started
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(runner, 10)
    assert started == ["p9", "p6", "p6-later", "p4", "p0-first", "p0-second", "plain-class"]
