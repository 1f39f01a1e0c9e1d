"""A class task's private attributes set in ``__init__`` do not travel to the worker: the
dispatch says so, instead of the worker failing later on an attribute that is not there."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from asynctasq import Task
from asynctasq.core.task import PrivateStateWarning


class Renamed(Task[None]):
    queue = "private-state"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._msg = message.upper()

    async def handle(self) -> None:
        print(self._msg)


class Public(Task[None]):
    queue = "private-state"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    async def handle(self) -> None:
        print(self.message)


async def test_private_attributes_are_named_at_dispatch() -> None:
    with pytest.warns(PrivateStateWarning, match=r"Renamed sets _msg, which will not reach"):
        await Renamed("hi").dispatch()


async def test_the_frameworks_own_state_is_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivateStateWarning)
        await Public("hi").delay(0).max_attempts(2).on_queue("private-state").dispatch()
        await Public("hi", max_attempts=3).dispatch()


class Generic(Task[None]):
    queue = "private-state"

    async def handle(self) -> None:
        pass


class Cached(Task[None]):
    queue = "private-state"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cache: dict[str, int] = {}

    async def handle(self) -> None:
        pass


async def test_pythons_own_attributes_and_repeats_are_no_warning() -> None:
    with pytest.warns(PrivateStateWarning, match="Cached sets _cache"):
        await Cached().dispatch()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivateStateWarning)
        await Cached().dispatch()  # once per class
        task = Generic()
        task.__dict__["__orig_class__"] = Generic  # what Generic[int]() sets
        await task.dispatch()
