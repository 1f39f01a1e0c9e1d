"""Public test helpers: the in-memory driver, the driver conformance suite, and (in
`asynctasq.testing.crash`) the parts of a SIGKILL crash test, (in `asynctasq.testing.hostile`)
the hostile and fuzzed messages a real worker must survive."""

from asynctasq.drivers.memory import MemoryDriver
from asynctasq.testing.conformance import DriverConformance

__all__ = ["DriverConformance", "MemoryDriver"]
