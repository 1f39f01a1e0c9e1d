"""Public test helpers: the in-memory driver and its inspection, the driver conformance suite,
queues for testing code that dispatches (`memory_queues`, also the pytest fixtures
``asynctasq_queues`` and ``asynctasq_eager``), and (in `asynctasq.testing.crash`) the parts
of a SIGKILL crash test, (in `asynctasq.testing.hostile`) the hostile and fuzzed messages a
real worker must survive."""

from typing import TYPE_CHECKING, Any

from asynctasq.drivers._memory_inspect import QueuedMessage
from asynctasq.drivers.memory import MemoryDriver
from asynctasq.testing.messages import DecodedMessage, decode_message
from asynctasq.testing.queues import (
    Dispatched,
    MemoryQueues,
    TaskOutcome,
    memory_queues,
)

if TYPE_CHECKING:
    from asynctasq.testing.conformance import DriverConformance as DriverConformance


def __getattr__(name: str) -> Any:
    # The conformance suite is a set of pytest tests and imports pytest; the helpers for
    # testing code that dispatches must work without it (a script, unittest).
    if name == "DriverConformance":
        from asynctasq.testing.conformance import DriverConformance

        return DriverConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# DriverConformance is left out: ``import *`` must not need pytest (see __getattr__).
__all__ = [
    "DecodedMessage",
    "Dispatched",
    "MemoryDriver",
    "MemoryQueues",
    "QueuedMessage",
    "TaskOutcome",
    "decode_message",
    "memory_queues",
]
