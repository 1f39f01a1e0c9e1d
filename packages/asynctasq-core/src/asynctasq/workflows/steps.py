"""Workflow steps: `Step`, a task function called without its first argument.

``double.step()`` (or the bare ``double`` in a chain) is `double` waiting for the previous
step's result: the worker that finishes the previous step puts that result first in the
arguments when it queues this one. Every other argument is given now and checked against
the signature now, so a wrong argument fails at the call, before anything is queued.

A `Step` is a `FunctionTask` so the chain methods (``on_queue``, ``delay``,
``max_attempts``, ...) work on it; it cannot be dispatched on its own: it needs a workflow
to give it its first argument.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

from asynctasq.core.function import FunctionTask, TaskFunction
from asynctasq.core.task import BaseTask, handed_over
from asynctasq.drivers.base import Driver

R = TypeVar("R")

_PREVIOUS = object()
"""Stands for the previous step's result while a step's arguments are checked."""


class Step(FunctionTask[R]):
    """A task function call missing its first positional argument: the previous step's
    result (or, as a chord's callback, the list of the group's results).

    Made by ``task_function.step(*args, **kwargs)``; configure it with the chain methods and
    put it in `chain` or `chord`.
    """

    _abstract = True

    def __init__(
        self, function: TaskFunction[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not isinstance(function, TaskFunction):
            raise TypeError(f"a workflow step needs a @task function, got {function!r}")
        try:
            function.signature.bind(_PREVIOUS, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(
                f"{function.name}.step(): {exc} (the step's first positional parameter "
                "receives the previous step's result; give the others here)"
            ) from None
        super().__init__(function, args, kwargs)

    async def dispatch(self, *, connection: Any = None) -> NoReturn:
        """Refused: a step runs inside a workflow, which gives it its first argument."""
        raise _alone(self)

    def dispatch_sync(self, *, timeout: float | None = None) -> NoReturn:
        """Refused: see `dispatch`."""
        raise _alone(self)

    def _driver(self) -> str | Driver | None:
        # Every dispatch path asks for the driver before queueing: dispatch_many refuses a
        # step here, before anything of its batch is queued.
        raise _alone(self)

    def __repr__(self) -> str:
        return f"<workflow step {self.function.name}>"


def _alone(step: Step[Any]) -> TypeError:
    handed_over(step)
    return TypeError(
        f"{step.function.name}.step() waits for the previous step's result and cannot be "
        "dispatched on its own: put it in asynctasq.chain(...) or chord(...), or call "
        f"{step.function.name}(...) with all its arguments"
    )


def driver_of(task: BaseTask[Any]) -> str | Driver | None:
    """The driver `task` goes to (a step's too, which refuses `_driver`)."""
    if isinstance(task, Step):
        override = task._driver_override
        return task.function.driver if override is None else override
    return task._driver()


def plain(task: BaseTask[Any]) -> tuple[BaseTask[Any], bool]:
    """`task` as something `asynctasq.core.dispatch.prepare` encodes, and whether it takes
    the previous result. A step becomes a plain call without its first argument (the worker
    adds it); a bare task function becomes a step without arguments."""
    if isinstance(task, Step):
        handed_over(task)  # the workflow dispatches it
        call: FunctionTask[Any] = FunctionTask(task.function, task.args, task.kwargs)
        call._options = dict(task._overrides())
        call._driver_override = task._driver_override
        return call, True
    return task, False
