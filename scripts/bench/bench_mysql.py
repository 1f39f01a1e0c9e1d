"""MySQL/MariaDB driver benchmark: enqueue, drain, dispatch-to-start latency.

Run: ``.venv/bin/python -m scripts.bench.bench_mysql [--dsn ...] [--write]``

Every scenario runs on throw-away tables (dropped afterwards) and is repeated; the table shows
medians and every run. The "raw aiomysql loop" is what a hand-written consumer reaches on the
same server in the same run: 10 coroutines each doing ``BEGIN; SELECT ... LIMIT 1 FOR UPDATE
SKIP LOCKED; UPDATE; COMMIT``, the no-op, ``DELETE``, sleeping 10 ms when idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomysql
from scripts.bench import _common as common

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_mysql import MySQLDriver, parse_dsn

DEFAULT_DSN = os.environ.get(
    "ASYNCTASQ_BENCH_MYSQL_DSN",
    os.environ.get("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test"),
)
QUEUE = "bench"
REPORT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "mysql.md"


# -- helpers --------------------------------------------------------------------------------


async def admin_connect(dsn: str) -> Any:
    return await aiomysql.connect(autocommit=True, **parse_dsn(dsn).connect_kwargs())


async def drop(dsn: str, *tables: str) -> None:
    admin = await admin_connect(dsn)
    try:
        async with admin.cursor() as cursor:
            await cursor.execute("SET SESSION sql_notes = 0")
            for table in tables:
                await cursor.execute(f"DROP TABLE IF EXISTS `{table}`")
    finally:
        admin.close()


@contextlib.asynccontextmanager
async def bench_driver(dsn: str, **settings: Any) -> AsyncIterator[MySQLDriver]:
    """A driver on fresh tables, dropped on exit."""
    suffix = uuid.uuid4().hex[:8]
    queue_table, dead_table = f"atq_bench_{suffix}", f"atq_bench_{suffix}_dead"
    settings.setdefault("min_pool_size", 2)
    settings.setdefault("max_pool_size", 10)
    driver = MySQLDriver(dsn, queue_table=queue_table, dead_letter_table=dead_table, **settings)
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()
        await drop(
            dsn, queue_table, dead_table, *(f"{queue_table}_{t}" for t in ("migrations", "results"))
        )


def message(payload: bytes, queue: str = QUEUE) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, payload, visibility_timeout=60)


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
    from asynctasq.worker import Worker

    async with bench_driver(dsn) as driver:
        await common.fill(driver, [await noop_message() for _ in range(n)])
        worker = Worker(
            driver=driver,
            queues=[QUEUE],
            concurrency=concurrency,
            burst=True,
            install_signal_handlers=False,
        )
        started = time.perf_counter()
        await worker.run()
        elapsed = time.perf_counter() - started
        if worker.stats.succeeded != n:
            raise RuntimeError(f"worker ran {worker.stats.succeeded} of {n} tasks")
        return n / elapsed


async def drain_raw(dsn: str, n: int, concurrency: int) -> float:
    """Tasks per second for the hand-written aiomysql consumer (the reference)."""
    table = f"atq_raw_{uuid.uuid4().hex[:8]}"
    admin = await admin_connect(dsn)
    async with admin.cursor() as cursor:
        await cursor.execute(
            f"CREATE TABLE `{table}` (`id` BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "`payload` LONGBLOB NOT NULL, `locked` TINYINT NOT NULL DEFAULT 0, "
            "KEY `ix_locked` (`locked`, `id`)) ENGINE=InnoDB"
        )
        for start in range(0, n, 1000):
            rows = min(1000, n - start)
            await cursor.execute(
                f"INSERT INTO `{table}` (`payload`) VALUES "
                + ", ".join(["('{\"noop\":1}')"] * rows)
            )
    pool = await aiomysql.create_pool(
        minsize=concurrency,
        maxsize=concurrency,
        autocommit=True,
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        **parse_dsn(dsn).connect_kwargs(),
    )
    take = (
        f"SELECT `id`, `payload` FROM `{table}` WHERE `locked` = 0 ORDER BY `id` LIMIT 1 "
        "FOR UPDATE SKIP LOCKED"
    )
    done = 0

    async def consumer() -> None:
        nonlocal done
        while done < n:
            async with pool.acquire() as conn, conn.cursor() as cursor:
                await conn.begin()
                await cursor.execute(take)
                row = await cursor.fetchone()
                if row is not None:
                    await cursor.execute(
                        f"UPDATE `{table}` SET `locked` = 1 WHERE `id` = %s", row[0]
                    )
                await conn.commit()
                if row is None:
                    await asyncio.sleep(0.01)
                    continue
                await asyncio.sleep(0)  # the no-op task
                await cursor.execute(f"DELETE FROM `{table}` WHERE `id` = %s", row[0])
                done += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(consumer() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)
    finally:
        pool.close()
        await pool.wait_closed()
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP TABLE `{table}`")
        admin.close()


# -- latency --------------------------------------------------------------------------------

_started: dict[str, float] = {}
_arrived: dict[str, asyncio.Event] = {}
_TASK: Any = None


def _noop_task() -> Any:
    global _TASK
    if _TASK is None:
        from asynctasq.core.function import task

        async def bench_noop(mark: str | None = None) -> None:
            if mark is not None:
                _started[mark] = time.perf_counter()
                _arrived[mark].set()

        bench_noop.__module__ = __name__
        bench_noop.__qualname__ = "bench_noop"
        _TASK = task(queue=QUEUE, max_attempts=1)(bench_noop)
        globals()["bench_noop"] = _TASK
    return _TASK


async def noop_message(mark: str | None = None) -> OutgoingMessage:
    """An encoded no-op task (what `dispatch` would send), via core's `prepare`."""
    from asynctasq.core.dispatch import prepare

    prepared = prepare(_noop_task()(mark))
    return OutgoingMessage(prepared.task_id, QUEUE, prepared.payload, visibility_timeout=60)


async def latency(dsn: str, samples: int, concurrency: int) -> tuple[float, float]:
    """Dispatch-to-start latency (p50, p99 in ms) to an idle core worker in this process.

    The worker shares the driver, so an enqueue wakes its idle poll at once (the in-process
    wake-up); a worker in another process would see the task within its poll interval.
    """
    from asynctasq.worker import Worker

    async with bench_driver(dsn) as driver:
        worker = Worker(
            driver=driver, queues=[QUEUE], concurrency=concurrency, install_signal_handlers=False
        )
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)
        delays = []
        for i in range(samples):
            mark = f"m{i}"
            outgoing = await noop_message(mark)
            arrived = _arrived[mark] = asyncio.Event()
            sent = time.perf_counter()
            await driver.enqueue(outgoing)
            await arrived.wait()
            del _arrived[mark]
            delays.append((_started.pop(mark) - sent) * 1000)
            await asyncio.sleep(0.01)  # idle again before the next one
        worker.request_stop()
        await running
        return common.percentile(delays, 0.5), common.percentile(delays, 0.99)


async def latency_other_process(dsn: str, samples: int) -> tuple[float, float]:
    """Dispatch-to-start latency (p50, p99 in ms) when the producer is another driver
    instance (as in another process): the idle consumer only learns by polling."""
    async with bench_driver(dsn) as consumer_driver:
        producer = MySQLDriver(
            dsn,
            queue_table=consumer_driver.queue_table,
            dead_letter_table=consumer_driver.dead_letter_table,
            min_pool_size=1,
            max_pool_size=2,
        )
        delays: list[float] = []
        try:
            for _ in range(samples):
                await asyncio.sleep(0.3)  # let the consumer's idle backoff grow
                waiter = asyncio.create_task(consumer_driver.dequeue([QUEUE], limit=1, wait=5))
                await asyncio.sleep(0.2)
                sent = time.perf_counter()
                await producer.enqueue(message(b"{}"))
                got = await waiter
                delays.append((time.perf_counter() - sent) * 1000)
                await consumer_driver.ack(got)
        finally:
            await producer.close()
        return common.percentile(delays, 0.5), common.percentile(delays, 0.99)


# -- runner ---------------------------------------------------------------------------------


Results = common.Results


async def server_version(dsn: str) -> str:
    admin = await admin_connect(dsn)
    try:
        async with admin.cursor() as cursor:
            await cursor.execute("SELECT VERSION()")
            (version,) = await cursor.fetchone()
            return str(version)
    finally:
        admin.close()


async def run_all(args: argparse.Namespace) -> Results:
    dsn, n, c, r = args.dsn, args.tasks, args.concurrency, args.repeats
    results = Results()
    print(f"MySQL benchmark: {n} tasks, concurrency {c}, median of {r}", flush=True)
    results.add(
        "enqueue, one per call", await common.repeat(r, lambda: enqueue_single(dsn, 2000)), "msg/s"
    )
    results.add(
        "enqueue_many, batches of 500",
        await common.repeat(r, lambda: enqueue_batch(dsn, n, 500)),
        "msg/s",
    )
    raw = results.add(
        f"drain {n}: raw aiomysql loop",
        await common.repeat(r, lambda: drain_raw(dsn, n, c)),
        "tasks/s",
    )
    results.add(
        f"drain {n}: driver alone (dequeue/ack loop)",
        await common.repeat(r, lambda: drain_driver_loop(dsn, n, c)),
        "tasks/s",
    )
    worker = results.add(
        f"drain {n}: core Worker + MySQLDriver (concurrency {c})",
        await common.repeat(r, lambda: drain_worker(dsn, n, c)),
        "tasks/s",
    )
    results.rows.append(("worker drain / raw loop", f"{worker / raw:.2f}x", ""))
    lat = [await latency(dsn, args.latency_samples, c) for _ in range(r)]
    results.add("dispatch-to-start latency p50 (same process)", [p for p, _ in lat], "ms", "{:.2f}")
    results.add("dispatch-to-start latency p99 (same process)", [p for _, p in lat], "ms", "{:.2f}")
    far = [await latency_other_process(dsn, args.latency_samples // 10) for _ in range(r)]
    results.add("enqueue-to-dequeue p50 (other producer)", [p for p, _ in far], "ms", "{:.1f}")
    results.add("enqueue-to-dequeue p99 (other producer)", [p for _, p in far], "ms", "{:.1f}")
    return results


def render(results: Results, args: argparse.Namespace, version: str) -> str:
    lines = [
        "# MySQL / MariaDB driver benchmark",
        "",
        f"`.venv/bin/python -m scripts.bench.bench_mysql --tasks {args.tasks} "
        f"--concurrency {args.concurrency} --repeats {args.repeats}`  ",
        f"Python {platform.python_version()}, aiomysql {aiomysql.__version__}, server "
        f"{version} on 127.0.0.1, {os.cpu_count()} cores shared with the server (and with "
        f"other work running at the same time), {time.strftime('%Y-%m-%d')}. "
        f"Medians of {args.repeats}; every run listed.",
        "",
        "| measure | median | runs |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {value} | {spread} |" for name, value, spread in results.rows]
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


NOTES = [
    "What the rows measure:",
    "",
    "- *enqueue*: `driver.enqueue` (one INSERT, autocommit) and `driver.enqueue_many` (one",
    "  multi-row INSERT per batch). With the server's durable default",
    "  `innodb_flush_log_at_trx_commit=1` every commit waits for the disk, so single enqueues",
    "  measure the commit latency of this machine's disk more than the driver.",
    "- *raw aiomysql loop*: a hand-written consumer (10 coroutines, one message per",
    "  `BEGIN; SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED; UPDATE; COMMIT`, then `DELETE`),",
    "  the floor a naive SKIP LOCKED queue reaches on the same server in the same run.",
    "- *driver alone*: `dequeue(limit=10)` / no-op / `ack(batch)` in one loop: the driver's",
    "  batches (two round-trips and one commit per dequeue, one DELETE per ack batch).",
    "- *core Worker*: `asynctasq.worker.Worker(concurrency=10, burst=True)` draining 20,000",
    "  encoded no-op tasks (decode, run, batched acks, lease keeper).",
    "- *dispatch-to-start (same process)*: an idle worker sharing the driver instance; the",
    "  enqueue wakes it at once (INSERT commit + dequeue commit + the task starting).",
    "- *enqueue-to-dequeue (other producer)*: the producer is another driver instance (as in",
    "  another process). MySQL has no LISTEN/NOTIFY, so an idle consumer learns of new work",
    "  by polling: backoff from 10 ms doubling to `poll_interval_max` (1 s); both numbers are",
    "  set by that backoff, not by the database.",
]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print (and with ``--write``, save) the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--write", action="store_true", help=f"save the table to {REPORT}")
    args = parser.parse_args(argv)
    results = asyncio.run(run_all(args))
    table = render(results, args, asyncio.run(server_version(args.dsn)))
    print()
    print(table)
    if args.write:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(table)


if __name__ == "__main__":
    main()
