"""SQLite driver benchmark: enqueue (single and batched), drain with core's worker, latency.

Run: ``.venv/bin/python -m scripts.bench.bench_sqlite [--tasks 20000] [--write]``

Every scenario uses a fresh database file in a temporary directory and is repeated; the
table shows medians and every run. Rows, from the floor up:

* "raw sqlite3 loop": the same transactions the driver runs (lease 10, ack 10), called
  directly in one thread with no asyncio: what the file itself allows.
* "driver alone": a minimal asyncio consumer on `SqliteDriver` (dequeue up to 10, run 10
  no-ops, ack them in one call): the driver's cost including its thread hops.
* "core Worker": `asynctasq.worker.Worker(concurrency=10, burst=True)` draining no-op
  ``@task`` functions, as a user would run it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench import _common as common

from asynctasq import dispatch_many, init, task
from asynctasq.config import reset_config
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.drivers.connections import close_drivers
from asynctasq.worker import Worker
from asynctasq_sqlite import SqliteDriver
from asynctasq_sqlite import _operations as ops

QUEUE = "bench"
ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "benchmarks" / "sqlite.md"
IDLE_GAP = 0.1
"""Seconds between cross-process latency samples: long enough for a polling worker's backoff
to reach `poll_interval` (5 + 10 + 20 + 40 ms), so every sample meets an idle worker."""


_started: dict[str, asyncio.Future[float]] = {}
_cpu_per_task: dict[str, list[float]] = {}  # scenario -> CPU microseconds per task, per run


@task(queue=QUEUE, max_attempts=1)
async def bench_noop(mark: str | None = None) -> None:
    """The no-op task; with a mark, says when it started (latency runs)."""
    if mark is not None and mark in _started:
        _started.pop(mark).set_result(time.perf_counter())


@task(queue=QUEUE, max_attempts=1)
async def bench_probe(sent: float, out: str) -> None:
    """Appends how long after `sent` (``time.monotonic``, system-wide) it started to `out`."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.monotonic() - sent}\n".encode())
    finally:
        os.close(fd)


# -- helpers --------------------------------------------------------------------------------


_workdir: list[str] = []  # the run's temporary directory, removed when it ends


def fresh_path() -> str:
    """A new database file in the run's temporary directory."""
    if not _workdir:
        _workdir.append(tempfile.mkdtemp(prefix="asynctasq-bench-"))
    return tempfile.mkdtemp(dir=_workdir[0]) + "/bench.db"


def configure(path: str) -> None:
    """Point `dispatch` at a new file (a new config version gets a new driver)."""
    init({"driver": "sqlite", "sqlite": {"path": path}})


def noop_messages(n: int) -> list[OutgoingMessage]:
    """Encoded no-op tasks, exactly what `dispatch` would send."""
    return [prepare(bench_noop()) for _ in range(n)]


async def fill(path: str, messages: list[OutgoingMessage]) -> None:
    driver = SqliteDriver(path=path)
    for start in range(0, len(messages), 1000):
        await driver.enqueue_many(messages[start : start + 1000])
    await driver.close()


# -- enqueue --------------------------------------------------------------------------------


async def dispatch_single(n: int) -> float:
    """Tasks per second, ``await bench_noop().dispatch()`` one after another."""
    configure(fresh_path())
    await bench_noop().dispatch()  # connect outside the timing
    started = time.perf_counter()
    for _ in range(n):
        await bench_noop().dispatch()
    elapsed = time.perf_counter() - started
    await close_drivers()
    return n / elapsed


async def dispatch_batched(n: int, batch: int) -> float:
    """Tasks per second with `dispatch_many` batches."""
    configure(fresh_path())
    await bench_noop().dispatch()
    started = time.perf_counter()
    for _ in range(0, n, batch):
        await dispatch_many(bench_noop() for _ in range(batch))
    elapsed = time.perf_counter() - started
    await close_drivers()
    return n / elapsed


async def enqueue_driver(n: int, batch: int) -> float:
    """Messages per second on the driver alone (payloads encoded beforehand)."""
    driver = SqliteDriver(path=fresh_path())
    await driver.connect()
    messages = noop_messages(n)
    started = time.perf_counter()
    if batch == 1:
        for message in messages:
            await driver.enqueue(message)
    else:
        for start in range(0, n, batch):
            await driver.enqueue_many(messages[start : start + batch])
    elapsed = time.perf_counter() - started
    await driver.close()
    return n / elapsed


# -- drains ---------------------------------------------------------------------------------


async def drain_raw(n: int, concurrency: int) -> float:
    """Tasks per second for the driver's own SQL called directly in one thread."""
    path = fresh_path()
    await fill(path, noop_messages(n))

    def run() -> float:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous = normal")
        done = 0
        started = time.perf_counter()
        while done < n:
            taken = ops.take(conn, [QUEUE], concurrency).deliveries
            ops.ack(conn, [d.receipt for d in taken])
            done += len(taken)
        elapsed = time.perf_counter() - started
        conn.close()
        return n / elapsed

    return await asyncio.to_thread(run)


async def drain_driver(n: int, concurrency: int) -> float:
    """Tasks per second for a minimal consumer on the driver alone."""
    path = fresh_path()
    await fill(path, noop_messages(n))
    driver = SqliteDriver(path=path)
    await driver.connect()
    done = 0
    cpu, started = time.process_time(), time.perf_counter()
    while done < n:
        got = await driver.dequeue([QUEUE], limit=concurrency, wait=1.0)
        await asyncio.gather(*(asyncio.sleep(0) for _ in got))
        await driver.ack(got)
        done += len(got)
    elapsed = time.perf_counter() - started
    _cpu_per_task.setdefault("driver", []).append((time.process_time() - cpu) / n * 1e6)
    await driver.close()
    return n / elapsed


async def drain_worker(n: int, concurrency: int) -> float:
    """Tasks per second for core's `Worker` (burst mode) draining `n` no-op tasks."""
    path = fresh_path()
    await fill(path, noop_messages(n))
    driver = SqliteDriver(path=path)
    worker = Worker(
        driver=driver,
        queues=[QUEUE],
        concurrency=concurrency,
        burst=True,
        install_signal_handlers=False,
    )
    cpu, started = time.process_time(), time.perf_counter()
    await worker.run()
    elapsed = time.perf_counter() - started
    _cpu_per_task.setdefault("worker", []).append((time.process_time() - cpu) / n * 1e6)
    await driver.close()
    if worker.stats.succeeded != n:
        raise RuntimeError(f"worker ran {worker.stats.succeeded} of {n} tasks")
    return n / elapsed


async def latency(samples: int, concurrency: int) -> tuple[float, float]:
    """Dispatch-to-start latency (p50, p99 in ms) to an idle worker in the same process."""
    path = fresh_path()
    configure(path)
    worker = Worker(
        driver=SqliteDriver(path=path),
        queues=[QUEUE],
        concurrency=concurrency,
        install_signal_handlers=False,
    )
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)
    delays = []
    loop = asyncio.get_running_loop()
    for i in range(samples):
        mark = f"m{i}"
        started = _started[mark] = loop.create_future()
        sent = time.perf_counter()
        await bench_noop(mark).dispatch()
        delays.append((await started - sent) * 1000)
        await asyncio.sleep(0.01)  # idle again before the next one
    worker.request_stop()
    await running
    await close_drivers()
    return common.percentile(delays, 0.5), common.percentile(delays, 0.99)


async def latency_across(samples: int, polling: bool) -> tuple[float, float]:
    """Dispatch-to-start latency (p50, p99 in ms) to an idle worker in another process.

    With `polling`, the worker process runs with the wake-up bell switched off: it only
    polls (what every cross-process dispatch got before the bell).
    """
    path = fresh_path()
    configure(path)
    out = Path(path).with_suffix(".latency")
    command = [sys.executable, "-m", "scripts.bench.bench_sqlite", "--latency-worker", path]
    child = await asyncio.create_subprocess_exec(
        *command, *(["--polling"] if polling else []), cwd=ROOT
    )
    try:
        warm_up = 10
        for i in range(samples + warm_up):
            await bench_probe(time.monotonic(), str(out)).dispatch()
            within = 60 if i == 0 else 10
            await common.wait_for_lines(out, i + 1, within, lambda: child.returncode is None)
            await asyncio.sleep(IDLE_GAP)
    finally:
        child.terminate()
        await child.wait()
        await close_drivers()
    delays = [float(line) * 1000 for line in out.read_text().split()][warm_up:]
    return common.percentile(delays, 0.5), common.percentile(delays, 0.99)


def run_latency_worker(path: str, polling: bool) -> None:
    """The worker process of `latency_across` (stopped with SIGTERM)."""
    if polling:
        _bell_off()
    worker = Worker(
        driver=SqliteDriver(path=path), queues=[QUEUE], concurrency=10, allowed_roots=[str(ROOT)]
    )
    asyncio.run(worker.run())


def _bell_off() -> None:
    """Switch the cross-process wake-up off in this process (polling only)."""
    try:
        from asynctasq_sqlite import _bell
    except ImportError:  # a driver from before the bell: it only polls anyway
        return
    _bell.AVAILABLE = False


# -- runner ---------------------------------------------------------------------------------


Results = common.Results


async def run_all(args: argparse.Namespace) -> Results:
    results = Results()
    print(
        f"SQLite benchmark: {args.tasks} tasks, concurrency {args.concurrency}, "
        f"median of {args.repeats}",
        flush=True,
    )
    if not args.latency_only:
        await _throughput(results, args)
    await _latency_rows(results, args)
    return results


async def _throughput(results: Results, args: argparse.Namespace) -> None:
    n, c, r = args.tasks, args.concurrency, args.repeats
    results.add(
        "dispatch(), one per call", await common.repeat(r, lambda: dispatch_single(n)), "tasks/s"
    )
    results.add(
        "dispatch_many(), batches of 500",
        await common.repeat(r, lambda: dispatch_batched(n, 500)),
        "tasks/s",
    )
    results.add(
        "driver enqueue, one per call",
        await common.repeat(r, lambda: enqueue_driver(n, 1)),
        "msg/s",
    )
    results.add(
        "driver enqueue_many, batches of 500",
        await common.repeat(r, lambda: enqueue_driver(n, 500)),
        "msg/s",
    )
    results.add(
        f"drain {n}: raw sqlite3 loop (same SQL, no asyncio)",
        await common.repeat(r, lambda: drain_raw(n, c)),
        "tasks/s",
    )
    results.add(
        f"drain {n}: driver alone (dequeue 10 / ack 10)",
        await common.repeat(r, lambda: drain_driver(n, c)),
        "tasks/s",
    )
    worker = results.add(
        f"drain {n}: core Worker + SqliteDriver, concurrency {c}",
        await common.repeat(r, lambda: drain_worker(n, c)),
        "tasks/s",
    )
    results.rows.append(("worker drain vs target", f"{worker / 3000:.2f}x", "target >= 3,000/s"))
    results.add("CPU per task, driver alone (both threads)", _cpu_per_task["driver"], "µs")
    results.add("CPU per task, core Worker (both threads)", _cpu_per_task["worker"], "µs")


async def _latency_rows(results: Results, args: argparse.Namespace) -> None:
    r, c = args.repeats, args.concurrency
    lat = [await latency(args.latency_samples, c) for _ in range(r)]
    results.add(
        "dispatch-to-start latency p50 (same process)", [p50 for p50, _ in lat], "ms", "{:.2f}"
    )
    results.add(
        "dispatch-to-start latency p99 (same process)", [p99 for _, p99 in lat], "ms", "{:.2f}"
    )
    for polling, label in ((True, "polling only, bell off"), (False, "bell")):
        across = [await latency_across(args.latency_samples, polling) for _ in range(r)]
        results.add(
            f"dispatch-to-start latency p50 (other process, {label})",
            [p50 for p50, _ in across],
            "ms",
            "{:.2f}",
        )
        results.add(
            f"dispatch-to-start latency p99 (other process, {label})",
            [p99 for _, p99 in across],
            "ms",
            "{:.2f}",
        )


def render(results: Results, args: argparse.Namespace, load: tuple[float, float]) -> str:
    lines = [
        "# SQLite driver benchmark",
        "",
        f"`.venv/bin/python -m scripts.bench.bench_sqlite --tasks {args.tasks} "
        f"--concurrency {args.concurrency} --repeats {args.repeats}`  ",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores shared with other work (1-minute load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end), local ext4 file, "
        f"WAL + synchronous=NORMAL, {time.strftime('%Y-%m-%d')}. "
        f"Medians of {args.repeats}; every run listed.",
        "",
        "| measure | median | runs |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {value} | {spread} |" for name, value, spread in results.rows]
    lines += [
        "",
        "How to read it:",
        "",
        "* *raw sqlite3 loop* runs the driver's own SQL (lease 10, ack 10) in one thread with "
        "no asyncio: the ceiling the file allows.",
        "* *driver alone* adds the event loop and the driver's connection thread (one hop per "
        "call; calls queued together are answered together and group-committed).",
        "* *core Worker* is what a user runs: `Worker(driver=SqliteDriver(...), "
        "concurrency=10, burst=True)` on no-op `@task` functions (decode, resolve, run, ack).",
        "* *CPU per task* is process CPU time (both threads) divided by tasks: unlike "
        "tasks/s it hardly depends on how busy the host is.",
        "* Latency (same process) is from `dispatch()` returning to the task starting, with the "
        "worker idle in the same process (woken by the in-process wake-up).",
        "* Latency (other process) is from just before `dispatch()` until the task starts in a "
        "worker process (`time.monotonic()`, system-wide), 200 samples 100 ms apart so the "
        "worker is idle each time; *bell off* switches the cross-process wake-up off in the "
        "worker, which then polls with a backoff from 5 ms to `poll_interval` (50 ms).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print (and with ``--write``, save) the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--latency-only", action="store_true", help="only the latency rows")
    parser.add_argument("--write", action="store_true", help=f"save the table to {REPORT}")
    parser.add_argument("--latency-worker", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--polling", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.latency_worker:
        run_latency_worker(args.latency_worker, args.polling)
        return
    load_before = os.getloadavg()[0]
    try:
        results = asyncio.run(run_all(args))
    finally:
        reset_config()
        if _workdir:
            shutil.rmtree(_workdir.pop(), ignore_errors=True)
    table = render(results, args, (load_before, os.getloadavg()[0]))
    print()
    print(table)
    if args.write:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        # hand-written analysis below the table survives a re-run
        REPORT.write_text(table + common.kept_notes(REPORT))


if __name__ == "__main__":
    main()
