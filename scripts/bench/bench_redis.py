"""Redis driver benchmark: enqueue, worker drain, dispatch-to-start latency, each against a
raw redis-py loop doing the minimal equivalent work in the same run.

Run: ``.venv/bin/python -m scripts.bench.bench_redis [--write] [--repeats N]`` from the
repository root; Redis from ``ASYNCTASQ_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/13``).

* enqueue, one by one: ``RedisDriver.enqueue`` vs raw ``LPUSH`` of the same payload;
* enqueue, batched: ``RedisDriver.enqueue_many`` (1,000 per call);
* drain: 20,000 pre-queued no-op tasks run by one worker process (core's ``Worker``,
  concurrency 10, uvloop), timed from its first dequeue to an empty queue, vs a raw loop
  (``BLMOVE`` to a processing list, run, ``LREM``) over 20,000 pre-pushed payloads;
* latency: dispatch-to-start of a task with an idle worker process vs ``LPUSH`` to a raw
  consumer process blocked in ``BLMOVE``.

Every scenario runs 3 times, ours and raw interleaved; the table shows medians. Keys live
under a prefix of the run's own (``asynctasq-bench-<pid>``), deleted before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
import uvloop
from redis.asyncio import Redis

from asynctasq import dispatch_many, task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import OutgoingMessage
from asynctasq_redis import RedisDriver

URL = os.environ.get("ASYNCTASQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# Per run (two runs at once must not share keys); set in the environment so the worker
# processes this module starts find the same prefix.
PREFIX = os.environ.setdefault("ASYNCTASQ_BENCH_REDIS_PREFIX", f"asynctasq-bench-{os.getpid()}")
ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "benchmarks" / "redis.md"
REPEATS = 3
ENQUEUE_N = 5_000
BATCH_N = 20_000
DRAIN_N = 20_000
LATENCY_N = 200
WORKER_NAME, RAW_NAME = "asynctasq-bench-worker", "asynctasq-bench-raw"
LOAD_AT_START: list[float] = [0.0, 0.0, 0.0]

driver = RedisDriver(url=URL, prefix=PREFIX)
_probe_results: Redis | None = None


@task(driver=driver, queue="bench-drain", visibility_timeout=60)
async def noop() -> None:
    """Does nothing: the drain measures the queue and the worker, not the task."""


@task(driver=driver, queue="bench-drain", visibility_timeout=60, track=True)
async def noop_tracked() -> None:
    """`noop` with a status record (queued, running, succeeded)."""


@task(driver=driver, queue="bench-latency", visibility_timeout=60)
async def probe(sent: float, key: str) -> None:
    """Reports how long after `sent` (``time.monotonic``, system-wide) it started."""
    started = time.monotonic()
    global _probe_results
    if _probe_results is None:
        _probe_results = Redis.from_url(URL)
    await _probe_results.rpush(key, started - sent)


# -- child processes ------------------------------------------------------------------------


def run_worker(queue: str, events: bool = False, observe: str = "off") -> None:
    """The worker process: core's Worker on a RedisDriver, concurrency 10, uvloop.

    `observe`: ``metrics`` adds the Prometheus middleware and serves it (nothing scrapes);
    ``log-tasks`` logs a line per task start and end (plain text, to /dev/null). Logging is
    set up at INFO the same way for every variant.
    """
    import logging

    from asynctasq.config import Config, WorkerSettings
    from asynctasq.middleware import Middleware
    from asynctasq.worker import Worker

    sink = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)
    logging.basicConfig(
        level=logging.INFO, stream=sink, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    middleware: list[Middleware] = []
    if observe == "metrics":
        from asynctasq_prometheus import MetricsServer, PrometheusMiddleware

        prometheus = PrometheusMiddleware()
        assert prometheus.registry is not None
        MetricsServer("127.0.0.1", 0, prometheus.registry, lambda: None, lambda: None)
        middleware.append(prometheus)
    worker = Worker(
        driver=RedisDriver(url=URL, prefix=PREFIX, client_name=WORKER_NAME),
        queues=[queue],
        concurrency=10,
        allowed_roots=[str(ROOT)],
        events=events,
        middleware=middleware,
        config=Config(worker=WorkerSettings(log_tasks=observe == "log-tasks")),
    )
    uvloop.run(worker.run())


async def raw_consumer(source: str, results: str) -> None:
    """The raw latency consumer: BLMOVE, report, LREM; until SIGTERM."""
    r = Redis.from_url(URL, client_name=RAW_NAME)
    processing = source + ":processing"
    while True:
        item = await r.blmove(source, processing, 5, "RIGHT", "LEFT")
        if item is None:
            continue
        started = time.monotonic()
        await r.rpush(results, started - float(item))
        await r.lrem(processing, 1, item)  # type: ignore[arg-type]  # bytes work


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.bench.bench_redis", *args],
        cwd=ROOT,
        env={**os.environ, "ASYNCTASQ_BENCH_REDIS_URL": URL},
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- scenarios ------------------------------------------------------------------------------


async def clean(r: Redis) -> None:
    keys = [k async for k in r.scan_iter(match=f"*{PREFIX}*", count=1000)]
    for i in range(0, len(keys), 1000):
        await r.delete(*keys[i : i + 1000])


def payload() -> bytes:
    return prepare(noop()).payload  # a real envelope, as dispatch() would send it


async def enqueue_one_by_one(r: Redis) -> tuple[float, float]:
    """Ours and raw alternate in chunks of 250, so load drifts hit both alike."""
    body = payload()
    messages = [OutgoingMessage(str(uuid.uuid4()), "bench-enqueue", body) for _ in range(ENQUEUE_N)]
    raw_key = f"{PREFIX}:raw-enqueue"
    ours = raw = 0.0
    for start in range(0, ENQUEUE_N, 250):
        t0 = time.perf_counter()
        for m in messages[start : start + 250]:
            await driver.enqueue(m)
        t1 = time.perf_counter()
        for _ in range(250):
            await r.lpush(raw_key, body)
        t2 = time.perf_counter()
        ours, raw = ours + t1 - t0, raw + t2 - t1
    await clean(r)
    return ENQUEUE_N / ours, ENQUEUE_N / raw


async def enqueue_batched(r: Redis) -> tuple[float, float]:
    body = payload()
    messages = [OutgoingMessage(str(uuid.uuid4()), "bench-enqueue", body) for _ in range(BATCH_N)]
    started = time.perf_counter()
    for i in range(0, BATCH_N, 1000):
        await driver.enqueue_many(messages[i : i + 1000])
    ours = BATCH_N / (time.perf_counter() - started)
    await clean(r)
    started = time.perf_counter()
    for _ in range(BATCH_N // 1000):
        await dispatch_many([noop() for _ in range(1000)])
    dispatched = BATCH_N / (time.perf_counter() - started)
    await clean(r)
    return ours, dispatched


async def drain_worker(
    r: Redis, *, tracked: bool = False, events: bool = False, observe: str = "off"
) -> float:
    make = noop_tracked if tracked else noop
    for _ in range(DRAIN_N // 1000):
        await dispatch_many([make() for _ in range(1000)])
    [stats] = await driver.stats(["bench-drain"])
    assert stats.ready == DRAIN_N, stats
    worker = spawn(
        "--worker", "bench-drain", *(["--events"] if events else []), "--observe", observe
    )
    try:
        # polling the counts is the measurement here (10 ms resolution)
        while (await driver.stats(["bench-drain"]))[0].ready == DRAIN_N:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while True:
            [stats] = await driver.stats(["bench-drain"])
            if stats.ready + stats.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        stop(worker)
    await clean(r)
    return DRAIN_N / elapsed


async def drain_raw(r: Redis) -> float:
    source, processing = f"{PREFIX}:raw-drain", f"{PREFIX}:raw-drain:processing"
    body = payload()
    pipe = r.pipeline(transaction=False)
    for _ in range(DRAIN_N):
        pipe.lpush(source, body)
    await pipe.execute()
    started = time.perf_counter()
    for _ in range(DRAIN_N):
        item = await r.blmove(source, processing, 1, "RIGHT", "LEFT")
        # the no-op "run"
        await r.lrem(processing, 1, item)  # type: ignore[arg-type]  # bytes work
    elapsed = time.perf_counter() - started
    await clean(r)
    return DRAIN_N / elapsed


async def latency(r: Redis) -> tuple[list[float], list[float]]:
    """Dispatch-to-start with an idle worker process vs LPUSH-to-BLMOVE with an idle raw
    consumer process; both consumers run at once and the samples alternate."""
    ours_results, raw_results = f"{PREFIX}:latency-results", f"{PREFIX}:raw-latency-results"
    source = f"{PREFIX}:raw-latency"
    worker = spawn("--worker", "bench-latency")
    consumer = spawn("--raw-consumer", source, raw_results)
    ours: list[float] = []
    raw: list[float] = []
    try:
        await wait_idle(r, WORKER_NAME)
        await wait_idle(r, RAW_NAME)
        for i in range(LATENCY_N + 20):
            await probe(time.monotonic(), ours_results).dispatch()
            ours_reply = await r.blpop([ours_results], 10)
            await asyncio.sleep(0.005)  # idle again before the next sample
            await r.lpush(source, repr(time.monotonic()))
            raw_reply = await r.blpop([raw_results], 10)
            await asyncio.sleep(0.005)
            assert ours_reply is not None and raw_reply is not None, "no start within 10 s"
            if i >= 20:  # warm-up excluded
                ours.append(float(ours_reply[1]))
                raw.append(float(raw_reply[1]))
    finally:
        stop(worker)
        stop(consumer)
        await clean(r)
    return ours, raw


async def wait_idle(r: Redis, name: str) -> None:
    """Wait until the child process's connection named `name` blocks (start-up is over)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        clients = await r.client_list()
        if any(c.get("name") == name and c.get("cmd") in ("blpop", "blmove") for c in clients):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the child process never started waiting")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- report ---------------------------------------------------------------------------------


async def bench(only: set[str]) -> dict[str, tuple[float, float, float]]:
    r = Redis.from_url(URL)
    await clean(r)
    runs: dict[str, list[tuple[float, float]]] = {}
    try:
        for rep in range(REPEATS):
            print(f"run {rep + 1}/{REPEATS}", flush=True)
            if "enqueue" in only:
                runs.setdefault("enqueue", []).append(await enqueue_one_by_one(r))
                runs.setdefault("batch", []).append(await enqueue_batched(r))
            if "drain" in only:  # alternate which goes first
                if rep % 2:
                    ours = await drain_worker(r)
                    raw = await drain_raw(r)
                else:
                    raw = await drain_raw(r)
                    ours = await drain_worker(r)
                runs.setdefault("drain", []).append((ours, raw))
            if "lifecycle" in only:  # tracking on, events on, both off: order rotates
                order = ["off", "tracked", "events"]
                order = order[rep % 3 :] + order[: rep % 3]
                got: dict[str, float] = {}
                for kind in order:
                    got[kind] = await drain_worker(
                        r, tracked=kind == "tracked", events=kind == "events"
                    )
                runs.setdefault("tracked", []).append((got["tracked"], got["off"]))
                runs.setdefault("events", []).append((got["events"], got["off"]))
            if "observability" in only:  # metrics on, task log on, both off: order rotates
                order = ["off", "metrics", "log-tasks"]
                order = order[rep % 3 :] + order[: rep % 3]
                seen: dict[str, float] = {}
                for kind in order:
                    seen[kind] = await drain_worker(r, observe=kind)
                runs.setdefault("metrics", []).append((seen["metrics"], seen["off"]))
                runs.setdefault("log-tasks", []).append((seen["log-tasks"], seen["off"]))
            if "latency" in only:
                lat_ours, lat_raw = await latency(r)
                runs.setdefault("p50", []).append((pct(lat_ours, 0.5), pct(lat_raw, 0.5)))
                runs.setdefault("p99", []).append((pct(lat_ours, 0.99), pct(lat_raw, 0.99)))
            for name, values in runs.items():
                print(f"  {name}: ours {values[-1][0]:.6g} raw/other {values[-1][1]:.6g}")
    finally:
        await clean(r)
        await r.aclose()
        await driver.close()
    return {
        name: (
            statistics.median(v[0] for v in values),
            statistics.median(v[1] for v in values),
            statistics.median(v[0] / v[1] for v in values),
        )
        for name, values in runs.items()
    }


def table(m: dict[str, tuple[float, float, float]]) -> str:
    enqueue, batch, drain = m["enqueue"], m["batch"], m["drain"]
    p50, p99 = m["p50"], m["p99"]
    rows = [
        ("enqueue, one by one (tasks/s)", f"{enqueue[0]:,.0f}", f"{enqueue[1]:,.0f} (LPUSH)",
         f"{enqueue[2]:.2f}x", ">= 0.9x"),
        ("enqueue, batched `enqueue_many` x1000 (tasks/s)", f"{batch[0]:,.0f}", "-", "-",
         ">= 50,000/s"),
        ("`dispatch_many` x1000 incl. encoding (tasks/s)", f"{batch[1]:,.0f}", "-", "-", "-"),
        ("drain 20,000 no-op tasks, 1 worker, c=10 (tasks/s)", f"{drain[0]:,.0f}",
         f"{drain[1]:,.0f} (BLMOVE+LREM)", f"{drain[2]:.2f}x", ">= 1.0x"),
        ("dispatch-to-start latency p50 (ms)", f"{p50[0] * 1000:.2f}", f"{p50[1] * 1000:.2f}",
         f"{p50[2]:.2f}x", "<= 2x"),
        ("dispatch-to-start latency p99 (ms)", f"{p99[0] * 1000:.2f}", f"{p99[1] * 1000:.2f}",
         f"{p99[2]:.2f}x", "-"),
    ]  # fmt: skip
    lines = [
        "| scenario | asynctasq-redis | raw redis-py | ratio | target |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    return "\n".join(lines)


def write_report(text: str) -> None:
    from redis.utils import HIREDIS_AVAILABLE

    parser = "hiredis" if HIREDIS_AVAILABLE else "pure-Python parser (no hiredis)"
    with redis.Redis.from_url(URL) as r:
        server = r.info("server")["redis_version"]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        f"""# Redis driver benchmark

Command: `.venv/bin/python -m scripts.bench.bench_redis --write` (from the repository root,
with Redis at `{URL}`). Medians of {REPEATS} runs; a ratio is the median of the per-run
ratios (ours and raw run side by side within each run).

Machine: {os.cpu_count()} cores ({platform.machine()}), shared with other work while this ran
(load average {LOAD_AT_START[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), so
absolute numbers are noisy; the ratios compare runs made side by side. Python
{platform.python_version()}, uvloop, redis-py {redis.__version__} ({parser}), Redis {server}
on loopback.

{text}

What each row does:

* **enqueue, one by one**: `await driver.enqueue(message)` {ENQUEUE_N:,} times (one RPUSH of
  the message entry each; a blocked consumer is woken by Redis itself) vs `await
  r.lpush(key, payload)`, alternating in chunks of 250. The payload is a real task envelope.
* **enqueue, batched**: `enqueue_many` with 1,000 messages per call ({BATCH_N:,} in all): one
  RPUSH per 1,000 messages. `dispatch_many` adds core's envelope encoding.
* **drain**: {DRAIN_N:,} no-op tasks queued before one worker process starts (`Worker(
  driver=RedisDriver(...), queues=[...], concurrency=10)` under uvloop); timed from its first
  dequeue until the queue is empty (every task leased, run and acknowledged). Raw: one
  coroutine doing `BLMOVE source processing` / no-op / `LREM processing` per task.
* **latency**: with the consumer idle (blocked), time from just before `probe(...).dispatch()`
  until the task starts in the worker process ({LATENCY_N} samples after 20 warm-ups), vs
  `LPUSH` to a raw consumer process blocked in `BLMOVE`; both consumers run at once and the
  samples alternate. Both sides use `time.monotonic()`, which is system-wide on Linux.

Where the time goes on the latency path (measured separately on a quiet machine, against
the raw consumer's ~0.2 ms): core's `prepare()` (id, options, envelope encoding) takes
~6 us; the driver's wake-up path (BLMOVE plus the dequeue script that leases the task, in
one write) added ~75 us over a bare BLMOVE with redis-py's pipeline object and ~40 us less
with the leaner two-command send it uses now, ~25 us of it the script's server time;
the worker takes ~40 us from the dequeue returning to the task starting (decode the
envelope, find the task, track its lease, start it).
"""
    )
    print(f"wrote {REPORT.relative_to(ROOT)}")


def main() -> None:
    """Run the benchmark (or, with ``--worker`` / ``--raw-consumer``, a child process)."""
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--only", default="enqueue,drain,latency", help="comma-separated")
    parser.add_argument("--write", action="store_true", help=f"write {REPORT.name}")
    parser.add_argument("--worker", metavar="QUEUE", help=argparse.SUPPRESS)
    parser.add_argument("--events", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--observe", default="off", help=argparse.SUPPRESS)
    parser.add_argument("--raw-consumer", nargs=2, metavar=("SOURCE", "RESULTS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    REPEATS = args.repeats
    if args.worker:
        run_worker(args.worker, events=args.events, observe=args.observe)
        return
    if args.raw_consumer:
        uvloop.run(raw_consumer(*args.raw_consumer))
        return
    LOAD_AT_START[:] = os.getloadavg()
    only = set(args.only.split(","))
    medians = uvloop.run(bench(only))
    for name, (ours, other, ratio) in medians.items():
        print(f"{name}: ours {ours:.6g}, raw/other {other:.6g}, median ratio {ratio:.2f}")
    if only != {"enqueue", "drain", "latency"}:
        return
    text = table(medians)
    print(text)
    if args.write:
        write_report(text)


if __name__ == "__main__":
    main()
