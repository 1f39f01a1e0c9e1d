"""PostgreSQL driver benchmark: enqueue, drain, dispatch-to-start latency, backlog scaling.

Run: ``.venv/bin/python -m scripts.bench.bench_postgres [--dsn ...] [--write]``

Every scenario runs in a throw-away schema (dropped afterwards) and is repeated; the table
shows medians. The "raw asyncpg loop" is the floor a hand-written consumer reaches on the
same server in the same run: 10 coroutines each doing ``UPDATE ... WHERE id = (SELECT ...
FOR UPDATE SKIP LOCKED)``, the no-op, ``DELETE``, sleeping on LISTEN when idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from scripts.bench import _common as common

from asynctasq import init, task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.drivers.connections import close_drivers
from asynctasq.worker import Worker
from asynctasq_postgres import PostgresDriver

DEFAULT_DSN = os.environ.get(
    "ASYNCTASQ_BENCH_POSTGRES_DSN",
    os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
)
QUEUE = "bench"
REPORT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "postgres.md"


# -- helpers --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_driver(dsn: str, **settings: Any) -> AsyncIterator[PostgresDriver]:
    """A driver on a fresh schema, dropped on exit."""
    schema = f"atq_bench_{uuid.uuid4().hex[:8]}"
    settings.setdefault("min_pool_size", 2)
    settings.setdefault("max_pool_size", 10)
    driver = PostgresDriver(dsn, schema=schema, **settings)
    await driver.init_schema()
    try:
        yield driver
    finally:
        await driver.close()
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()


def message(payload: bytes, queue: str = QUEUE) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, payload, visibility_timeout=60)


def driver_dsn(driver: PostgresDriver) -> str:
    return driver._dsn or DEFAULT_DSN


# -- enqueue --------------------------------------------------------------------------------


async def enqueue_single(dsn: str, n: int) -> float:
    """Messages per second, one `enqueue` call (one statement) after another."""
    return await common.enqueue_single(
        lambda: bench_driver(dsn), [message(b'{"noop":1}') for _ in range(n)]
    )


async def enqueue_batch(dsn: str, n: int, batch: int) -> float:
    """Messages per second with `enqueue_many` batches (one multi-row INSERT each)."""
    return await common.enqueue_batch(
        lambda: bench_driver(dsn), [message(b'{"noop":1}') for _ in range(n)], batch
    )


# -- drains ---------------------------------------------------------------------------------


async def drain_driver_loop(dsn: str, n: int, concurrency: int) -> float:
    """Tasks per second for a minimal consumer on the driver alone (no core worker)."""
    messages = [message(b'{"noop":1}') for _ in range(n)]
    return await common.drain_driver_loop(lambda: bench_driver(dsn), QUEUE, messages, concurrency)


async def drain_worker(dsn: str, n: int, concurrency: int) -> float:
    """Tasks per second for core's `Worker` (burst mode) draining `n` no-op tasks."""
    async with bench_driver(dsn) as driver:
        await common.fill(driver, [await noop_message() for _ in range(n)])
        worker = Worker(
            driver=driver,
            queues=[QUEUE],
            concurrency=concurrency,
            burst=True,
            install_signal_handlers=False,
        )
        _runs.clear()
        await worker.run()
        if worker.stats.succeeded != n or len(_runs) != n:
            raise RuntimeError(f"worker ran {worker.stats.succeeded} of {n} tasks")
        # From the first task's start to the last one's: the worker's start-up and its
        # burst-mode exit (an idle poll) are not part of the drain.
        return (n - 1) / (_runs[-1] - _runs[0])


RAW_SCHEMA = """
CREATE TABLE {t} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload bytea NOT NULL,
    locked boolean NOT NULL DEFAULT false
);
CREATE INDEX ON {t} (id) WHERE NOT locked;
"""


async def drain_raw(dsn: str, n: int, concurrency: int, *, synchronous_commit: bool) -> float:
    """Tasks per second for the hand-written asyncpg consumer (the reference ceiling),
    committing with or without waiting for the WAL flush."""
    table = f"atq_raw_{uuid.uuid4().hex[:8]}"
    channel = table
    admin = await asyncpg.connect(dsn)
    await admin.execute(RAW_SCHEMA.format(t=table))
    payloads = [b'{"noop":1}'] * n
    for start in range(0, n, 1000):
        await admin.execute(
            f"INSERT INTO {table} (payload) SELECT * FROM unnest($1::bytea[])",
            payloads[start : start + 1000],
        )
    await admin.execute(f"VACUUM ANALYZE {table}")
    pool = await asyncpg.create_pool(
        dsn,
        min_size=concurrency,
        max_size=concurrency,
        server_settings={"synchronous_commit": "on" if synchronous_commit else "off"},
    )
    listener = await asyncpg.connect(dsn)
    wake = asyncio.Event()
    await listener.add_listener(channel, lambda *_: wake.set())
    take = (
        f"UPDATE {table} SET locked = true WHERE id = (SELECT id FROM {table} WHERE NOT locked "
        "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, payload"
    )
    finish = f"DELETE FROM {table} WHERE id = $1"
    done = 0

    async def noop(_payload: bytes) -> None:
        await asyncio.sleep(0)

    async def consumer() -> None:
        nonlocal done
        while done < n:
            row = await pool.fetchrow(take)
            if row is None:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
                continue
            await noop(row[1])
            await pool.execute(finish, row[0])
            done += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(consumer() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)
    finally:
        await listener.close()
        await pool.close()
        await admin.execute(f"DROP TABLE {table}")
        await admin.close()


async def depth_profile(dsn: str, backlog: int, steps: int = 4) -> list[tuple[str, str, str]]:
    """Cost of one ``dequeue(limit=10)`` statement (all plan nodes, through the driver's own
    connection) as a `backlog` is drained, autovacuum off (the worst case): starting at the
    driver's floor, and from the queue's front (what a scan without a floor does)."""
    async with bench_driver(dsn) as driver:
        await common.fill(driver, [message(b'{"noop":1}') for _ in range(backlog)])
        pool = driver._pool
        assert pool is not None
        async with pool.acquire() as connection:
            await connection.execute(
                f"ALTER TABLE {driver.table_names.queue} SET (autovacuum_enabled = false)"
            )
        rows = []
        drained = 0
        for step in range(steps + 1):
            target = backlog * step // (steps + 1)
            while drained < target or drained == 0:
                batch = await driver.dequeue([QUEUE], limit=100, wait=0)
                await driver.ack(batch)
                drained += len(batch)
            floor_at, floor_id, _ = driver._floors[QUEUE]
            costs = []
            for start in ((floor_at, floor_id), (None, None)):
                async with pool.acquire() as connection:
                    transaction = connection.transaction()
                    await transaction.start()
                    try:
                        plan = await connection.fetchval(
                            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + driver._sql.dequeue,
                            [QUEUE],
                            10,
                            [start[0]],
                            [start[1]],
                        )
                    finally:
                        await transaction.rollback()
                top = json.loads(plan)[0]
                blocks = top["Plan"]["Shared Hit Blocks"] + top["Plan"]["Shared Read Blocks"]
                costs.append(f"{blocks} buffers, {top['Execution Time']:.2f} ms")
            rows.append((f"{drained:,}", costs[0], costs[1]))
        return rows


# -- tasks ----------------------------------------------------------------------------------

_started: dict[str, float] = {}
_arrived = asyncio.Event()


_runs: list[float] = []


@task(queue=QUEUE, max_attempts=1, visibility_timeout=60)
async def bench_noop(mark: str | None = None) -> None:
    """The benchmark's task: notes when it started, does nothing."""
    if mark is None:
        _runs.append(time.perf_counter())
    else:
        _started[mark] = time.perf_counter()
        _arrived.set()


async def noop_message(mark: str | None = None) -> OutgoingMessage:
    """An encoded no-op task: exactly what `dispatch` sends (core's `prepare`)."""
    return prepare(bench_noop(mark))


# -- latency --------------------------------------------------------------------------------


async def latency(dsn: str, samples: int, concurrency: int) -> tuple[float, float, float]:
    """Dispatch-to-start latency (p50, p99 in ms): ``await task(...).dispatch()`` through
    the configured driver, to an idle core worker in the same process (same clock); and
    the p50 of the dispatch call alone (INSERT + NOTIFY + durable commit)."""
    async with bench_driver(dsn) as driver:
        init(
            {
                "driver": "postgres",
                "postgres": {
                    "dsn": dsn,
                    "schema": driver.table_names.schema,
                    "min_pool_size": 1,
                    "max_pool_size": 2,
                },
            }
        )
        worker = Worker(
            driver=driver, queues=[QUEUE], concurrency=concurrency, install_signal_handlers=False
        )
        running = asyncio.create_task(worker.run())
        await bench_noop().dispatch()  # connects the dispatching driver; warms the worker
        await asyncio.sleep(0.5)
        delays: list[float] = []
        calls: list[float] = []
        for i in range(samples):
            mark = f"m{i}"
            sent = time.perf_counter()
            await bench_noop(mark).dispatch()
            calls.append((time.perf_counter() - sent) * 1000)
            while mark not in _started:
                await _arrived.wait()
                _arrived.clear()
            delays.append((_started.pop(mark) - sent) * 1000)
            await asyncio.sleep(0.01)  # idle again before the next one
        worker.request_stop()
        await running
        await close_drivers()
        init()
        return (
            common.percentile(delays, 0.5),
            common.percentile(delays, 0.99),
            common.percentile(calls, 0.5),
        )


# -- runner ---------------------------------------------------------------------------------


@dataclass
class Results(common.Results):
    depth: list[tuple[str, str, str]] = field(default_factory=list)


async def run_all(args: argparse.Namespace) -> Results:
    dsn, n, c, r = args.dsn, args.tasks, args.concurrency, args.repeats
    results = Results()
    print(f"PostgreSQL benchmark: {n} tasks, concurrency {c}, median of {r}", flush=True)
    results.add(
        "enqueue, one per call", await common.repeat(r, lambda: enqueue_single(dsn, 2000)), "msg/s"
    )
    results.add(
        "enqueue_many, batches of 500",
        await common.repeat(r, lambda: enqueue_batch(dsn, n, 500)),
        "msg/s",
    )
    raw_sync = results.add(
        f"drain {n}: raw asyncpg loop, synchronous commit",
        await common.repeat(r, lambda: drain_raw(dsn, n, c, synchronous_commit=True)),
        "tasks/s",
    )
    raw_async = results.add(
        f"drain {n}: raw asyncpg loop, synchronous_commit=off",
        await common.repeat(r, lambda: drain_raw(dsn, n, c, synchronous_commit=False)),
        "tasks/s",
    )
    results.add(
        f"drain {n}: driver alone (dequeue/ack loop)",
        await common.repeat(r, lambda: drain_driver_loop(dsn, n, c)),
        "tasks/s",
    )
    worker = results.add(
        f"drain {n}: core Worker + PostgresDriver",
        await common.repeat(r, lambda: drain_worker(dsn, n, c)),
        "tasks/s",
    )
    results.rows.append(
        ("Worker drain / raw loop (sync commit)", f"{worker / raw_sync:.2f}x", "target >= 0.6x")
    )
    results.rows.append(
        ("Worker drain / raw loop (commit=off)", f"{worker / raw_async:.2f}x", "target >= 0.6x")
    )
    lat = [await latency(dsn, args.latency_samples, c) for _ in range(r)]
    results.add("dispatch-to-start latency p50", [x[0] for x in lat], "ms", "{:.2f}")
    results.add("dispatch-to-start latency p99", [x[1] for x in lat], "ms", "{:.2f}")
    results.add("of which the dispatch call itself, p50", [x[2] for x in lat], "ms", "{:.2f}")
    for backlog in args.backlogs:
        runs = [await drain_worker(dsn, backlog, c) for _ in range(r)]
        results.add(f"Worker drain, backlog {backlog:,}", runs, "tasks/s")
    results.depth = await depth_profile(dsn, max(args.backlogs))
    for drained, floor, front in results.depth:
        print(f"  dequeue after draining {drained}: {floor} (floor) / {front} (front)")
    return results


def render(results: Results, args: argparse.Namespace) -> str:
    lines = [
        "# PostgreSQL driver benchmark",
        "",
        f"`.venv/bin/python -m scripts.bench.bench_postgres --tasks {args.tasks} "
        f"--concurrency {args.concurrency} --repeats {args.repeats}`  ",
        f"Python {platform.python_version()}, asyncpg {asyncpg.__version__}, "
        f"{os.cpu_count()} cores shared with the server (PostgreSQL on 127.0.0.1), "
        f"{time.strftime('%Y-%m-%d')}. Medians of {args.repeats}; every run listed.",
        "",
        "| measure | median | runs |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {value} | {spread} |" for name, value, spread in results.rows]
    lines += [
        "",
        f"One `dequeue(limit=10)` statement while {max(args.backlogs):,} tasks are drained "
        "(autovacuum off: the worst case):",
        "",
        "| drained so far | from the driver's floor | from the queue's front |",
        "| --- | --- | --- |",
        *(f"| {d} | {floor} | {front} |" for d, floor, front in results.depth),
        "",
        *NOTES.strip().splitlines(),
    ]
    return "\n".join(lines) + "\n"


NOTES = """
## What the rows measure

- **enqueue**: `driver.enqueue` one message per call (one statement, a durable commit
  each: the WAL flush dominates), and `enqueue_many` in batches of 500 (one statement each).
- **raw asyncpg loop**: the reference consumer written by hand on the same server in the
  same run: 10 coroutines on a 10-connection pool, each `UPDATE ... SET locked = true WHERE
  id = (SELECT id ... ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ...`, a no-op,
  `DELETE`, sleeping on LISTEN when idle. Measured with durable commits (what such a loop
  usually does) and with `synchronous_commit=off` (what the driver's lease statements do).
- **driver alone**: `dequeue(limit=10)`, a no-op per message, one `ack` per batch: the
  driver's ceiling without core's worker.
- **core Worker + PostgresDriver**: `asynctasq.worker.Worker(concurrency=10, burst=True)`
  running 20,000 encoded no-op `@task`s, timed from the first task's start to the last's.
- **dispatch-to-start latency**: `await task(...).dispatch()` through the configured driver
  to an idle worker in the same process; the clock stops when the task body starts. The
  dispatch call's own time (INSERT + NOTIFY + the commit's WAL flush) is shown below it: the
  rest is the wake-up path (NOTIFY at commit, the LISTEN connection, one dequeue, start).
- **backlog**: the same worker drain with 1,000 and 100,000 tasks queued up front.
- **one dequeue statement while draining**: acked and re-leased rows leave dead index
  entries at the front of a queue's range until VACUUM; the driver starts each scan at the
  `(available_at, id)` of its last full batch, so a deep drain does not rescan them (a unit
  test guards this). The "front" column is the same statement without that floor.

The machine has 2 cores shared by the server, this benchmark and other people's work, so
runs vary; compare rows of one run (the ratio rows do).
"""


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print (and with ``--write``, save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--backlogs", type=lambda s: [int(x) for x in s.split(",")], default=[1_000, 100_000]
    )
    parser.add_argument("--write", action="store_true", help=f"save the table to {REPORT}")
    args = parser.parse_args(argv)
    results = asyncio.run(run_all(args))
    table = render(results, args)
    print()
    print(table)
    if args.write:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(table)


if __name__ == "__main__":
    main()
