"""Coalescing acknowledgements: one `basic.ack` with `multiple` for a run of delivery tags.

A worker acks in batches (the tasks that finished in one loop iteration). AMQP can ack every
unacked tag up to ``T`` of a channel in one frame (`multiple=True`), which saves a frame, a
system call and, on a quorum queue, a log entry per task. That is only right when no other
tag up to ``T`` is still unacked, so the book keeps the unacked tags of one channel (a heap
with lazy deletion). Tags are handed out in increasing order per channel, and deliveries not
yet seen by the driver carry higher tags than any it acks, so they are never covered.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class AckBook:
    """The unacked delivery tags of one channel."""

    __slots__ = ("_acked", "_heap")

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._acked: set[int] = set()

    def add(self, tag: int) -> None:
        """A delivery with `tag` arrived (pushed or fetched)."""
        heapq.heappush(self._heap, tag)

    def plan(self, tags: Iterable[int]) -> tuple[int, list[int]]:
        """How to ack `tags`: a tag to ack with `multiple` (0 for none) and single tags.

        Returns:
            ``(upto, singles)``: ``upto`` covers every tag of `tags` up to it (and no other
            unacked tag); ``singles`` are the rest, to ack one by one.
        """
        batch = set(tags)
        heap, acked = self._heap, self._acked
        upto = 0
        covered = 0
        while heap:
            top = heap[0]
            if top in acked:
                heapq.heappop(heap)
                acked.discard(top)
            elif top in batch:
                heapq.heappop(heap)
                batch.discard(top)
                upto = top
                covered += 1
            else:
                break
        acked.update(batch)  # acked one by one: leave the heap lazily
        if covered == 1:
            return 0, sorted(batch | {upto})
        return upto, sorted(batch)

    def __len__(self) -> int:
        return len(self._heap) - len(self._acked)


__all__ = ["AckBook"]
