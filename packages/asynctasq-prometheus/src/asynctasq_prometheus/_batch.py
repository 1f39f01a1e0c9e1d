"""Task metrics gathered in plain Python and added to prometheus_client's metrics in bulk.

prometheus_client takes one observation at a time: a histogram's `observe` walks the
buckets and takes a lock for the sum and one for a bucket, a counter's `inc` one more; in
multiprocess mode each is a write to a memory-mapped file. Per task that was about 5 us, a
tenth of a no-op task's cost in the worker. Here a task costs a `bisect` and two additions;
the middleware adds what gathered to the real metrics every `FLUSH_INTERVAL` seconds and at
shutdown, so a scrape sees a task at most that late.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

__all__ = ["FLUSH_INTERVAL", "PendingHistogram", "add_to_histogram"]

FLUSH_INTERVAL = 0.25
"""Seconds between two additions of the gathered observations to the metrics."""


class PendingHistogram:
    """Observations of one labelled histogram since the last flush: counts per bucket."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # The first bound >= value: the bucket prometheus_client's own observe picks (the
        # last bound is +Inf, so there always is one).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


def upper_bounds(histogram: Any) -> Sequence[float]:
    """A histogram's bucket bounds, +Inf last (see `add_to_histogram` for why private)."""
    bounds: Sequence[float] = histogram._upper_bounds
    return bounds


def add_to_histogram(child: Any, pending: PendingHistogram) -> None:
    """Add `pending`'s counts and sum to a labelled prometheus_client histogram.

    prometheus_client offers no way to add many observations at once, so this uses the
    attributes its own ``Histogram.observe`` updates (``_buckets``: one value per bucket,
    not cumulative; ``_sum``), through their public ``inc``. This is the one place that
    reaches into the library; a test checks the result against ``observe``.
    """
    buckets = child._buckets
    for index, count in enumerate(pending.counts):
        if count:
            buckets[index].inc(count)
    child._sum.inc(pending.total)
