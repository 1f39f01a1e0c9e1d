"""The crash kit drivers use for their SIGKILL tests (`asynctasq.testing.crash`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from asynctasq.testing.crash import WorkerProcesses, assert_at_least_once, wait_until

KILLED = {2}
# tasks 0-3; worker 2 was killed while running task 1, which worker 1 then ran again
STARTS = [(1, 0), (2, 1), (1, 1), (1, 2), (1, 3)]
FINISHES = [(1, 0), (1, 1), (1, 2), (1, 3)]


def test_a_run_that_keeps_the_contract_passes() -> None:
    assert_at_least_once(STARTS, FINISHES, KILLED, 4)


@pytest.mark.parametrize(
    ("starts", "finishes", "match"),
    [
        (STARTS, FINISHES[:-1], "never finished"),
        ([*STARTS, (1, 2)], [*FINISHES, (1, 2)], "not killed"),
        ([*STARTS, (3, 0)], FINISHES, "not killed"),
        ([(1, 0), (1, 1), (1, 2), (1, 3), (2, 1)], [*FINISHES, (2, 1)], "proved nothing"),
    ],
)
def test_each_broken_promise_is_named(
    starts: list[tuple[int, int]], finishes: list[tuple[int, int]], match: str
) -> None:
    with pytest.raises(AssertionError, match=match):
        assert_at_least_once(starts, finishes, KILLED, 4)


async def test_processes_are_started_killed_reaped_and_reported(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        "import sys, time\nprint('worker up', sys.argv[1:], flush=True)\n"
        "time.sleep(0 if sys.argv[-1] == 'quit' else 60)\n"
    )
    workers = WorkerProcesses(script, ["q"], tmp_path / "logs")
    try:
        victim = workers.start("stay")
        quitter = workers.start("quit")
        # Both up (under load the quitter may print first): the victim is killed after it logs.
        await wait_until(lambda: workers.report().count("worker up") == 2, 10, "start-up")
        workers.kill(victim)
        await wait_until(lambda: workers.procs[quitter].poll() is not None, 10, "quitter")
        workers.reap()
        assert workers.killed == {victim, quitter}
        assert workers.procs == {}
        assert "['q', 'stay']" in workers.report()
    finally:
        workers.stop_all()


async def test_wait_until_takes_async_checks_and_reports_on_timeout() -> None:
    async def never() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(AssertionError, match="waiting for the moon\nlogs here"):
        await wait_until(never, 0.2, "the moon", lambda: "logs here")
    assert time.monotonic() - started < 2
