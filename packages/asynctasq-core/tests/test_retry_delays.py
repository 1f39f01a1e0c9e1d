"""The worker's wait before a retry, per strategy, computed directly (nothing sleeps)."""

from __future__ import annotations

import pytest

from asynctasq.core.envelope import Envelope
from asynctasq.core.options import MAX_ATTEMPTS, MAX_SECONDS
from asynctasq.worker.retry import retry_delay

SAMPLES = 2000


def message(
    strategy: str, delay: float, max_delay: float = 3600.0, jitter: bool = False
) -> Envelope:
    return Envelope(
        task_id="t",
        task="m:f",
        dispatched_at=0.0,
        max_attempts=MAX_ATTEMPTS,
        retry_delay=delay,
        retry_strategy=strategy,
        retry_max_delay=max_delay,
        retry_jitter=jitter,
        timeout=None,
        visibility_timeout=60.0,
        keep_result=0.0,
        args=[],
        kwargs={},
        attrs=None,
        async_refs=False,
    )


def test_fixed_waits_the_same_every_time_ignoring_cap_and_jitter() -> None:
    env = message("fixed", 30.0, max_delay=10.0, jitter=True)
    assert [retry_delay(env, runs) for runs in range(1, 8)] == [30.0] * 7


def test_exponential_doubles_from_the_base_up_to_the_cap() -> None:
    env = message("exponential", 5.0, max_delay=100.0)
    assert [retry_delay(env, runs) for runs in range(1, 8)] == [5, 10, 20, 40, 80, 100, 100]


def test_exponential_with_a_zero_base_never_waits() -> None:
    assert retry_delay(message("exponential", 0.0, jitter=True), 50) == 0.0


@pytest.mark.parametrize("runs", [1, 3, 10])
def test_jitter_stays_in_the_upper_half_of_the_wait(runs: int) -> None:
    env = message("exponential", 4.0, max_delay=1000.0, jitter=True)
    full = min(4.0 * 2 ** (runs - 1), 1000.0)
    waits = [retry_delay(env, runs) for _ in range(SAMPLES)]
    assert all(full / 2 <= wait <= full for wait in waits)
    # spread over the half, not stuck at one end (2000 uniform draws: these hold unless
    # the generator is broken)
    assert min(waits) < full / 2 + full / 20 and max(waits) > full - full / 20
    assert len(set(waits)) > SAMPLES // 2


def test_jitter_applies_to_the_capped_wait() -> None:
    env = message("exponential", 10.0, max_delay=60.0, jitter=True)
    waits = [retry_delay(env, 20) for _ in range(SAMPLES)]
    assert all(30.0 <= wait <= 60.0 for wait in waits)


@pytest.mark.parametrize("runs", [1025, 5000, MAX_ATTEMPTS])
def test_a_huge_run_count_is_capped_not_an_overflow(runs: int) -> None:
    # A message may ask for 100 000 runs; 2**99_999 fits no float.
    assert retry_delay(message("exponential", 1.0, max_delay=MAX_SECONDS), runs) == MAX_SECONDS
    assert retry_delay(message("exponential", 0.0), runs) == 0.0
    jittered = retry_delay(message("exponential", 2.0, max_delay=100.0, jitter=True), runs)
    assert 50.0 <= jittered <= 100.0
