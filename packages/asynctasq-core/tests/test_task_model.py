"""The task model: decorator, class tasks, chain methods and call-site validation."""

from __future__ import annotations

import math
import uuid

import orjson
import pytest

from asynctasq import task
from asynctasq.core.function import FunctionTask, TaskFunction
from asynctasq.core.task import AsyncProcessTask, SyncProcessTask, SyncTask, Task
from asynctasq.drivers.connections import get_driver


@task
async def bare(x: int) -> int:
    return x * 2


@task(queue="emails", max_attempts=5, retry_delay=120, timeout=30, visibility_timeout=600)
def configured(to: str, subject: str = "hi") -> str:
    return f"{to}:{subject}"


@task(process=True)
def in_process(n: int) -> int:
    return n


class SendEmail(Task[bool]):
    queue = "emails"
    max_retries = 5
    retry_delay = 120
    timeout = 30

    def __init__(self, to: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.to = to

    async def handle(self) -> bool:
        return True


class Blocking(SyncTask[int]):
    def handle_sync(self) -> int:
        return 1


def _doc(payload: bytes) -> dict:  # type: ignore[type-arg]
    return orjson.loads(payload)  # type: ignore[no-any-return]


def test_bare_decorator_returns_task_function_and_call_returns_task() -> None:
    assert isinstance(bare, TaskFunction)
    call = bare(3)
    assert isinstance(call, FunctionTask)
    assert call.args == (3,)
    assert call.execution == "async"
    assert configured("a").execution == "thread"
    assert in_process(1).execution == "process"


def test_wrong_arguments_fail_at_the_call() -> None:
    with pytest.raises(TypeError, match="bare"):
        bare(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword"):
        configured(to="a", nope=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "5", None, True])
def test_bad_delay_is_refused_before_anything_is_queued(bad: object) -> None:
    with pytest.raises(ValueError, match="delay"):
        bare(1).delay(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"visibility_timeout": 0}, "visibility_timeout"),
        ({"max_attempts": -2}, "max_attempts"),
        ({"retry_delay": math.inf}, "retry_delay"),
        ({"queue": ""}, "queue"),
    ],
)
def test_bad_decorator_settings_are_refused(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        task(**kwargs)(lambda: None)  # type: ignore[call-overload]


def test_bad_class_settings_are_refused_at_definition() -> None:
    with pytest.raises(ValueError, match="Broken.timeout"):

        class Broken(Task[None]):
            timeout = -5


async def test_dispatch_returns_uuid_and_queues_on_the_task_queue() -> None:
    task_id = await configured("a@b.c").dispatch()
    assert str(uuid.UUID(task_id)) == task_id
    driver = await get_driver()
    [delivery] = await driver.dequeue(["emails"], limit=1, wait=0)
    assert delivery.task_id == task_id
    doc = _doc(delivery.payload)
    assert doc["task"].endswith(":configured")
    assert doc["v"] == 2
    assert doc["o"]["ma"] == 5 and doc["o"]["rd"] == 120 and doc["o"]["rs"] == "fixed"
    assert doc["o"]["to"] == 30 and doc["o"]["vt"] == 600
    assert doc["args"] == ["a@b.c"]


async def test_chain_methods_override_for_one_dispatch_in_any_order() -> None:
    await (
        bare(1)
        .visibility_timeout(60)
        .timeout(9)
        .on_queue("q2")
        .max_attempts(7)
        .retry_after(3)
        .dispatch()
    )
    driver = await get_driver()
    [delivery] = await driver.dequeue(["q2"], limit=1, wait=0)
    assert delivery.visibility_timeout == 60
    o = _doc(delivery.payload)["o"]
    assert (o["ma"], o["rd"], o["to"], o["vt"]) == (7, 3, 9, 60)
    # the decorator's values are untouched for the next call
    await bare(2).dispatch()
    [delivery] = await driver.dequeue(["default"], limit=1, wait=0)
    assert _doc(delivery.payload)["o"]["ma"] == 3


async def test_class_task_attributes_and_chain_overrides() -> None:
    assert SendEmail.timeout == 30
    assert SendEmail.max_retries == 5
    email = SendEmail(to="x@y.z")
    assert email.timeout == 30  # reads as the value
    await email.timeout(99).max_attempts(2).on_queue("other").dispatch()
    driver = await get_driver()
    [delivery] = await driver.dequeue(["other"], limit=1, wait=0)
    doc = _doc(delivery.payload)
    assert doc["attrs"] == {"to": "x@y.z"}
    assert doc["o"]["ma"] == 2 and doc["o"]["to"] == 99
    assert email._task_id == delivery.task_id
    assert email._dispatched_at is not None


async def test_class_task_defaults_and_metadata() -> None:
    blocking = Blocking()
    assert blocking._attempts == 0 and blocking._task_id is None
    assert blocking.execution == "thread"
    assert AsyncProcessTask.__mro__[1] is Task
    assert SyncProcessTask.__mro__[1] is SyncTask
    await blocking.dispatch()
    driver = await get_driver()
    [delivery] = await driver.dequeue(["default"], limit=1, wait=0)
    assert _doc(delivery.payload)["o"]["ma"] == 3  # default max attempts


async def test_non_serializable_argument_names_the_argument_and_type() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"'subject'.*Opaque"):
        await configured("a", subject=Opaque()).dispatch()  # type: ignore[arg-type]
    driver = await get_driver()
    assert await driver.dequeue(["emails"], limit=1, wait=0) == []


async def test_direct_handle_call_works_like_a_plain_method() -> None:
    assert await SendEmail(to="t").handle() is True
    await SendEmail(to="t").failed(ValueError("x"))


def test_calls_are_checked_against_the_signature_naming_the_argument() -> None:
    @task
    def shaped(a: int, /, b: int, *, c: int, d: int = 0) -> None: ...

    for _ in range(2):  # the second time, from the remembered call shapes
        shaped(1, 2, c=3)
        shaped(1, b=2, c=3, d=4)
        for bad_args, bad_kwargs, error in [
            ((1,), {"c": 3}, "missing a required argument: 'b'"),
            ((1, 2), {}, "missing a required argument: 'c'"),
            ((1, 2, 3), {"c": 3}, "too many positional arguments"),
            ((), {"a": 1, "b": 2, "c": 3}, "'a' parameter is positional only"),
            ((1, 2), {"b": 2, "c": 3}, "multiple values for argument 'b'"),
            ((1, 2), {"c": 3, "e": 5}, "unexpected keyword argument 'e'"),
        ]:
            with pytest.raises(TypeError, match=r"[.:]shaped\(\): ") as raised:
                shaped(*bad_args, **bad_kwargs)
            assert error in str(raised.value)


def test_remembered_call_shapes_are_bounded() -> None:
    @task
    def anything(**kwargs: int) -> None: ...

    for i in range(200):
        anything(**{f"k{i}": i})
    assert len(anything._fitting_shapes) == 64
    with pytest.raises(TypeError, match="too many positional arguments"):
        anything(1)  # type: ignore[call-arg]


async def test_settings_cache_follows_configuration_changes() -> None:
    from asynctasq import set_global_config

    await bare(1).dispatch()
    set_global_config(task_defaults={"max_attempts": 9, "queue": "elsewhere"})
    await bare(2).dispatch()
    driver = await get_driver()
    [delivery] = await driver.dequeue(["elsewhere"], limit=1, wait=0)
    assert _doc(delivery.payload)["o"]["ma"] == 9


async def test_dispatch_many_groups_by_driver_and_keeps_order() -> None:
    from asynctasq import dispatch_many
    from asynctasq.testing import MemoryDriver

    other = MemoryDriver()

    @task(driver=other, queue="elsewhere")
    async def on_other(i: int) -> None: ...

    ids = await dispatch_many([bare(1), on_other(2), bare(3), on_other(4)])
    assert len(set(ids)) == 4
    default = await get_driver()
    mine = await default.dequeue(["default"], limit=10, wait=0)
    theirs = await other.dequeue(["elsewhere"], limit=10, wait=0)
    assert [d.task_id for d in mine] == [ids[0], ids[2]]
    assert [d.task_id for d in theirs] == [ids[1], ids[3]]
