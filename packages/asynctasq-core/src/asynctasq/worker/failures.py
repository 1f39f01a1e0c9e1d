"""Turning an exception into the `Failure` a dead letter keeps."""

from __future__ import annotations

import traceback

from asynctasq.drivers.base import Failure


def failure_from(exception: BaseException) -> Failure:
    """The exception's qualified type, message and formatted traceback."""
    cls = type(exception)
    name = f"{cls.__module__}.{cls.__qualname__}"
    trace = "".join(traceback.format_exception(exception))
    return Failure(exception_type=name, message=str(exception), traceback=trace)
