"""The span attributes and names this package writes.

OpenTelemetry's messaging semantic conventions (schema 1.27) name the ``messaging.*``
attributes; the ``asynctasq.*`` ones say what those do not (task name, attempt, outcome).
The strings are written here rather than imported from ``opentelemetry-semantic-conventions``,
whose messaging names are still in its incubating module and may move; a test checks them
against that module.
"""

from __future__ import annotations

from typing import Final

SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.27.0"
SYSTEM: Final = "asynctasq"
"""The value of ``messaging.system``."""

MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
MESSAGING_DESTINATION_NAME: Final = "messaging.destination.name"
MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
ERROR_TYPE: Final = "error.type"

TASK_NAME: Final = "asynctasq.task.name"
"""The task's registered name (``module:qualname``)."""
TASK_ATTEMPT: Final = "asynctasq.task.attempt"
"""Which run this is: 1 for the first delivery, 2 for the first retry, ..."""
TASK_OUTCOME: Final = "asynctasq.task.outcome"
"""How the delivery ended: one of `OUTCOMES`."""
TASK_DELAY: Final = "asynctasq.task.delay"
"""Seconds the producer asked the message to wait before it may run (when not 0)."""
RETRY_DELAY: Final = "asynctasq.retry.delay"
"""Seconds until the next run, on a delivery whose outcome is ``retried``."""

SEND: Final = "send"
PROCESS: Final = "process"

OUTCOMES: Final = (
    "succeeded",
    "retried",
    "dead_lettered",
    "cancelled",
    "expired",
    "released",
    "unsettled",
)
"""Values of ``asynctasq.task.outcome``: the first six as the worker's metrics count them;
``unsettled`` when the worker could not record the outcome with the broker (the lease
expires and the task runs again)."""

MAX_NAME_LENGTH: Final = 200
"""Task names read from a message are cut to this length in attributes (hostile input)."""
