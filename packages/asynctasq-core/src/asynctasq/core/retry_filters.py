"""Which exceptions a task retries on: ``retry_on`` and ``dont_retry_on``.

Declared in code (``@task(retry_on=...)``, class attributes), never carried by a message:
the worker runs the task's code, so it reads the filters from there. A message therefore
cannot widen what a task retries on.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from asynctasq.errors import PermanentError

ExceptionTypes = type[Exception] | tuple[type[Exception], ...]
"""What ``retry_on`` and ``dont_retry_on`` take: one exception class or a tuple of them."""


@dataclass(frozen=True, slots=True)
class RetryFilter:
    """The exceptions after which a failed run may be retried.

    ``dont_retry_on`` wins over ``retry_on`` (``retry_on=OSError,
    dont_retry_on=FileNotFoundError`` retries every `OSError` but that one), as with
    Celery's ``autoretry_for`` / ``dont_autoretry_for``.
    """

    retry_on: tuple[type[Exception], ...] | None = None
    """Retry only on these (and their subclasses); None: on every exception."""
    dont_retry_on: tuple[type[Exception], ...] = ()
    """Never retry on these (and their subclasses)."""

    def selects(self, exception: BaseException) -> bool:
        """Whether a run that raised `exception` may be retried."""
        if self.dont_retry_on and isinstance(exception, self.dont_retry_on):
            return False
        return self.retry_on is None or isinstance(exception, self.retry_on)


def check_exceptions(name: str, value: Any) -> tuple[type[Exception], ...]:
    """Validate ``retry_on`` / ``dont_retry_on``: one exception class or a tuple (or list)
    of them; return them as a tuple.

    Raises:
        ValueError: `value` is not exception classes, is an empty ``retry_on``, or names a
            `PermanentError` in ``retry_on`` (those never retry).
    """
    classes = tuple(value) if isinstance(value, tuple | list | set | frozenset) else (value,)
    for cls in classes:
        if not (inspect.isclass(cls) and issubclass(cls, Exception)):
            raise ValueError(
                f"{name} takes exception classes (one, or a tuple like (ConnectionError, "
                f"TimeoutError)), got {cls!r}"
            )
    if name == "retry_on":
        if not classes:
            raise ValueError(
                "retry_on=() would retry on no exception; leave retry_on out to retry on "
                "every exception, or set max_attempts=1 to never retry"
            )
        permanent = [cls.__qualname__ for cls in classes if issubclass(cls, PermanentError)]
        if permanent:
            raise ValueError(
                f"retry_on names {', '.join(permanent)}, a PermanentError: those fail for "
                "good at once and are never retried; raise another exception to retry"
            )
    return classes


def retry_filter_of(retry_on: Any, dont_retry_on: Any) -> RetryFilter | None:
    """The checked filter for these settings (None for either means "not set"); None when
    neither is set, so the common task pays nothing.

    Raises:
        ValueError: see `check_exceptions`.
    """
    if retry_on is None and dont_retry_on is None:
        return None
    return RetryFilter(
        retry_on=None if retry_on is None else check_exceptions("retry_on", retry_on),
        dont_retry_on=()
        if dont_retry_on is None
        else check_exceptions("dont_retry_on", dont_retry_on),
    )


__all__ = ["ExceptionTypes", "RetryFilter", "check_exceptions", "retry_filter_of"]
