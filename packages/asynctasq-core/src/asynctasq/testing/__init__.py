"""Public test helpers: the in-memory driver and the driver conformance suite."""

from asynctasq.drivers.memory import MemoryDriver
from asynctasq.testing.conformance import DriverConformance

__all__ = ["DriverConformance", "MemoryDriver"]
