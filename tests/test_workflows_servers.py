"""Workflows across real worker processes on real servers (Redis, PostgreSQL, MySQL, SQLite).

The crash tests SIGKILL a worker while it finishes a step, at each point where a crash could
lose or repeat what follows (``workflows_e2e/wf_worker.py``): before the next step is
queued, between its claim and its message, and after it is queued but before the finished
step is acknowledged. Another worker then takes over. Every step must run, none twice
except the killed step's own body (at least once), and the workflow's result must be right.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.servers import imported, installed, section

from asynctasq import chain, chord, group
from asynctasq.drivers.base import Driver
from asynctasq.testing.crash import WorkerProcesses, wait_until
from asynctasq.workflows import StepFailedError, WorkflowState

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent / "workflows_e2e"


@pytest.fixture(scope="module")
def tasks() -> Iterator[Any]:
    with imported(HERE, "wf_e2e_tasks") as module:
        yield module


@dataclass
class Fleet:
    driver: Driver
    workers: WorkerProcesses
    records: Path

    def runs(self) -> Counter[tuple[str, str]]:
        """How often each (task, value) ran."""
        found: Counter[tuple[str, str]] = Counter()
        for path in self.records.glob("*.log"):
            for line in path.read_text().splitlines():
                name, value = line.split()
                found[(name, value)] += 1
        return found


@pytest.fixture(params=["redis", "postgres", "mysql", "sqlite"])
async def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, tasks: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Fleet]:
    name: str = request.param
    where = section(name, "wf", tmp_path)
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("WF_RECORDS", str(records))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
    workers = WorkerProcesses(
        HERE / "wf_worker.py", [name, json.dumps(where.values)], tmp_path / "logs", env=env
    )
    async with installed(where) as driver:
        try:
            yield Fleet(driver, workers, records)
        finally:
            workers.stop_all()


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}


def _died(fleet: Fleet, pid: int) -> bool:
    fleet.workers.reap()
    return pid in fleet.workers.killed


async def _settled(fleet: Fleet, tasks: Any, rerun: tuple[str, str] | None = None) -> None:
    """Wait until the killed worker's step ran again (its lease expired) and the queue holds
    nothing ready, delayed or leased: whatever that re-run queued has run too."""

    async def done() -> bool:
        runs = fleet.runs()
        if rerun is not None and runs[rerun] < 2:
            return False
        if rerun is None and sum(runs.values()) < 6:  # a chord member's re-run is missing
            return False
        (stats,) = await fleet.driver.stats([tasks.QUEUE])
        return stats.ready + stats.delayed + stats.in_flight == 0

    await wait_until(
        done, 90, "the killed step ran again and the queue is empty", fleet.workers.report
    )


async def test_a_chain_a_group_and_a_chord_run_on_worker_processes(
    fleet: Fleet, tasks: Any
) -> None:
    fleet.workers.start("none")
    fleet.workers.start("none")
    chained = await chain(tasks.inc(0), tasks.inc, tasks.inc).dispatch()
    grouped = await group(tasks.inc(10 * i + 200) for i in range(4)).dispatch()
    chorded = await chord(group(tasks.inc(i) for i in range(100, 105)), tasks.total).dispatch()
    failing = await chain(tasks.inc(50), tasks.fail, tasks.inc).dispatch()
    assert await chained.result(timeout=60) == 3
    assert await grouped.result(timeout=60) == [201, 211, 221, 231]
    assert await chorded.result(timeout=60) == 101 + 102 + 103 + 104 + 105
    with pytest.raises(StepFailedError, match=r"step 1 .*failing at 51"):
        await failing.result(timeout=60)
    assert (await failing.status()).state == WorkflowState.FAILED
    runs = fleet.runs()
    assert runs[("total", "515")] == 1 and runs[("inc", "52")] == 0
    assert all(count == 1 for count in runs.values()), runs


@pytest.mark.parametrize("point", ["before", "between", "after"])
async def test_a_worker_killed_between_chain_steps_loses_and_repeats_nothing(
    fleet: Fleet, tasks: Any, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WF_KILL_STEP", "2")  # the worker dies finishing step 1
    fleet.workers.env = _worker_env()
    victim = fleet.workers.start(point)
    handle = await chain(tasks.inc(0), tasks.inc, tasks.inc, tasks.inc).dispatch()
    await wait_until(
        lambda: (fleet.records / "killed").exists() and _died(fleet, victim),
        60,
        "the victim killed itself",
        fleet.workers.report,
    )
    fleet.workers.start("none")
    assert await handle.result(timeout=90) == 4
    await _settled(fleet, tasks, ("inc", "1"))
    runs = fleet.runs()
    assert runs[("inc", "0")] == 1 and runs[("inc", "2")] == 1 and runs[("inc", "3")] == 1
    killed_step = runs[("inc", "1")]
    assert killed_step == 2, runs  # the killed worker's step ran again: at least once
    (stats,) = await fleet.driver.stats([tasks.QUEUE])
    assert stats.dead == 0


@pytest.mark.parametrize("point", ["between", "after"])
async def test_a_worker_killed_queueing_a_chords_callback_calls_it_back_once(
    fleet: Fleet, tasks: Any, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WF_KILL_STEP", "4")  # the callback of a group of four
    fleet.workers.env = _worker_env()
    victim = fleet.workers.start(point)
    handle = await chord(group(tasks.inc(i) for i in range(4)), tasks.total).dispatch()
    await wait_until(
        lambda: (fleet.records / "killed").exists() and _died(fleet, victim),
        60,
        "the victim killed itself",
        fleet.workers.report,
    )
    fleet.workers.start("none")
    assert await handle.result(timeout=90) == 1 + 2 + 3 + 4
    await _settled(fleet, tasks)
    runs = fleet.runs()
    assert runs[("total", "10")] == 1, runs
    # the member that queued the callback ran again (at least once), the others once
    assert sorted(runs[("inc", str(i))] for i in range(4)) == [1, 1, 1, 2], runs
