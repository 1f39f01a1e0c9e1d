"""The dashboard's own state, shared by its routes: which driver, the sampler, the limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from asynctasq.drivers.base import Driver
from asynctasq.drivers.connections import get_driver
from asynctasq_dashboard.sampling import Sampler


@dataclass(slots=True)
class Dashboard:
    """Settings and shared state of one dashboard app.

    Attributes:
        driver: A driver instance, a driver name, or None for the configured driver.
        title: What the header says the dashboard watches (secrets already masked).
        sampler: The shared overview reader.
        live_interval: Seconds between two updates of a live page.
        live_lifetime: Seconds a live stream lasts before the browser reconnects (a
            stream's cost is bounded in time as well as in rate).
        max_live: Live streams served at once; more are told to retry later.
    """

    driver: str | Driver | None
    title: str
    sampler: Sampler
    live_interval: float
    live_lifetime: float
    max_live: int
    live_now: int = field(default=0)

    async def connected(self) -> Driver:
        """The driver, connected (once, then reused)."""
        return await get_driver(self.driver)


def dashboard_of(request: Request) -> Dashboard:
    """The `Dashboard` of the app serving `request`."""
    found: Dashboard = request.app.state.dashboard
    return found


__all__ = ["Dashboard", "dashboard_of"]
