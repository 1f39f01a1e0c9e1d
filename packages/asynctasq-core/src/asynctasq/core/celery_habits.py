"""What to write instead of a Celery habit, for the errors that meet one.

Most teams arrive from Celery: ``add.delay(2, 3)``, ``add.apply_async(countdown=5)`` and
``@task(bind=True, max_retries=3)`` are the first things they type. Python's own errors
("has no attribute 'delay'", "unexpected keyword argument 'bind'") name the mistake but not
the way here; these say both.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

TASK_METHODS: dict[str, str] = {
    "delay": "`await {name}(...).dispatch()` queues it ({name}(...).dispatch_sync() from "
    "sync code); a chain's `.delay(seconds)` only sets a delay",
    "apply_async": "`await {name}(...).delay(5).on_queue('q').dispatch()` queues it with "
    "options (see the chain methods)",
    "s": "workflows take calls: `chain({name}(...), other.step())` (see the workflows guide)",
    "si": "workflows take calls: `chain(other(...), {name}(...))` (see the workflows guide)",
    "signature": "workflows take calls: `chain({name}(...), other.step())`",
    "apply": "to run the body here, call the function itself: `{name}.fn(...)`",
    "retry": "to retry a run, raise an exception from the task (attempts permitting)",
    "AsyncResult": "`await task_id.result()` on the id `dispatch()` returned (with "
    "keep_result=True)",
}
"""Celery task methods, and what does it here (``{name}``: the task's function name)."""

DECORATOR_OPTIONS: dict[str, str] = {
    "bind": "a task reads its own run (id, attempt, progress) from asynctasq.current_task()",
    "name": "a task's name is its module and function, 'module:function'",
    "max_retries": "max_attempts= counts runs in total: max_retries=3 is max_attempts=4",
    "default_retry_delay": "retry_delay=",
    "autoretry_for": "retry_on= (every exception is retried by default)",
    "retry_backoff": 'retry_strategy="exponential" (the default)',
    "retry_backoff_max": "retry_max_delay=",
    "countdown": "a delay is given at dispatch: `await f(...).delay(seconds).dispatch()`",
    "eta": "a delay is given at dispatch: `await f(...).delay(when).dispatch()`",
    "time_limit": "timeout=",
    "soft_time_limit": "timeout= (the run is cancelled: catch CancelledError to clean up)",
    "acks_late": "nothing: a task is always acknowledged after it ran",
    "ignore_result": "nothing: results are kept only with keep_result=True",
    "serializer": "nothing: messages are always JSON",
    "base": "a class task (asynctasq.Task) for shared behaviour",
}
"""Celery ``@app.task`` options, and what does it here."""


def missing_method(name: str, attribute: str) -> str | None:
    """The hint for ``<task function>.<attribute>``, when it is a Celery habit."""
    hint = TASK_METHODS.get(attribute)
    return None if hint is None else hint.format(name=name)


def unknown_options(given: Iterable[str], known: Iterable[str], where: str) -> str:
    """The message for options `where` does not take: Celery's with what replaces them,
    others with the closest known names."""
    known = list(known)
    parts = []
    for option in given:
        if option in DECORATOR_OPTIONS:
            parts.append(f"{option}= is Celery's; here: {DECORATOR_OPTIONS[option]}")
        else:
            close = difflib.get_close_matches(option, known, n=1)
            maybe = f" (did you mean {close[0]}=?)" if close else ""
            parts.append(f"unknown option {option}={maybe}")
    return f"{where}: " + "; ".join(parts)
