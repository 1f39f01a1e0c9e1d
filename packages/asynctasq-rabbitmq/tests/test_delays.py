"""The binary delay levels, checked without a broker by simulating RabbitMQ's topic routing."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctasq_rabbitmq import delays


def _topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ topic semantics: `*` is one word, `#` zero or more."""
    parts = []
    for word in pattern.split("."):
        if word == "*":
            parts.append(r"[^.]+")
        elif word == "#":
            parts.append(r".*")
        else:
            parts.append(re.escape(word))
    regex = r"\.".join(parts).replace(r"\..*", r"(\..*)?")
    return re.fullmatch(regex, key) is not None


def _simulate(units: int, qid: str) -> int:
    """Follow a delayed message through the exchanges; return the units it waited."""
    key = delays.routing_key(units, qid)
    waited = 0
    level = delays.top_level(units)
    while level >= 0:
        in_queue = _topic_matches(delays.level_queue_pattern(level, qid), key)
        passed = level > 0 and _topic_matches(delays.pass_through_pattern(level), key)
        ready = level == 0 and _topic_matches(delays.ready_pattern(qid), key)
        assert in_queue + passed + ready == 1, (units, level)  # exactly one route
        if in_queue:
            waited += delays.level_ttl_ms(level) // delays.DELAY_UNIT_MS
            if level == 0:
                return waited  # level 0 dead-letters straight into the work queue
        elif ready:
            return waited
        level -= 1
    raise AssertionError("the message never reached its work queue")


@given(st.integers(min_value=1, max_value=2**delays.DELAY_LEVELS - 1))
def test_every_delay_waits_exactly_its_units(units: int) -> None:
    assert _simulate(units, delays.queue_id("q")) == units


def test_other_queues_never_match() -> None:
    key = delays.routing_key(5, delays.queue_id("orders"))
    other = delays.queue_id("orders.dead")
    for level in range(delays.DELAY_LEVELS):
        assert not _topic_matches(delays.level_queue_pattern(level, other), key)
    assert not _topic_matches(delays.ready_pattern(other), key)


@pytest.mark.parametrize(
    ("seconds", "units"),
    [(0, 0), (-1.0, 0), (0.001, 1), (0.01, 1), (0.07, 7), (0.29, 29), (1.5, 150), (60, 6000)],
)
def test_delays_round_up_to_whole_units(seconds: float, units: int) -> None:
    assert delays.delay_units(seconds) == units


def test_delay_limits() -> None:
    assert delays.delay_units(delays.MAX_DELAY) == 2**delays.DELAY_LEVELS - 1
    with pytest.raises(ValueError, match="exceeds"):
        delays.delay_units(delays.MAX_DELAY + 1)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            delays.delay_units(bad)


def test_ttls_stay_within_what_rabbitmq_accepts() -> None:
    assert delays.level_ttl_ms(delays.DELAY_LEVELS - 1) <= 2**32 - 1
    assert delays.MAX_DELAY > 60 * 86400  # two months


def test_routing_keys_fit_amqp_limits() -> None:
    key = delays.routing_key(2**delays.DELAY_LEVELS - 1, delays.queue_id("x" * 200))
    assert len(key.encode()) <= 255
    assert len(key.split(".")) == delays.DELAY_LEVELS + 1
