"""Kill -9 workers mid-flight: every task still completes, and only killed work repeats."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asynctasq_mysql import MySQLDriver

HERE = Path(__file__).resolve().parent
TASKS = 1000
KILLS = 4


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(HERE / "crash_worker.py"), *args],
            env=env,
            cwd=HERE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _completed(admin: Any, results: str) -> dict[int, list[int]]:
    async with admin.cursor() as cursor:
        await cursor.execute(f"SELECT `n`, `pid` FROM `{results}` ORDER BY `id`")
        done: dict[int, list[int]] = defaultdict(list)
        for n, pid in await cursor.fetchall():
            done[int(n)].append(int(pid))
        return done


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigkilled_workers_lose_no_task(
    make_driver: Callable[..., MySQLDriver],
    table_names: dict[str, str],
    mysql_dsn: str,
    admin: Any,
    tmp_path: Path,
) -> None:
    await make_driver().init_schema()
    results = f"crash_{uuid.uuid4().hex[:12]}"
    async with admin.cursor() as cursor:
        await cursor.execute(
            f"CREATE TABLE `{results}` (`id` BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "`n` INT NOT NULL, `pid` INT NOT NULL)"
        )
    env = {
        **os.environ,
        "CRASH_DSN": mysql_dsn,
        "CRASH_QUEUE_TABLE": table_names["queue"],
        "CRASH_DEAD_LETTER_TABLE": table_names["dead_letter"],
        "CRASH_QUEUE": f"crash-{uuid.uuid4().hex[:8]}",
        "CRASH_RESULTS": results,
        "CRASH_CONCURRENCY": "5",
    }
    log = tmp_path / "workers.log"
    workers: list[subprocess.Popen[bytes]] = []
    killed: set[int] = set()
    in_flight_at_kills: list[int] = []
    try:
        enqueuer = _spawn(["enqueue", str(TASKS)], env, log)
        assert await asyncio.to_thread(enqueuer.wait, 60) == 0, log.read_text()
        workers = [_spawn(["work"], env, log) for _ in range(2)]
        observer = make_driver()
        for round_ in range(KILLS):
            # Kill only once work is flowing, spread over the run (not during start-up).
            target = (round_ + 1) * TASKS // (KILLS + 2)
            deadline = time.monotonic() + 60
            while len(await _completed(admin, results)) < target:
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.05)
            [stats] = await observer.stats([env["CRASH_QUEUE"]])
            in_flight_at_kills.append(stats.in_flight)
            victim = workers[round_ % 2]
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 10)
            killed.add(victim.pid)
            workers[round_ % 2] = _spawn(["work"], env, log)
        deadline = time.monotonic() + 90
        while len(done := await _completed(admin, results)) < TASKS:
            assert time.monotonic() < deadline, f"{len(done)}/{TASKS} done\n{log.read_text()}"
            assert all(w.poll() is None for w in workers), log.read_text()
            await asyncio.sleep(0.5)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                await asyncio.to_thread(worker.wait, 15)
            except subprocess.TimeoutExpired:
                worker.kill()
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP TABLE IF EXISTS `{results}`")

    assert set(done) == set(range(TASKS))
    # A task may run twice only when a worker died between its effect and its ack: every
    # run but the last must have happened in a killed worker.
    repeated = {n: pids for n, pids in done.items() if len(pids) > 1}
    wrongly = {n: pids for n, pids in repeated.items() if not set(pids[:-1]) <= killed}
    assert not wrongly, f"duplicates outside killed workers: {wrongly}"
    assert len(killed) == KILLS
    # The kills hit a busy system (leases held), not idle workers.
    assert sum(in_flight_at_kills) > 0, in_flight_at_kills
    [stats] = await make_driver().stats([env["CRASH_QUEUE"]])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
    print(
        f"in flight at the kills: {in_flight_at_kills}; {len(repeated)} task(s) ran more than"
        f" once, earlier runs all in the {KILLS} killed workers"
    )
