"""A task configured with a chain method and dropped without dispatch() warns, as a coroutine
that was never awaited does; nothing else that builds or drops task instances does."""

from __future__ import annotations

import asyncio
import copy
import gc
import pickle
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from asynctasq import dispatch_many, task
from asynctasq.core.task import SyncTask, Task
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker

ran: list[str] = []


@task(queue="undispatched")
async def send_email(to: str) -> None:
    ran.append(to)


class Report(Task[None]):
    queue = "undispatched"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    async def handle(self) -> None:
        ran.append(self.name)


class Blocking(SyncTask[int]):
    def handle_sync(self) -> int:
        return 1


@contextmanager
def undispatched_warnings() -> Iterator[list[str]]:
    """The texts of the warnings about undispatched tasks raised inside the block."""
    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield texts
        gc.collect()  # nothing here needs it under CPython; other interpreters collect later
    texts += [str(w.message) for w in caught if "never dispatched" in str(w.message)]


def test_a_delay_without_dispatch_warns_naming_the_task_and_the_celery_habit() -> None:
    with pytest.warns(RuntimeWarning, match=r"send_email was configured with \.delay\(\)") as w:
        send_email("a@example.com").delay(5)
    [warning] = w.list
    assert "queues nothing" in str(warning.message) and ".dispatch()" in str(warning.message)
    assert warning.filename == __file__  # points at the line that dropped it


@pytest.mark.parametrize(
    ("make", "method"),
    [
        (lambda: send_email("a").on_queue("elsewhere"), "on_queue"),
        (lambda: send_email("a").retry_after(3), "retry_after"),
        (lambda: send_email("a").max_attempts(2), "max_attempts"),
        (lambda: Report("r").timeout(30), "timeout"),
        (lambda: Report("r").visibility_timeout(60).delay(1), "delay"),
        (lambda: Blocking().on_queue("q"), "on_queue"),
    ],
)
def test_every_chain_method_of_function_and_class_tasks_warns(
    make: Callable[[], Any], method: str
) -> None:
    with undispatched_warnings() as texts:
        make()
    assert len(texts) == 1 and f".{method}()" in texts[0]


async def test_nothing_warns_for_instances_used_as_intended() -> None:
    from asynctasq.core.task import handed_over

    with undispatched_warnings() as texts:
        # built to inspect or to run directly, never configured for a dispatch
        assert send_email("a").args == ("a",)
        assert Report("r").timeout == Report.timeout  # reading an option is not configuring
        assert Report("r", queue="q", delay=5).name == "r"  # constructor options
        await Report("direct").handle()
        assert Blocking().handle_sync() == 1
        # dispatched, alone or in a batch, with or without a chain
        await send_email("b").delay(0).dispatch()
        await Report("c").on_queue("undispatched").dispatch()
        await dispatch_many([send_email("d").retry_after(1), Report("e").timeout(9)])
        # a chain call that failed returned nothing to forget
        with pytest.raises(ValueError, match="delay"):
            send_email("f").delay(-1)
        # handed over (pickled to another process, or to a helper that may drop it)
        pickled = pickle.dumps(send_email("g").on_queue("q"))
        pickle.loads(pickled)
        copy.copy(Report("h").delay(3))
        later = send_email("i").delay(1)
        handed_over(later)
        del later
    assert texts == []


async def test_a_dispatch_that_fails_does_not_warn_as_well() -> None:
    class Opaque:
        pass

    with undispatched_warnings() as texts:
        with pytest.raises(TypeError, match="Opaque"):
            await send_email(Opaque()).delay(1).dispatch()  # type: ignore[arg-type]
        # one bad task in a batch: the others were handed to dispatch_many too
        with pytest.raises(TypeError, match="Opaque"):
            await dispatch_many(
                [send_email("x").on_queue("q"), send_email(Opaque()), Report("y").delay(1)]  # type: ignore[arg-type]
            )
    assert texts == []


async def test_instances_the_worker_builds_never_warn() -> None:
    ran.clear()
    with undispatched_warnings() as texts:
        await send_email("w1").delay(0).on_queue("undispatched").dispatch()
        await Report("w2").timeout(30).dispatch()
        driver = await get_driver()
        worker = Worker(driver, queues=["undispatched"], burst=True, install_signal_handlers=False)
        await asyncio.wait_for(worker.run(), 30)
    assert sorted(ran) == ["w1", "w2"]
    assert texts == []


async def test_awaiting_a_task_instead_of_dispatching_it_says_how_to_queue_it() -> None:
    before = list(ran)
    builders = ((lambda: send_email("a@b.c"), "send_email"), (lambda: Report("x"), "Report"))
    for build, call in builders:
        with pytest.raises(TypeError) as caught:
            await build()
        assert f"`await {call}(...).dispatch()` queues it" in str(caught.value)
        # The same through asyncio, which wraps anything with __await__
        with pytest.raises(TypeError, match=r"\.dispatch\(\)` queues it"):
            await asyncio.gather(build())
    assert ran == before  # nothing ran inline
