"""A dequeue whose caller is cancelled gives back what it took.

Cancelling a dequeue in the middle of its broker call (a worker stopping, a ``wait_for``
around it) must neither leave messages leased to nobody until their visibility timeout nor
abandon the call half way: a statement cut off between ``SELECT ... FOR UPDATE`` and its
``COMMIT`` keeps its rows locked until the server notices the dropped connection, hidden
from every other consumer meanwhile. So the broker call runs to its end on its own, and what
it took is released, uncounted, as soon as it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from asynctasq.drivers.base import Delivery

log = logging.getLogger("asynctasq")

Take = TypeVar("Take", bound=tuple[Sequence[Delivery], Any])
"""A take's result: the deliveries it leased first, then whatever else the driver returns."""

Release = Callable[[list[Delivery]], Awaitable[None]]


class GivenBack:
    """Runs dequeue calls shielded from their caller's cancellation.

    Args:
        release: The driver's ``release``: makes deliveries ready again, uncounted.
    """

    def __init__(self, release: Release) -> None:
        self._release = release
        self._pending: set[asyncio.Future[Any]] = set()

    async def run(self, call: Awaitable[Take]) -> Take:
        """`call`'s result; when the caller is cancelled first, `call` still completes and
        the deliveries it took are released."""
        take = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(take)
        except asyncio.CancelledError:
            self._keep(take)
            take.add_done_callback(self._give_back)
            raise

    def _give_back(self, take: asyncio.Future[Take]) -> None:
        if take.cancelled() or take.exception() is not None:
            return
        taken = list(take.result()[0])
        if taken:
            release = asyncio.ensure_future(self._release(taken))
            release.add_done_callback(_report)
            self._keep(release)

    def _keep(self, future: asyncio.Future[Any]) -> None:
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait (up to `timeout` seconds) for calls still finishing and their releases,
        before the driver closes its connections under them. Those of another event loop
        (a driver used from several) cannot be awaited here and are left to it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            mine = [f for f in self._pending if f.get_loop() is loop]
            left = deadline - loop.time()
            if not mine or left <= 0:
                return
            await asyncio.wait(mine, timeout=left)


def _report(release: asyncio.Future[None]) -> None:
    if not release.cancelled() and (exc := release.exception()) is not None:
        log.warning(
            "giving back the messages of a cancelled dequeue failed (%s: %s); they are "
            "delivered again when their leases end",
            type(exc).__name__,
            exc,
        )
