"""The schedules declared in this process: `schedule(...)`, ``@task(schedule=...)`` and the
``schedule = ...`` class attribute of class-based tasks.

Declarations live in code only: a worker runs, and ``asynctasq schedules`` lists, the
schedules of the modules it imported. Nothing stored on the broker ever adds a schedule, so
one deleted from the code stops firing as soon as the workers run the new code.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from asynctasq.schedules.when import When

if TYPE_CHECKING:
    from asynctasq.core.function import TaskFunction
    from asynctasq.core.task import BaseTask

MAX_NAME_LENGTH = 200
"""Most characters in a schedule's name (it is part of the claim keys)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A task to dispatch at every tick of `when`.

    Attributes:
        name: Unique among the schedules of an application; names the claims of its ticks.
        task_name: The task it dispatches (``module:qualname``).
        when: The ticks (`cron` or `every`).
        catch_up: After an outage, fire every missed tick within the grace period instead of
            only the latest.
        make_task: Returns a fresh task instance to dispatch for one tick.
        call: What a tick's message carries (arguments, options), to tell two declarations
            of one task apart; empty for a task class (built at each tick, never before).
    """

    name: str
    task_name: str
    when: When
    catch_up: bool
    make_task: Callable[[], BaseTask[Any]]
    call: bytes = field(default=b"", repr=False)

    def next_runs(self, count: int, after: datetime | None = None) -> list[datetime]:
        """The next `count` ticks after `after` (default: now), in the schedule's time zone."""
        moment = int((after or datetime.now(self.when.zone)).timestamp())
        found: list[datetime] = []
        while len(found) < count:
            tick = self.when.next_after(moment)
            if tick is None:
                break
            found.append(datetime.fromtimestamp(tick, self.when.zone))
            moment = tick
        return found


_schedules: dict[str, Schedule] = {}


def schedule(
    task_call: BaseTask[Any],
    when: When,
    *,
    name: str | None = None,
    catch_up: bool = False,
) -> Schedule:
    """Dispatch `task_call` at every tick of `when`, from workers run with ``--schedules``.

    ::

        asynctasq.schedule(send_report("daily"), cron("0 7 * * mon-fri", tz="Europe/Berlin"))

    Each tick is dispatched once however many workers run the scheduler. The task call is a
    template: every tick dispatches a copy of it, with its arguments and chain settings
    (``send_report("daily").on_queue("reports")``).

    Args:
        task_call: A task called with its arguments (function task) or a task instance
            (class task); not dispatched here.
        when: `cron(...)` or `every(...)`.
        name: The schedule's name; default: the task's name. Give one when the same task is
            scheduled more than once.
        catch_up: After an outage, fire every tick missed within the grace period
            (``schedules.grace``) instead of only the latest one.

    Returns:
        The registered schedule.

    Raises:
        TypeError: `task_call` is not a task call, or `when` not a `cron`/`every` value.
        ValueError: the name is taken by another schedule, or unusable.
        SerializationError: an argument cannot be serialized (found now, not at each tick).
    """
    from asynctasq.core.task import BaseTask, handed_over

    if not isinstance(task_call, BaseTask):
        raise TypeError(
            f"schedule() takes a task call such as send_report('daily') (a task called with "
            f"its arguments, or a task class instance), got {task_call!r}"
        )
    handed_over(task_call)  # configured with chain methods and kept: no undispatched warning
    call = _call_of(task_call)
    template = task_call

    def make_task() -> BaseTask[Any]:
        task = copy.copy(template)
        task._options = dict(template._overrides())
        return task

    task_name = template._display_name()
    return _add(task_name if name is None else name, task_name, when, catch_up, make_task, call)


def schedule_function(function: TaskFunction[..., Any], when: object) -> Schedule:
    """``@task(schedule=when)``: the task function runs with no arguments at each tick."""
    try:
        function.signature.bind()
    except TypeError as exc:
        raise ValueError(
            f"@task(schedule=...) on {function.name}: a scheduled task is called with no "
            f"arguments, but {exc}; give defaults, or use "
            f"asynctasq.schedule({function.fn.__name__}(...), when) to pass them"
        ) from None
    from asynctasq.core.task import handed_over

    call = function()
    handed_over(call)  # built to be compared, never dispatched
    return _add(function.name, function.name, _check_when(when), False, function, _call_of(call))


def schedule_class(cls: type[BaseTask[Any]], when: object) -> Schedule:
    """``schedule = when`` on a task class: an instance built with no arguments runs at each
    tick."""
    import inspect

    try:
        inspect.signature(cls).bind()
    except TypeError as exc:
        raise ValueError(
            f"{cls.__qualname__}.schedule: a scheduled task is built with no arguments, but "
            f"{exc}; give defaults, or use asynctasq.schedule({cls.__qualname__}(...), when)"
        ) from None
    except ValueError:  # no signature to inspect (a C-level __init__): try at each tick
        pass
    name = cls._task_name
    # Not built here: a constructor runs at each tick, never at import (its side effects and
    # values such as the time would belong to every process that imports the module).
    # Compared by name and timetable only.
    return _add(name, name, _check_when(when, f"{cls.__qualname__}.schedule"), False, cls)


def _check_when(when: object, what: str = "schedule") -> When:
    if not isinstance(when, When):
        raise TypeError(
            f"{what} must be cron(...) or every(...) from asynctasq, got {when!r} "
            "(e.g. cron('*/5 * * * *') or every(minutes=5))"
        )
    return when


def _call_of(task: BaseTask[Any]) -> bytes:
    """The message a tick of `task` would send, without what differs by where it was declared
    (the script a ``__main__`` task comes from): equal for the same declaration. Encoding it
    also finds an argument that cannot be serialized now, not at each tick."""
    from asynctasq.config import TaskDefaults
    from asynctasq.core import envelope
    from asynctasq.core.options import resolve

    encoded = envelope.encode(task, "schedule", resolve(task._settings(), TaskDefaults()), 0.0)
    doc = orjson.loads(encoded)
    doc.pop("src", None)
    # Where it goes and when (queue, delay, driver) is not in the message itself.
    doc["chained"] = {name: _shown(value) for name, value in task._overrides().items()}
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


_SHOWN_DEPTH = 6
"""How deep `_shown` follows nested values: a recursive closure or a list holding itself
must not recurse for ever, and what lies deeper is compared by type."""


def _shown(value: object, depth: int = 0) -> object:
    """An option's value as compared: plain values as they are; an object (a driver
    instance) by its type, since its repr may name its address, which differs between two
    imports of one declaration."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, timedelta | datetime):
        return value.isoformat() if isinstance(value, datetime) else value.total_seconds()
    if depth >= _SHOWN_DEPTH:
        return type(value).__qualname__
    deeper = functools.partial(_shown, depth=depth + 1)
    if isinstance(value, tuple | list):
        return [deeper(v) for v in value]
    if isinstance(value, functools.partial):
        return ["partial", deeper(value.func), deeper(value.args), deeper(value.keywords)]
    if isinstance(value, dict):
        return {str(k): deeper(v) for k, v in value.items()}
    code = getattr(value, "__code__", None)
    if code is not None:
        # Two lambdas differ by what they compute: their code, constants, the names they
        # read, defaults and closed-over values (lambda t: "tenant-a" / "tenant-b"). Not by
        # module: a script run as __main__, then imported by name, declares the same one.
        return [
            getattr(value, "__qualname__", ""),
            code.co_code.hex(),
            [deeper(c) for c in code.co_consts if not hasattr(c, "co_code")],
            list(code.co_names),
            deeper(getattr(value, "__defaults__", None)),
            deeper(getattr(value, "__kwdefaults__", None)),
            [deeper(_contents(c)) for c in getattr(value, "__closure__", None) or ()],
        ]
    return type(value).__qualname__


def _contents(cell: Any) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not assigned yet
        return None


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"a schedule's name must be a non-empty string of at most {MAX_NAME_LENGTH} "
            f"characters, got {name!r}"
        )
    if not name.isprintable():
        raise ValueError(f"a schedule's name must be printable (no control characters): {name!r}")
    return name


def _add(
    name: str,
    task_name: str,
    when: When,
    catch_up: bool,
    make_task: Callable[[], BaseTask[Any]],
    call: bytes = b"",
) -> Schedule:
    _check_name(name)
    _check_when(when)
    if not isinstance(catch_up, bool):
        raise TypeError(f"catch_up must be True or False, got {catch_up!r}")
    found = Schedule(name, task_name, when, catch_up, make_task, call)
    known = _schedules.get(name)
    # A module imported twice (a script run as __main__, then imported by name) declares
    # its schedules again: the same declaration replaces itself; another one is a clash,
    # arguments included (send_report("daily") and send_report("monthly") both fire).
    calls_differ = bool(known and known.call and call and known.call != call)
    if known is not None and (
        (known.task_name, known.when, known.catch_up) != (task_name, when, catch_up) or calls_differ
    ):
        what = (
            "with other arguments or options"
            if (known.task_name, known.when, known.catch_up) == (task_name, when, catch_up)
            else f"({known.task_name}, {known.when.describe()})"
        )
        raise ValueError(
            f"a schedule named {name!r} exists already {what}; give this one another name=..."
        )
    _schedules[name] = found
    return found


def schedules() -> list[Schedule]:
    """The schedules declared in this process, by name."""
    return [_schedules[name] for name in sorted(_schedules)]


def remove(name: str) -> bool:
    """Forget schedule `name` in this process (tests, code reloading); whether it was known."""
    return _schedules.pop(name, None) is not None


__all__ = [
    "MAX_NAME_LENGTH",
    "Schedule",
    "remove",
    "schedule",
    "schedule_class",
    "schedule_function",
    "schedules",
]
