"""The buffer of one lane: deliveries the broker pushed, leased and not yet handed out.

The broker pushes in priority order, but only into free prefetch slots: a message pushed
later may outrank one already buffered (it became ready, or a slot freed), so the buffer
keeps the broker's order itself, highest priority first and then by arrival. With every
priority 0 (the common case) an arrival is one append.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from aiormq.abc import DeliveredMessage


@dataclass(slots=True)
class Buffered:
    """One buffered delivery.

    Attributes:
        message: The delivered message (leased to its channel).
        generation: The lane's subscription it came through; below 0 when fetched with
            `basic.get`, outside the prefetch.
        priority: Its priority, 0-9 (`asynctasq_rabbitmq.messages.priority_of`).
        arrived: When it reached the buffer (event loop time).
    """

    message: DeliveredMessage
    generation: int
    priority: int
    arrived: float


class DeliveryBuffer:
    """Buffered deliveries, highest priority first, then in arrival order."""

    __slots__ = ("_items", "fetched")

    def __init__(self) -> None:
        self._items: deque[Buffered] = deque()
        self.fetched = 0
        """How many of the buffered deliveries were fetched outside the prefetch."""

    def add(self, item: Buffered) -> None:
        """Insert `item` after every buffered one of its priority or higher."""
        if item.generation < 0:
            self.fetched += 1
        items = self._items
        index = len(items)
        while index and items[index - 1].priority < item.priority:
            index -= 1
        if index == len(items):
            items.append(item)
        else:
            items.insert(index, item)

    def head(self) -> Buffered | None:
        """The delivery `popleft` would return, or None when empty."""
        return self._items[0] if self._items else None

    def popleft(self) -> Buffered:
        """Remove and return the first delivery (raises IndexError when empty)."""
        item = self._items.popleft()
        if item.generation < 0:
            self.fetched -= 1
        return item

    def clear(self) -> None:
        """Forget every buffered delivery (their channel is gone)."""
        self._items.clear()
        self.fetched = 0

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


__all__ = ["Buffered", "DeliveryBuffer"]
