"""Errors the SQS driver raises on purpose; each message names what is wrong and the fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from asynctasq.errors import AsyncTasQError


class SQSDriverError(AsyncTasQError):
    """Base class of the SQS driver's own errors."""


class MessageTooLargeError(SQSDriverError, ValueError):
    """A task's message would exceed the SQS message size limit (raised at dispatch)."""


class QueueNotFoundError(SQSDriverError, LookupError):
    """A queue does not exist in SQS and the driver was not allowed to create it."""


class BatchEntryError(SQSDriverError):
    """Entries of an SQS batch call failed and could not be retried into success.

    Attributes:
        operation: The SQS action, e.g. ``SendMessageBatch``.
        failures: The ``Failed`` entries SQS returned (``Id``, ``Code``, ``Message``,
            ``SenderFault``).
    """

    def __init__(self, operation: str, failures: Sequence[Mapping[str, Any]]) -> None:
        self.operation = operation
        self.failures = [dict(f) for f in failures]
        shown = "; ".join(
            f"{f.get('Code', '?')}: {f.get('Message', '')}".strip() for f in self.failures[:3]
        )
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        super().__init__(
            f"{operation}: {len(self.failures)} entr{'y' if len(self.failures) == 1 else 'ies'}"
            f" failed: {shown}{more}"
        )


__all__ = ["BatchEntryError", "MessageTooLargeError", "QueueNotFoundError", "SQSDriverError"]
