"""Observations added in bulk give the same metrics as prometheus_client's own `observe`."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from asynctasq_prometheus._batch import PendingHistogram, add_to_histogram, upper_bounds


def test_bulk_histogram_equals_one_observe_per_value() -> None:
    rng = random.Random(7)
    buckets = (0.001, 0.01, 0.1, 1.0, 10.0)
    values = [0.0, 0.001, 0.01, 10.0, 11.0, *(rng.expovariate(3.0) for _ in range(500))]
    one, bulk = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("t", "t", ["q"], registry=one, buckets=buckets)
    by_bulk = Histogram("t", "t", ["q"], registry=bulk, buckets=buckets)
    pending = PendingHistogram(upper_bounds(by_bulk))
    for value in values:
        by_one.labels("a").observe(value)
        pending.observe(value)
    add_to_histogram(by_bulk.labels("a"), pending)
    assert (
        generate_latest(bulk).split(b"\n# TYPE t_created")[0]
        == (generate_latest(one).split(b"\n# TYPE t_created")[0])
    )
    assert bulk.get_sample_value("t_count", {"q": "a"}) == len(values)
    first = {"q": "a", "le": "0.001"}  # a value equal to a bound is in that bucket
    assert bulk.get_sample_value("t_bucket", first) == one.get_sample_value("t_bucket", first)
    assert sum(v <= 0.001 for v in values) == bulk.get_sample_value("t_bucket", first)
