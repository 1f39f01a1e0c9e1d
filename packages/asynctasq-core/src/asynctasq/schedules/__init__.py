"""Schedules: tasks dispatched at the ticks of a cron expression or a fixed interval.

::

    from asynctasq import cron, every, schedule, task

    @task(schedule=every(minutes=10))
    async def refresh_cache() -> None: ...

    schedule(send_report("daily"), cron("0 7 * * mon-fri", tz="Europe/Berlin"))

Workers run with ``--schedules`` (``Worker(schedules=True)``) dispatch each tick once,
however many of them run: see `asynctasq.schedules.scheduler`.
"""

from asynctasq.schedules.registry import Schedule, schedule, schedules
from asynctasq.schedules.when import Cron, Every, When, cron, every

__all__ = ["Cron", "Every", "Schedule", "When", "cron", "every", "schedule", "schedules"]
