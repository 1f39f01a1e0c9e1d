"""Celery habits meet an error that names the way here, not only Python's bare one."""

from __future__ import annotations

from typing import Any

import pytest

from asynctasq import task
from asynctasq.core.function import TaskFunction


@task(queue="habits")
async def add(a: int, b: int) -> int:
    return a + b


def _call(name: str, *args: Any) -> None:
    getattr(add, name)(*args)


@pytest.mark.parametrize(
    ("method", "says"),
    [
        ("delay", "`await add(...).dispatch()` queues it"),
        ("apply_async", ".on_queue('q').dispatch()"),
        ("s", "chain(add(...), other.step())"),
        ("AsyncResult", "await task_id.result()"),
    ],
)
def test_celery_task_methods_say_what_to_write(method: str, says: str) -> None:
    with pytest.raises(AttributeError, match=rf"add\.{method}\(\) is Celery's") as caught:
        _call(method, 2, 3)
    assert says in str(caught.value)


def test_other_missing_attributes_are_plain_attribute_errors() -> None:
    assert not hasattr(add, "delay")  # a habit is still no attribute
    with pytest.raises(AttributeError, match="'TaskFunction' object has no attribute 'nope'"):
        _call("nope")
    assert not hasattr(add, "__self__")


def test_celery_decorator_options_name_their_replacement() -> None:
    with pytest.raises(TypeError) as caught:
        task(bind=True, max_retries=3, time_limit=5)
    text = str(caught.value)
    assert text.startswith("@task: bind= is Celery's; here: a task reads its own run")
    assert "max_retries=3 is max_attempts=4" in text
    assert "time_limit= is Celery's; here: timeout=" in text


def test_a_misspelt_option_gets_the_closest_name() -> None:
    with pytest.raises(
        TypeError, match=r"unknown option max_attempt= \(did you mean max_attempts=\?\)"
    ):
        task(max_attempt=3)
    with pytest.raises(TypeError, match=r"unknown option zzz=$"):
        task(zzz=1)


def test_a_task_function_still_works_as_one() -> None:
    assert isinstance(add, TaskFunction)
    call = add(2, 3)
    assert call.args == (2, 3)
    assert add.__wrapped__.__name__ == "add"
