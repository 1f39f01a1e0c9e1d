"""The event stream, as ``asynctasq.events``::

    async for event in asynctasq.events.subscribe(types={"task-failed"}):
        ...

See `asynctasq.lifecycle.events`.
"""

from asynctasq.lifecycle.events import Event, EventType, subscribe

__all__ = ["Event", "EventType", "subscribe"]
