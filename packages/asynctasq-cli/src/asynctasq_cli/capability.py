"""Commands that need an optional driver capability (status records, the event log, the
worker registry): a driver without it is a usage error naming the drivers that have it.

Core refuses such a driver with a `TypeError` whose text names the drivers that can; that
text becomes the one-line error. A `TypeError` from a driver that *has* the capability is a
bug rather than a choice the user can fix, so it propagates as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from asynctasq.drivers.base import Driver
from asynctasq_cli.output import EXIT_USAGE, CliError

T = TypeVar("T")


async def needing(driver: Driver, capability: type, call: Awaitable[T]) -> T:
    """Await `call`, an operation on `driver` that needs `capability`.

    Raises:
        CliError: the driver lacks the capability (exit code 2).
    """
    try:
        return await call
    except TypeError as exc:
        if isinstance(driver, capability):
            raise
        raise CliError(str(exc), exit_code=EXIT_USAGE) from None


async def streaming(driver: Driver, capability: type, stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """The items of `stream`, which needs `capability` of `driver`.

    Raises:
        CliError: the driver lacks the capability (exit code 2).
    """
    try:
        while True:
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                return
            except TypeError as exc:
                if isinstance(driver, capability):
                    raise
                raise CliError(str(exc), exit_code=EXIT_USAGE) from None
            yield item
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:  # an async generator: let its own clean-up run now
            await close()


__all__ = ["needing", "streaming"]
