"""A span that is ended exactly once, and ended anyway when its owner is dropped.

The middleware hooks that end a span are not all guaranteed to run: a dispatch may fail or
be vetoed after its producer span started, and a worker whose broker refuses a retry or a
dead letter calls no hook at all. An unfinished span is never exported, so these would
vanish from the trace; instead the holder ends the span when the object that owns it (the
task being dispatched, the `Job` being run) is garbage-collected, marked with what is known.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from opentelemetry.trace import Span


class OpenSpan:
    """Holds `span` until `finish` ends it; `on_drop` ends it if `finish` never ran."""

    __slots__ = ("_on_drop", "span", "token")

    def __init__(self, span: Span, on_drop: Callable[[Span], None]) -> None:
        self.span: Span | None = span
        self.token: object | None = None
        """The context token while the span is current (worker side)."""
        self._on_drop = on_drop

    def finish(self) -> Span | None:
        """Take the span to end it now; None when it was taken already."""
        span, self.span = self.span, None
        return span

    def __del__(self) -> None:
        span = self.finish()
        if span is not None:
            with contextlib.suppress(Exception):  # nothing may escape a finaliser
                self._on_drop(span)
                span.end()
