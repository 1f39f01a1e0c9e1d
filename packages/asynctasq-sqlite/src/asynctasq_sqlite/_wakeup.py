"""In-process wake-ups for consumers waiting on a database file.

SQLite has no way to notify another process of a write, so consumers in other processes
poll (see `SqliteDriver.dequeue`). Within one process we can do better: every driver on the
same file shares one `Wakeup` per channel, and an enqueue wakes the waiting dequeues at once.
Log appends have a channel of their own, so a busy event log does not keep waking idle
dequeues (nor an enqueue every log reader).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class Wakeup:
    """A generation counter plus the futures of the waiters, safe across threads and loops.

    A waiter reads `generation` *before* looking at the queue and passes it to `wait`, so
    an enqueue that lands between the look and the wait is not missed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: set[asyncio.Future[bool]] = set()

    @property
    def generation(self) -> int:
        """Bumped by every `notify`."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter (new messages may be ready)."""
        with self._lock:
            self._generation += 1
            if not self._waiters:
                return
            waiters, self._waiters = self._waiters, set()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for future in waiters:
            loop = future.get_loop()
            if loop is running:
                _resolve(future, True)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future, True)

    async def wait(self, generation: int, seconds: float) -> bool:
        """Wait for a `notify` after `generation`, at most `seconds`.

        Returns:
            True when notified (or already notified since `generation`), False on timeout.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            if self._generation != generation:
                return True
            self._waiters.add(future)
        timer = loop.call_later(seconds, _resolve, future, False)
        try:
            return await future
        finally:
            timer.cancel()
            with self._lock:
                self._waiters.discard(future)


MESSAGES = "messages"
"""The channel of enqueued messages and stored results."""
LOGS = "logs"
"""The channel of log appends (`SqliteDriver.append_log`)."""

_registry: weakref.WeakValueDictionary[tuple[str, str], Wakeup] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def wakeup_for(path: str, channel: str = MESSAGES) -> Wakeup:
    """The `Wakeup` of `channel` shared by every driver of this process on `path`."""
    key = (os.path.realpath(path), channel)
    with _registry_lock:
        wakeup = _registry.get(key)
        if wakeup is None:
            wakeup = _registry[key] = Wakeup()
        return wakeup


def reset_after_fork() -> None:
    """In a forked child: forget the parent's waiters (their loops do not exist here)."""
    global _registry, _registry_lock
    _registry = weakref.WeakValueDictionary()
    _registry_lock = threading.Lock()


__all__ = ["LOGS", "MESSAGES", "Wakeup", "reset_after_fork", "wakeup_for"]
