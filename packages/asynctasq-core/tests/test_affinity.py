"""`asynctasq.utils.affinity`: a supervised worker pinned to one CPU once it has started, and
its pools' threads put back on every CPU. Pins are applied in a thread of its own here: on
Linux an affinity belongs to a thread, so the test runner's own threads are never pinned."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from asynctasq.supervisor import Supervisor, cpu_count, fills_the_cpus, sizing
from asynctasq.supervisor.supervisor import _ranges
from asynctasq.utils import affinity

T = TypeVar("T")
pytestmark = pytest.mark.skipif(not affinity.supported(), reason="needs CPU affinity (Linux)")


def in_thread(call: Callable[[], T]) -> T:
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    thread.join()
    return out[0]


@pytest.fixture
def cpus(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    # The plan and the pinned state are this process's: each test starts without them.
    monkeypatch.setattr(affinity, "_planned", None)
    monkeypatch.setattr(affinity, "_unpinned", None)
    allowed = affinity.allowed_cpus()
    if len(allowed) < 2:
        pytest.skip("needs 2 CPUs")
    return allowed


def pinned_as_planned(number: int, cpus: list[int]) -> tuple[int | None, set[int]]:
    affinity.plan(number, cpus)
    return affinity.apply_plan(), os.sched_getaffinity(0)


def test_worker_n_runs_on_the_nth_cpu_round_robin(cpus: list[int]) -> None:
    assert in_thread(lambda: pinned_as_planned(1, cpus)) == (cpus[0], {cpus[0]})
    assert in_thread(lambda: pinned_as_planned(2, cpus)) == (cpus[1], {cpus[1]})
    assert in_thread(lambda: pinned_as_planned(len(cpus) + 1, cpus)) == (cpus[0], {cpus[0]})
    assert os.sched_getaffinity(0) == set(cpus)  # only the pinned threads


def test_a_plan_is_applied_once(cpus: list[int]) -> None:
    affinity.plan(2, cpus)
    assert in_thread(affinity.apply_plan) == cpus[1]
    assert in_thread(lambda: (affinity.apply_plan(), os.sched_getaffinity(0))) == (
        None,
        set(cpus),
    )


def test_nothing_planned_pins_nothing(cpus: list[int]) -> None:
    assert in_thread(lambda: (affinity.apply_plan(), os.sched_getaffinity(0))) == (
        None,
        set(cpus),
    )
    assert affinity.unpinned_cpus() is None


def test_a_pinned_worker_counts_every_cpu_and_keeps_them_out_of_its_environment(
    cpus: list[int],
) -> None:
    in_thread(lambda: pinned_as_planned(1, cpus))
    # Its process pool is sized from all of them (CPUs // N), not from the one it runs on;
    # and nothing in os.environ tells a subprocess or a pool child to act on them.
    assert affinity.unpinned_cpus() == set(cpus)
    assert cpu_count() == len(cpus)
    assert not [name for name in os.environ if name.endswith("_CPUS")]


def test_a_thread_started_by_a_pinned_one_is_put_back_on_every_cpu(cpus: list[int]) -> None:
    def pinned_then_started() -> tuple[set[int], set[int], set[int]]:
        pinned_as_planned(2, cpus)
        inherited = in_thread(lambda: os.sched_getaffinity(0))

        def unpinned() -> set[int]:
            affinity.unpin_thread()
            return os.sched_getaffinity(0)

        def given() -> set[int]:  # a pool child gets the CPUs from its worker
            affinity.unpin_thread(cpus)
            return os.sched_getaffinity(0)

        return inherited, in_thread(unpinned), in_thread(given)

    assert in_thread(pinned_then_started) == ({cpus[1]}, set(cpus), set(cpus))


def test_unpinning_does_nothing_in_a_worker_that_is_not_pinned(cpus: list[int]) -> None:
    def pinned_by_someone_else() -> set[int]:
        os.sched_setaffinity(0, {cpus[0]})  # e.g. taskset: not ours to undo
        affinity.unpin_thread()
        return os.sched_getaffinity(0)

    assert in_thread(pinned_by_someone_else) == {cpus[0]}


def test_a_cpu_taken_away_since_the_start_leaves_the_worker_unpinned(
    cpus: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    gone = max(cpus) + 4096  # not a CPU of this host
    assert in_thread(lambda: pinned_as_planned(1, [gone])) == (None, set(cpus))
    assert "worker 1 runs on any CPU: pinning it failed" in caplog.text
    assert affinity.unpinned_cpus() is None


def test_cpu_lists_are_logged_as_ranges() -> None:
    assert _ranges([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11"
    assert _ranges([5]) == "5"


def test_pinning_where_the_platform_cannot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity, "supported", lambda: False)
    with pytest.raises(ValueError, match="pin_cpus needs a platform that can pin"):
        Supervisor(lambda n: 0, 2, pin_cpus=True)
    Supervisor(lambda n: 0, 2)  # not asked: fine anywhere


@pytest.mark.parametrize(
    ("workers", "allowed", "limit", "pinned"),
    [
        (2, [0, 1], None, True),  # one per CPU
        (4, [0, 1, 2, 3], 4, True),  # a CPU limit that is not below the CPUs
        (8, [2, 3, 5, 7, 8, 9, 10, 11], None, True),  # a cpuset of its own
        (1, [0, 1], None, False),  # a CPU left to others
        (3, [0, 1], None, False),  # two on one CPU
        (2, [0, 1, 2, 3], 2, False),  # a container's CPU limit: its CPUs are shared
        (4, [0, 1, 2, 3], 2, False),  # more workers than its CPU limit
        (2, [0, 1], 1.5, False),  # a fraction of a CPU below them is a limit too
        (2, [0, 1], 2.5, True),
    ],
)
def test_auto_pins_only_workers_that_are_one_per_cpu(
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    allowed: list[int],
    limit: float | None,
    pinned: bool,
) -> None:
    monkeypatch.setattr(affinity, "allowed_cpus", lambda: allowed)
    monkeypatch.setattr(sizing, "cpu_quota", lambda: limit)
    assert fills_the_cpus(workers) is pinned
    chosen = Supervisor(lambda n: 0, workers, pin_cpus="auto")
    assert chosen._cpus == (allowed if pinned else [])
    assert Supervisor(lambda n: 0, workers, pin_cpus=True)._cpus == allowed
    assert Supervisor(lambda n: 0, workers, pin_cpus=False)._cpus == []


def test_auto_pins_nothing_where_the_platform_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity, "supported", lambda: False)
    assert not fills_the_cpus(1)
    assert Supervisor(lambda n: 0, 1, pin_cpus="auto")._cpus == []


@pytest.mark.parametrize("value", ["yes", "on", 1, None])
def test_pin_cpus_is_true_false_or_auto(value: object) -> None:
    with pytest.raises(ValueError, match="pin_cpus must be True, False or 'auto', got"):
        Supervisor(lambda n: 0, 2, pin_cpus=value)  # type: ignore[arg-type]
