"""Several processes share one database file: every task is delivered exactly once."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from asynctasq_sqlite import SqliteDriver

SCRIPT = Path(__file__).with_name("contention_proc.py")
PRODUCERS = 3
CONSUMERS = 3
PER_PRODUCER = 500


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args, stderr=asyncio.subprocess.PIPE
    )


async def test_concurrent_producers_and_consumers_deliver_each_task_once(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "shared.db")  # created by whichever process gets there first
    stop = tmp_path / "stop"
    outs = [tmp_path / f"consumer-{i}.txt" for i in range(CONSUMERS)]
    consumers = [await spawn("consume", path, "q", str(stop), str(out)) for out in outs]
    # Every consumer takes work before any is produced: one started late on a loaded host
    # would otherwise find the queue already drained by the others.
    deadline = time.monotonic() + 60
    while not all(Path(f"{out}.ready").exists() for out in outs):  # noqa: ASYNC240
        assert time.monotonic() < deadline, "a consumer did not start"
        assert all(proc.returncode is None for proc in consumers), "a consumer exited"
        await asyncio.sleep(0.02)
    producers = [
        await spawn("produce", path, "q", f"p{i}", str(PER_PRODUCER)) for i in range(PRODUCERS)
    ]
    try:
        for proc in producers:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
        observer = SqliteDriver(path=path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [stats] = await observer.stats(["q"])
            if stats.ready + stats.delayed + stats.in_flight == 0:
                break
            await asyncio.sleep(0.1)
        await observer.close()
        stop.touch()
        for proc in consumers:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in producers + consumers:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    delivered = [line for out in outs for line in out.read_text().splitlines()]
    expected = {f"p{p}-{i}" for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    assert len(delivered) == len(expected), "lost or doubled deliveries"
    assert set(delivered) == expected
    assert all(out.stat().st_size > 0 for out in outs), "every consumer got some work"
