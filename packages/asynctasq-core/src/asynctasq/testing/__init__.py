"""Public test helpers: the in-memory driver and its inspection, the driver conformance suite,
queues for testing code that dispatches (`memory_queues`, also the pytest fixtures
``asynctasq_queues`` and ``asynctasq_eager``), and (in `asynctasq.testing.crash`) the parts
of a SIGKILL crash test, (in `asynctasq.testing.hostile`) the hostile and fuzzed messages a
real worker must survive."""

from asynctasq.drivers._memory_inspect import QueuedMessage
from asynctasq.drivers.memory import MemoryDriver
from asynctasq.testing.conformance import DriverConformance
from asynctasq.testing.messages import DecodedMessage, decode_message
from asynctasq.testing.queues import (
    Dispatched,
    MemoryQueues,
    TaskOutcome,
    memory_queues,
)

__all__ = [
    "DecodedMessage",
    "Dispatched",
    "DriverConformance",
    "MemoryDriver",
    "MemoryQueues",
    "QueuedMessage",
    "TaskOutcome",
    "decode_message",
    "memory_queues",
]
