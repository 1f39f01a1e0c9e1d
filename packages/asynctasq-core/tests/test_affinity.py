"""`asynctasq.utils.affinity`: pinning a supervised worker's thread to one CPU, and putting
its pools' threads back on every CPU. Pinning happens in a thread of its own here: on Linux
an affinity belongs to a thread, so the test runner's own threads are never pinned."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from asynctasq.supervisor import Supervisor
from asynctasq.supervisor.supervisor import _pin, _ranges
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
    monkeypatch.delenv(affinity.UNPINNED_VARIABLE, raising=False)
    allowed = affinity.allowed_cpus()
    if len(allowed) < 2:
        pytest.skip("needs 2 CPUs")
    return allowed


def test_worker_n_runs_on_the_nth_cpu_round_robin(cpus: list[int]) -> None:
    def pinned(number: int) -> tuple[int, set[int]]:
        return affinity.pin(number, cpus), os.sched_getaffinity(0)

    assert in_thread(lambda: pinned(1)) == (cpus[0], {cpus[0]})
    assert in_thread(lambda: pinned(2)) == (cpus[1], {cpus[1]})
    assert in_thread(lambda: pinned(len(cpus) + 1)) == (cpus[0], {cpus[0]})
    assert os.sched_getaffinity(0) == set(cpus)  # only the pinned threads


def test_a_thread_started_by_a_pinned_one_is_put_back_on_every_cpu(cpus: list[int]) -> None:
    def pinned_then_started() -> tuple[set[int], set[int]]:
        affinity.pin(2, cpus)
        inherited = in_thread(lambda: os.sched_getaffinity(0))

        def unpinned() -> set[int]:
            affinity.unpin_thread()
            return os.sched_getaffinity(0)

        return inherited, in_thread(unpinned)

    assert in_thread(pinned_then_started) == ({cpus[1]}, set(cpus))


def test_unpinning_does_nothing_in_a_worker_that_is_not_pinned(cpus: list[int]) -> None:
    def pinned_without_the_variable() -> set[int]:
        os.sched_setaffinity(0, {cpus[0]})
        affinity.unpin_thread()
        return os.sched_getaffinity(0)

    assert in_thread(pinned_without_the_variable) == {cpus[0]}


@pytest.mark.parametrize("raw", ["", "x", "0,,1", "-1", "1" * 7, ",".join(["0"] * 70_000)])
def test_a_variable_that_is_not_a_cpu_list_is_ignored(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(affinity.UNPINNED_VARIABLE, raw)
    assert affinity.unpinned_cpus() is None


def test_cpu_lists_are_logged_as_ranges() -> None:
    assert _ranges([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11"
    assert _ranges([5]) == "5"


def test_pinning_where_the_platform_cannot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity, "supported", lambda: False)
    with pytest.raises(ValueError, match="pin_cpus needs a platform that can pin"):
        Supervisor(lambda n: 0, 2, pin_cpus=True)
    Supervisor(lambda n: 0, 2)  # not asked: fine anywhere


def test_a_cpu_taken_away_since_the_start_leaves_the_worker_unpinned(
    cpus: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    gone = max(cpus) + 4096  # not a CPU of this host

    def pinned_to_a_missing_cpu() -> set[int]:
        _pin(1, [gone])
        return os.sched_getaffinity(0)

    assert in_thread(pinned_to_a_missing_cpu) == set(cpus)
    assert "worker 1 runs on any CPU: pinning it failed" in caplog.text
