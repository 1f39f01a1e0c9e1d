"""Dispatch-side middleware: a before_enqueue hook may veto, an after_enqueue hook never fails
a dispatch whose task is queued (a caller retrying on error would queue it twice)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from asynctasq import Middleware, dispatch_many, task
from asynctasq.core.task import BaseTask, Task
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.drivers.connections import get_driver
from asynctasq.middleware import add_middleware, remove_middleware


@task(queue="mw")
async def noop(i: int) -> None: ...


class Note(Task[None]):
    queue = "mw"

    async def handle(self) -> None: ...


class Recorder(Middleware):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        self.events.append(("before", message.task_id))

    def after_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        self.events.append(("after", message.task_id))


class BrokenAfter(Middleware):
    def after_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        raise RuntimeError("metrics backend down")


class Veto(Middleware):
    def __init__(self, refuse: int) -> None:
        self.refuse = refuse

    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        if getattr(task, "args", ()) == (self.refuse,):
            raise PermissionError(f"task {self.refuse} is not allowed")


@pytest.fixture
def installed() -> Iterator[list[Middleware]]:
    """Middleware added for one test and removed after it, whatever happens."""
    added: list[Middleware] = []
    yield added
    for m in added:
        remove_middleware(m)


def use(installed: list[Middleware], *middleware: Middleware) -> None:
    for m in middleware:
        add_middleware(m)
        installed.append(m)


async def queued() -> list[str]:
    driver = await get_driver()
    return [d.task_id for d in await driver.dequeue(["mw"], limit=100, wait=0)]


async def test_a_raising_after_enqueue_hook_does_not_fail_the_dispatch(
    installed: list[Middleware], caplog: pytest.LogCaptureFixture
) -> None:
    outer, inner = Recorder(), Recorder()
    use(installed, outer, BrokenAfter(), inner)
    caplog.set_level(logging.ERROR, logger="asynctasq.middleware")

    task_id = await noop(1).dispatch()
    class_id = await Note().dispatch()

    assert await queued() == [task_id, class_id]  # each queued once, and dispatch() said so
    # the hooks around the broken one still ran, in reverse order for after_enqueue
    assert (
        outer.events
        == inner.events
        == [
            ("before", task_id),
            ("after", task_id),
            ("before", class_id),
            ("after", class_id),
        ]
    )
    logged = [r for r in caplog.records if r.name == "asynctasq.middleware"]
    assert len(logged) == 2
    assert all("BrokenAfter.after_enqueue" in r.getMessage() for r in logged)
    assert all(r.exc_info and "metrics backend down" in str(r.exc_info[1]) for r in logged)


async def test_a_raising_before_enqueue_hook_vetoes_the_dispatch(
    installed: list[Middleware],
) -> None:
    recorder = Recorder()
    use(installed, Veto(refuse=2), recorder)

    with pytest.raises(PermissionError, match="task 2 is not allowed") as raised:
        await noop(2).dispatch()
    assert any("Veto.before_enqueue" in note for note in raised.value.__notes__)
    assert await queued() == []
    assert recorder.events == []  # later hooks never saw the vetoed task
    allowed = await noop(3).dispatch()
    assert await queued() == [allowed]


async def test_dispatch_many_survives_a_raising_after_enqueue_hook(
    installed: list[Middleware], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    use(installed, recorder, BrokenAfter())
    caplog.set_level(logging.ERROR, logger="asynctasq.middleware")

    ids = await dispatch_many([noop(1), Note(), noop(3)])

    assert await queued() == ids
    assert [e for e in recorder.events if e[0] == "after"] == [("after", i) for i in ids]
    logged = [r for r in caplog.records if "BrokenAfter.after_enqueue" in r.getMessage()]
    assert len(logged) == 3


async def test_a_before_enqueue_veto_in_dispatch_many_queues_none_of_the_batch(
    installed: list[Middleware],
) -> None:
    recorder = Recorder()
    use(installed, Veto(refuse=2), recorder)

    with pytest.raises(PermissionError, match="task 2"):
        await dispatch_many([noop(1), noop(2), noop(3)])
    assert await queued() == []
    assert [e[0] for e in recorder.events] == ["before"]  # task 1's, before the veto
