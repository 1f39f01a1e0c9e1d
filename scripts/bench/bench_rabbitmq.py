"""RabbitMQ benchmark: AsyncTasQ vs Dramatiq vs Celery on the same broker, in the same run.

Run: ``.venv/bin/python -m scripts.bench.bench_rabbitmq [--write] [--repeats N]`` from the
repository root; the broker from ``ASYNCTASQ_BENCH_RABBITMQ_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/``).

Dramatiq and Celery run from the peers' pinned venvs under ``.bench/peers/`` (gitignored,
built on first use by ``scripts.bench.peers.venvs``), so they never enter the project's
dependencies; their task modules are written
there by this script. Every framework gets the same settings where they differ by default:
durable queues, persistent messages, publisher confirms, acks after the task ran, one worker
process running 10 tasks at once.

* enqueue: 5,000 no-op tasks dispatched one call at a time (``noop().dispatch()`` /
  ``noop.send()`` / ``noop.delay()``), plus AsyncTasQ's ``dispatch_many`` (1,000 per call);
* drain: 20,000 no-op tasks queued before one worker process starts; timed from the first
  delivery until the queue holds no ready message;
* latency: with every framework's worker idle and subscribed at once, from just before
  dispatch until the task starts in the worker process (``time.monotonic()``, system-wide on
  Linux), 200 samples after 20 warm-ups; the frameworks take turns probe by probe (the order
  rotating each round), so they share whatever the host does meanwhile.

Each scenario runs ``--repeats`` times (default 3), frameworks interleaved; the table shows
medians. Queues and exchanges are deleted before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import uvloop
from aiormq.abc import AbstractChannel
from scripts.bench import _common as common
from scripts.bench.peers.contenders import PEER_PACKAGES
from scripts.bench.peers.venvs import ensure_venv as peer_venv

from asynctasq import TaskFunction, dispatch_many, task
from asynctasq_rabbitmq import RabbitMQDriver

URL = os.environ.get("ASYNCTASQ_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"
REPORT = ROOT / "docs" / "benchmarks" / "rabbitmq.md"
EXCHANGE, PREFIX = "asynctasq-bench", "asynctasq-bench."
REPEATS = 3
ENQUEUE_N = 2_000
BATCH_N = 20_000
DRAIN_N = 20_000
LATENCY_N = 200
WARM_UP = 20
CONCURRENCY = 10
FRAMEWORKS = ("asynctasq", "asynctasq-before", "dramatiq", "celery")
PACKAGES = ("dramatiq", "celery")


@dataclass(frozen=True)
class Variant:
    """An AsyncTasQ configuration under test (None: the driver's default), its namespace."""

    queue_type: str | None
    prefetch: int | None
    exchange: str
    prefix: str

    def driver(self) -> RabbitMQDriver:
        settings: dict[str, Any] = {}
        if self.queue_type is not None:
            settings["queue_type"] = self.queue_type
        if self.prefetch is not None:
            settings["prefetch_count"] = self.prefetch
        return RabbitMQDriver(
            url=URL, exchange_name=self.exchange, queue_prefix=self.prefix, **settings
        )


QUORUM_EXCHANGE, QUORUM_PREFIX = "asynctasq-bench-quorum", "asynctasq-bench-quorum."
OURS = {
    "asynctasq": Variant(None, None, EXCHANGE, PREFIX),
    # The defaults before this comparison: quorum queues, prefetch = the worker's concurrency.
    "asynctasq-before": Variant("quorum", CONCURRENCY, QUORUM_EXCHANGE, QUORUM_PREFIX),
}

driver = OURS["asynctasq"].driver()
quorum_driver = OURS["asynctasq-before"].driver()


@task(driver=driver, queue="drain", visibility_timeout=60)
async def noop() -> None:
    """Does nothing: the drain measures the queue and the worker, not the task."""


@task(driver=driver, queue="latency", visibility_timeout=60)
async def probe(sent: float, path: str) -> None:
    """Appends how long after `sent` (``time.monotonic``) it started to the file `path`."""
    _record(path, time.monotonic() - sent)


@task(driver=quorum_driver, queue="drain", visibility_timeout=60)
async def noop_quorum() -> None:
    """`noop` on quorum queues."""


@task(driver=quorum_driver, queue="latency", visibility_timeout=60)
async def probe_quorum(sent: float, path: str) -> None:
    """`probe` on quorum queues."""
    _record(path, time.monotonic() - sent)


def tasks_of(framework: str) -> tuple[TaskFunction[[], None], TaskFunction[[float, str], None]]:
    """The AsyncTasQ no-op and probe tasks of `framework` (by its namespace)."""
    if OURS[framework].prefix == QUORUM_PREFIX:
        return noop_quorum, probe_quorum
    return noop, probe


def _record(path: str, value: float) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{value}\n".encode())
    finally:
        os.close(fd)


# -- the other frameworks: modules written into .bench/ and run with their own venvs ---------

_COMMON = """
import json, os, sys, time

URL = os.environ["BENCH_AMQP_URL"]
DRAIN, LATENCY = os.environ["BENCH_DRAIN_QUEUE"], os.environ["BENCH_LATENCY_QUEUE"]


def record(path, value):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{value}\\n".encode())
    os.close(fd)


def lines(path):
    try:
        with open(path) as f:
            return f.read().count("\\n")
    except FileNotFoundError:
        return 0


def client(send_noop, send_probe):
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == "enqueue":
        started = time.perf_counter()
        for _ in range(n):
            send_noop()
        print(json.dumps({"rate": n / (time.perf_counter() - started)}))
    elif mode == "fill":
        for _ in range(n):
            send_noop()
    elif mode == "latency":
        # One probe per line read from stdin, answered "ok" once it started in the worker:
        # the benchmark takes turns between the frameworks, probe by probe.
        path, i = sys.argv[3], 0
        while sys.stdin.readline():
            send_probe(time.monotonic(), path)
            deadline = time.monotonic() + 10
            while lines(path) <= i:
                if time.monotonic() > deadline:
                    sys.exit("no start reported within 10 s")
                time.sleep(0.0005)
            i += 1
            print("ok", flush=True)
"""

_DRAMATIQ = (
    _COMMON
    + """
import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(url=URL, confirm_delivery=True)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=DRAIN, max_retries=0)
def noop():
    pass


@dramatiq.actor(queue_name=LATENCY, max_retries=0)
def probe(sent, path):
    record(path, time.monotonic() - sent)


if __name__ == "__main__":
    client(noop.send, probe.send)
    broker.close()
"""
)

_CELERY = (
    _COMMON
    + """
from celery import Celery

app = Celery("celery_bench", broker=URL)
app.conf.update(
    broker_transport_options={"confirm_publish": True},
    task_acks_late=True,
    task_ignore_result=True,
    worker_send_task_events=False,
    worker_enable_remote_control=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(queue=DRAIN)
def noop():
    pass


@app.task(queue=LATENCY)
def probe(sent, path):
    record(path, time.monotonic() - sent)


if __name__ == "__main__":
    client(noop.delay, lambda sent, path: probe.delay(sent, path))
"""
)


def queues_of(framework: str) -> tuple[str, str]:
    """Broker names of the drain and latency queues of `framework`."""
    if framework in OURS:
        prefix = OURS[framework].prefix
        return prefix + "drain", prefix + "latency"
    return f"{PREFIX}{framework}-drain", f"{PREFIX}{framework}-latency"


def ensure_venv(framework: str) -> Path:
    """The framework's venv python (the peers' pinned environment, built on first use)."""
    python = peer_venv(framework, PEER_PACKAGES[framework])
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "dramatiq_bench.py").write_text(_DRAMATIQ)
    (BENCH_DIR / "celery_bench.py").write_text(_CELERY)
    return python


def framework_env(framework: str) -> dict[str, str]:
    drain, latency = queues_of(framework)
    return {
        **os.environ,
        "BENCH_AMQP_URL": URL,
        "BENCH_DRAIN_QUEUE": drain,
        "BENCH_LATENCY_QUEUE": latency,
        "PYTHONPATH": str(BENCH_DIR),
    }


def run_client(framework: str, *args: str) -> str:
    """Run the framework's client module (``enqueue``/``fill``/``latency``); its stdout."""
    python = ensure_venv(framework)
    done = subprocess.run(
        [python, BENCH_DIR / f"{framework}_bench.py", *args],
        cwd=BENCH_DIR,
        env=framework_env(framework),
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def spawn_worker(framework: str, queue: str) -> subprocess.Popen[bytes]:
    """One worker process of `framework` consuming `queue`, 10 tasks at once."""
    if framework in OURS:
        command = [
            sys.executable, "-m", "scripts.bench.bench_rabbitmq", "--worker", queue,
            "--variant", framework,
        ]  # fmt: skip
        return subprocess.Popen(command, cwd=ROOT)
    python = ensure_venv(framework)
    bin_dir = python.parent
    if framework == "dramatiq":
        command = [
            str(bin_dir / "dramatiq"), "dramatiq_bench", "--processes", "1",
            "--threads", str(CONCURRENCY), "--queues", queue,
        ]  # fmt: skip
    else:
        command = [
            str(bin_dir / "celery"), "-A", "celery_bench", "worker", "--pool", "threads",
            "--concurrency", str(CONCURRENCY), "-Q", queue, "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
        ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=BENCH_DIR,
        env=framework_env(framework),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_worker(queue: str, variant: Variant) -> None:
    """The AsyncTasQ worker process: core's Worker on a RabbitMQDriver, uvloop."""
    from asynctasq.worker import Worker

    logical = queue.removeprefix(variant.prefix)
    worker = Worker(
        driver=variant.driver(),
        queues=[logical],
        concurrency=CONCURRENCY,
        allowed_roots=[str(ROOT)],
    )
    uvloop.run(worker.run())


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- broker probes ---------------------------------------------------------------------------


class Broker:
    """One plain AMQP channel for counting and cleaning queues."""

    def __init__(self, channel: AbstractChannel, connection: aiormq.abc.AbstractConnection):
        self.channel = channel
        self.connection = connection

    @classmethod
    async def open(cls) -> Broker:
        connection = await aiormq.connect(URL)
        return cls(await connection.channel(), connection)

    async def counts(self, queue: str) -> tuple[int, int]:
        """Ready messages and consumers of `queue` (0, 0 when it does not exist)."""
        try:
            declared = await self.channel.queue_declare(queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            self.channel = await self.connection.channel()
            return 0, 0
        return int(declared.message_count or 0), int(declared.consumer_count or 0)

    async def wait_for(
        self, queue: str, test: Callable[[int, int], bool], within: float = 120
    ) -> None:
        deadline = time.monotonic() + within
        while not test(*await self.counts(queue)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting on {queue}")
            await asyncio.sleep(0.005)

    async def clean(self) -> None:
        """Delete every queue and exchange a run may have left behind."""
        await driver.delete_topology()
        await quorum_driver.delete_topology()
        for framework in ("dramatiq", "celery"):
            for queue in queues_of(framework):
                for name in (queue, queue + ".DQ", queue + ".XQ"):
                    await self.channel.queue_delete(name)
                await self.channel.exchange_delete(queue)

    async def close(self) -> None:
        await self.connection.close()


# -- scenarios -------------------------------------------------------------------------------


async def enqueue(framework: str) -> float:
    if framework not in OURS:
        output = await asyncio.to_thread(run_client, framework, "enqueue", str(ENQUEUE_N))
        return float(json.loads(output)["rate"])
    task_function, _ = tasks_of(framework)
    started = time.perf_counter()
    for _ in range(ENQUEUE_N):
        await task_function().dispatch()
    return ENQUEUE_N / (time.perf_counter() - started)


async def enqueue_batched() -> float:
    started = time.perf_counter()
    for _ in range(0, BATCH_N, 1000):
        await dispatch_many([noop() for _ in range(1000)])
    return BATCH_N / (time.perf_counter() - started)


async def fill(framework: str, n: int) -> None:
    if framework not in OURS:
        await asyncio.to_thread(run_client, framework, "fill", str(n))
        return
    task_function, _ = tasks_of(framework)
    for _ in range(0, n, 1000):
        await dispatch_many([task_function() for _ in range(min(1000, n))])


async def drain(broker: Broker, framework: str) -> float:
    queue, _ = queues_of(framework)
    await fill(framework, DRAIN_N)
    await broker.wait_for(queue, lambda ready, _: ready >= DRAIN_N)
    worker = spawn_worker(framework, queue)
    try:
        await broker.wait_for(queue, lambda ready, _: ready < DRAIN_N)
        started = time.perf_counter()
        await broker.wait_for(queue, lambda ready, _: ready == 0)
        elapsed = time.perf_counter() - started
    finally:
        stop(worker)
    return DRAIN_N / elapsed


async def latencies(broker: Broker, tmp: Path) -> dict[str, list[float]]:
    """Dispatch-to-start latencies of every framework, measured in turns: all workers idle
    and subscribed at once, one probe per framework per round (the order rotating each
    round), so a change in the shared host's speed reaches every framework alike."""
    paths = {f: tmp / f"latency-{f}-{time.monotonic_ns()}" for f in FRAMEWORKS}
    workers = [spawn_worker(f, queues_of(f)[1]) for f in FRAMEWORKS]
    clients: dict[str, asyncio.subprocess.Process] = {}
    try:
        for framework in FRAMEWORKS:
            await broker.wait_for(queues_of(framework)[1], lambda _, consumers: consumers >= 1)
        for framework in FRAMEWORKS:
            if framework not in OURS:
                clients[framework] = await asyncio.create_subprocess_exec(
                    ensure_venv(framework), BENCH_DIR / f"{framework}_bench.py", "latency", "0",
                    str(paths[framework]), cwd=BENCH_DIR, env=framework_env(framework),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
        await asyncio.sleep(0.5)  # start-up work after subscribing is over
        order = list(FRAMEWORKS)
        for i in range(LATENCY_N + WARM_UP):
            for framework in order:
                client = clients.get(framework)
                if client is None:
                    await _probe_here(tasks_of(framework)[1], str(paths[framework]), i)
                else:
                    await _probe_there(client)
                await asyncio.sleep(0.005)
            order.append(order.pop(0))
    finally:
        for worker in workers:
            stop(worker)
        for client in clients.values():
            if client.stdin is not None:
                client.stdin.close()
            try:
                await asyncio.wait_for(client.wait(), 20)
            except TimeoutError:  # stuck (a publish that never returns): not waited for
                client.kill()
                await client.wait()
    results = {}
    for framework, path in paths.items():
        results[framework] = [float(line) for line in path.read_text().split()][WARM_UP:]
        path.unlink()
    return results


async def _probe_here(probe_task: TaskFunction[[float, str], None], path: str, i: int) -> None:
    """Dispatch probe `i` from this process; return once it started in the worker."""
    await probe_task(time.monotonic(), path).dispatch()
    await common.wait_for_lines(path, i + 1, 10)


async def _probe_there(client: asyncio.subprocess.Process) -> None:
    """Have a peer's client process send one probe; return once it started in the worker."""
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(b"probe\n")
    await client.stdin.drain()
    answer = await asyncio.wait_for(client.stdout.readline(), 15)
    if answer != b"ok\n":
        raise RuntimeError(f"a peer's latency client stopped: {answer!r}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- report ----------------------------------------------------------------------------------

Results = dict[str, dict[str, float]]


SCENARIOS = ("enqueue", "drain", "latency")


async def bench(scenarios: tuple[str, ...] = SCENARIOS) -> Results:
    broker = await Broker.open()
    await broker.clean()
    tmp = BENCH_DIR / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, list[float]]] = {f: {} for f in (*FRAMEWORKS, *OURS)}

    def keep(framework: str, name: str, value: float) -> None:
        runs[framework].setdefault(name, []).append(value)
        print(f"  {framework:9} {name:8} {value:,.4g}", flush=True)

    try:
        for framework in PACKAGES:
            ensure_venv(framework)
        for rep in range(REPEATS):
            print(f"run {rep + 1}/{REPEATS}", flush=True)
            if "enqueue" in scenarios:
                for framework in FRAMEWORKS:
                    keep(framework, "enqueue", await enqueue(framework))
                    await broker.clean()
                keep("asynctasq", "batch", await enqueue_batched())
                await broker.clean()
            if "drain" in scenarios:
                for framework in FRAMEWORKS:
                    keep(framework, "drain", await drain(broker, framework))
                    await broker.clean()
            if "latency" in scenarios:
                for framework, values in (await latencies(broker, tmp)).items():
                    keep(framework, "p50", pct(values, 0.5) * 1000)
                    keep(framework, "p99", pct(values, 0.99) * 1000)
                await broker.clean()
    finally:
        await broker.clean()
        await broker.close()
        await driver.close()
        await quorum_driver.close()
    return {
        framework: {name: statistics.median(values) for name, values in measures.items()}
        for framework, measures in runs.items()
    }


def table(results: Results) -> str:
    columns = [results[f] for f in FRAMEWORKS]
    ours, dramatiq, celery = results["asynctasq"], results["dramatiq"], results["celery"]

    # A scenario left out (`--only`) shows as "-".
    def rate(name: str) -> list[str]:
        return [f"{r[name]:,.0f}" if name in r else "-" for r in columns]

    def ms(name: str) -> list[str]:
        return [f"{r[name]:.2f}" if name in r else "-" for r in columns]

    def ratio(name: str) -> list[str]:
        if name not in ours:
            return ["-"] * len(columns)
        return [
            f"{ours[name] / r[name]:.2f}x" if r is not ours else "1.00x"
            for r in (ours, results["asynctasq-before"], dramatiq, celery)
        ]

    rows = [
        ["enqueue, one call per task (tasks/s)", *rate("enqueue")],
        ["enqueue, `dispatch_many` x1000 (tasks/s)", rate("batch")[0], "-", "-", "-"],
        [f"drain {DRAIN_N:,} no-op tasks, 1 worker, c={CONCURRENCY} (tasks/s)", *rate("drain")],
        ["drain: AsyncTasQ default / column", *ratio("drain")],
        ["dispatch-to-start latency p50 (ms)", *ms("p50")],
        ["p50: AsyncTasQ default / column", *ratio("p50")],
        ["dispatch-to-start latency p99 (ms)", *ms("p99")],
    ]  # fmt: skip
    lines = [
        "| scenario | AsyncTasQ (default: classic) | AsyncTasQ (before: quorum, prefetch = c) "
        "| Dramatiq | Celery |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    return "\n".join(lines)


def _versions() -> str:
    found = []
    for framework, module in (("dramatiq", "dramatiq"), ("celery", "celery")):
        python = ensure_venv(framework)
        version = subprocess.run(
            [python, "-c", f"import {module}; print({module}.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        found.append(f"{framework} {version}")
    return ", ".join(found)


async def _server_version() -> str:
    connection = await aio_pika.connect(URL)
    try:
        transport = connection.transport
        assert transport is not None
        version = transport.connection.server_properties.get("version", "?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


def write_report(text: str) -> None:
    server = asyncio.run(_server_version())
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    notes = common.kept_notes(REPORT)  # a re-run rewrites only what is above them
    REPORT.write_text(
        textwrap.dedent(
            f"""\
            # RabbitMQ benchmark: AsyncTasQ vs Dramatiq vs Celery

            Command: `.venv/bin/python -m scripts.bench.bench_rabbitmq --write` (from the
            repository root, RabbitMQ {server} at `{URL}`). Medians of {REPEATS} runs, the
            three frameworks interleaved in each run, one broker.

            Machine: {os.cpu_count()} cores ({platform.machine()}), shared with other work while
            this ran, so absolute numbers are noisy; compare the columns, which ran side by
            side. Python {platform.python_version()}; AsyncTasQ with aio-pika
            {aio_pika.__version__} under uvloop; {_versions()} (each in its own venv under
            `.bench/`, pika and py-amqp clients).

            {{table}}

            Same guarantees in every column: durable queues, persistent messages, publisher
            confirms awaited for every task (`confirm_delivery=True` for Dramatiq,
            `confirm_publish` for Celery; both default to off), acknowledgement after the task
            ran (`task_acks_late=True` for Celery, which acks before by default). The first
            column is AsyncTasQ's default (classic work queues, prefetch = twice the worker's
            concurrency, {2 * CONCURRENCY}); the second the same code with the defaults it had
            before (`queue_type="quorum"`, `prefetch_count={CONCURRENCY}`), in its own
            namespace. Dramatiq and Celery declare classic queues; Dramatiq's prefetch is twice
            its threads ({2 * CONCURRENCY}), Celery's four times its concurrency
            ({4 * CONCURRENCY}). Ratio rows divide AsyncTasQ's default by each column (drain:
            above 1 is faster; p50: below 1 is lower latency).

            * **enqueue**: {ENQUEUE_N:,} no-op tasks, one `noop().dispatch()` /
              `noop.send()` / `noop.delay()` each, awaiting its confirm. AsyncTasQ's
              `dispatch_many` publishes 1,000 at a time and awaits their confirms together;
              the others have no batch publish.
            * **drain**: {DRAIN_N:,} no-op tasks queued before one worker process starts:
              AsyncTasQ's `Worker(concurrency={CONCURRENCY})`, `dramatiq --processes 1
              --threads {CONCURRENCY}`, `celery worker --pool threads --concurrency
              {CONCURRENCY}`. Timed from the first delivery until the queue has no ready
              message (at most one prefetch window of tasks still running, under 0.2 % of
              the run).
            * **latency**: with every framework's worker idle and subscribed at once, time
              from just before the dispatch call until the task starts in the worker
              process, {LATENCY_N} samples after {WARM_UP} warm-ups; both ends read
              `time.monotonic()` (system-wide on Linux). The frameworks take turns probe by
              probe, the order rotating each round, so a change in the shared host's speed
              reaches all of them alike (measured one framework after another, the medians
              of one framework moved by up to 0.3 ms between runs minutes apart here).
            """
        ).replace("{table}", text)
        + notes
    )
    print(f"wrote {REPORT.relative_to(ROOT)}")


def main() -> None:
    """Run the benchmark (or, with ``--worker``, the AsyncTasQ worker child process)."""
    global REPEATS
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--write", action="store_true", help=f"write {REPORT.name}")
    parser.add_argument(
        "--only",
        choices=SCENARIOS,
        action="append",
        help="run only this scenario (repeatable); the report needs them all",
    )
    parser.add_argument("--worker", metavar="QUEUE", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="asynctasq", help=argparse.SUPPRESS)
    args = parser.parse_args()
    REPEATS = args.repeats
    if args.worker:
        run_worker(args.worker, OURS[args.variant])
        return
    if args.only and args.write:
        parser.error("--write needs every scenario: leave out --only")
    results = uvloop.run(bench(tuple(args.only or SCENARIOS)))
    text = table(results)
    print(text)
    if args.write:
        write_report(text)


if __name__ == "__main__":
    main()
