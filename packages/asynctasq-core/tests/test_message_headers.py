"""Message headers: dispatch-side middleware attach them, worker-side middleware read them
(`Job.headers`); bounded at dispatch (the caller's error) and at the worker (hostile input:
dead-lettered, never run)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest

from asynctasq import Middleware, dispatch_many, task
from asynctasq.core.dispatch import prepare
from asynctasq.core.headers import MAX_HEADERS, MAX_NAME_LENGTH, MAX_VALUE_LENGTH
from asynctasq.core.task import BaseTask, Task
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.middleware import add_middleware, remove_middleware
from asynctasq.testing import MemoryQueues, memory_queues
from asynctasq.worker import Job

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ran: list[str] = []


@task(queue="hdr")
async def work(label: str) -> str:
    ran.append(label)
    return label


class Note(Task[None]):
    queue = "hdr"

    async def handle(self) -> None:
        ran.append("note")


class Attach(Middleware):
    """Dispatch side: attaches fixed headers (or whatever it is given, hostile included)."""

    def __init__(self, headers: Any) -> None:
        self.headers = headers
        self.calls = 0

    def message_headers(self, task: BaseTask[Any]) -> Any:
        self.calls += 1
        return self.headers


class Seen(Middleware):
    """Worker side: what each hook saw of the headers."""

    def __init__(self) -> None:
        self.before: list[dict[str, str]] = []
        self.after: list[dict[str, str]] = []

    def before_process(self, job: Job) -> None:
        self.before.append(dict(job.headers))

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        self.after.append(dict(job.headers))


@pytest.fixture
def queues() -> Iterator[MemoryQueues]:
    ran.clear()
    with memory_queues() as q:
        yield q


@pytest.fixture
def installed() -> Iterator[list[Middleware]]:
    added: list[Middleware] = []
    yield added
    for m in added:
        remove_middleware(m)


def use(installed: list[Middleware], *middleware: Middleware) -> None:
    for m in middleware:
        add_middleware(m)
        installed.append(m)


def payloads(queues: MemoryQueues) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in queues.driver.messages(state="ready")]


async def test_headers_travel_from_dispatch_to_worker_hooks(
    queues: MemoryQueues, installed: list[Middleware]
) -> None:
    first = Attach({"traceparent": TRACEPARENT, "tenant": "a"})
    second = Attach({"tenant": "b", "tracestate": "congo=t61rcWkgMzE"})
    use(installed, first, second)
    seen = Seen()
    queues.middleware.append(seen)

    await work("one").dispatch()
    await dispatch_many([work("two"), Note()])
    merged = {"traceparent": TRACEPARENT, "tenant": "b", "tracestate": "congo=t61rcWkgMzE"}
    assert [p["h"] for p in payloads(queues)] == [merged] * 3
    assert first.calls == second.calls == 3

    await queues.run_until_idle()
    assert ran == ["one", "two", "note"]
    assert seen.before == seen.after == [merged] * 3


async def test_no_middleware_means_no_headers_key_and_empty_job_headers(
    queues: MemoryQueues, installed: list[Middleware]
) -> None:
    seen = Seen()
    queues.middleware.append(seen)
    silent = Attach(None)  # a middleware that attaches nothing adds no key either
    await work("plain").dispatch()
    use(installed, silent)
    await work("silent").dispatch()
    assert silent.calls == 1
    assert all("h" not in p for p in payloads(queues))

    await queues.run_until_idle()
    assert seen.before == seen.after == [{}, {}]


def test_prepare_carries_headers_and_only_when_middleware_gives_some(
    installed: list[Middleware],
) -> None:
    assert b'"h"' not in prepare(work("x")).payload
    use(installed, Attach({}))
    assert b'"h"' not in prepare(work("x")).payload
    use(installed, Attach({"k": "v"}))
    assert orjson.loads(prepare(work("x")).payload)["h"] == {"k": "v"}


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"bad name": "v"}, "header name 'bad name' is not 1 to 64 characters"),
        ({"": "v"}, "header name '' is not"),
        ({"x" * (MAX_NAME_LENGTH + 1): "v"}, "is not 1 to 64 characters"),
        ({"naïve": "v"}, "header name 'naïve'"),
        ({1: "v"}, "header name 1 is not"),
        ({"n": 5}, "header 'n' has a int value; header values are strings"),
        ({"n": "v" * (MAX_VALUE_LENGTH + 1)}, "header 'n' has a value of 1025 characters"),
        ({"n": "line\nbreak"}, "header 'n' has control or invisible characters"),
        ({f"h{i}": "v" for i in range(MAX_HEADERS + 1)}, "33 headers, more than the 32"),
        (["traceparent", "x"], "must return a mapping of header names to strings, or None"),
    ],
)
async def test_malformed_headers_are_refused_at_dispatch(
    queues: MemoryQueues, installed: list[Middleware], headers: Any, error: str
) -> None:
    use(installed, Attach(headers))
    with pytest.raises(ValueError, match="Attach.message_headers") as raised:
        await work("never").dispatch()
    assert error in str(raised.value)
    with pytest.raises(ValueError, match="Attach.message_headers"):
        await dispatch_many([work("never")])
    assert queues.driver.messages() == []


async def test_the_header_count_is_bounded_across_middleware(
    queues: MemoryQueues, installed: list[Middleware]
) -> None:
    use(installed, Attach({f"a{i}": "v" for i in range(20)}))
    use(installed, Attach({f"b{i}": "v" for i in range(20)}))
    with pytest.raises(ValueError, match="would carry 40 headers, more than the 32 allowed"):
        await work("never").dispatch()
    assert queues.driver.messages() == []


async def test_a_raising_message_headers_hook_queues_nothing(
    queues: MemoryQueues, installed: list[Middleware]
) -> None:
    class Broken(Middleware):
        def message_headers(self, task: BaseTask[Any]) -> Mapping[str, str] | None:
            raise RuntimeError("tracer not configured")

    use(installed, Broken())
    with pytest.raises(RuntimeError, match="tracer not configured") as raised:
        await work("never").dispatch()
    assert any("Broken.message_headers" in note for note in raised.value.__notes__)
    assert queues.driver.messages() == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (["traceparent"], "the headers are not an object"),
        ("traceparent", "the headers are not an object"),
        ({"n": 1}, "header 'n' has a int value"),
        ({"n": None}, "header 'n' has a NoneType value"),
        ({"n": {"nested": "x"}}, "header 'n' has a dict value"),
        ({"n": "v" * (MAX_VALUE_LENGTH + 1)}, "a value of 1025 characters"),
        ({"n": "\x1b[31mred"}, "control or invisible characters"),
        ({"n\x00": "v"}, "header name 'n\\x00' is not"),
        ({"a/b": "v"}, "header name 'a/b' is not"),
        ({"x" * 10_000: "v"}, "is not 1 to 64 characters"),
        ({f"h{i}": "v" for i in range(MAX_HEADERS + 1)}, "33 headers, more than the 32"),
    ],
)
async def test_hostile_headers_in_a_message_are_dead_lettered_never_run(
    queues: MemoryQueues, headers: Any, reason: str
) -> None:
    doc = orjson.loads(prepare(work("hostile")).payload)
    doc["h"] = headers
    await queues.driver.enqueue(OutgoingMessage("hostile-1", "hdr", orjson.dumps(doc)))
    seen = Seen()
    queues.middleware.append(seen)

    await queues.run_until_idle()

    assert ran == []
    assert seen.before == []
    [letter] = queues.driver.dead_letters()
    assert letter.task_id == "hostile-1"
    assert "malformed headers ('h')" in letter.failure.message
    assert reason in letter.failure.message
    assert len(letter.failure.message) < 500  # hostile names and values are shown bounded


async def test_a_message_at_the_bounds_runs(queues: MemoryQueues) -> None:
    headers = {f"{i:02d}".ljust(MAX_NAME_LENGTH, "n"): "v" * MAX_VALUE_LENGTH for i in range(32)}
    doc = orjson.loads(prepare(work("edge")).payload)
    doc["h"] = headers
    await queues.driver.enqueue(OutgoingMessage("edge-1", "hdr", orjson.dumps(doc)))
    seen = Seen()
    queues.middleware.append(seen)
    await queues.run_until_idle()
    assert ran == ["edge"]
    assert seen.before == [headers]
