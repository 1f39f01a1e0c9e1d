"""``python -m scripts.bench.scaling`` (part of ``make bench``): drain throughput with 1, 2
and 4 worker processes.

Per run: the broker is emptied, a client queues the tasks (untimed, in batches), then the
worker command starts with N processes and drains them. Every task appends one byte to a
shared counter file (`apps/common.count`), so the file's size is the number of tasks run by
all processes together, the same measure for any framework's process model. The rate is
taken from the moment every process has run a task to the last task (start-up, and the
children starting one after another, are outside it), and
CPU is read from /proc at both ends: the worker's process tree, the broker's processes, and
the whole host (how many cores were busy).

Besides AsyncTasQ (``asynctasq worker --workers N``) it runs, on Redis, each peer's own
multi-process mode: Dramatiq ``--processes N``, Taskiq ``--workers N``, SAQ ``--workers N``,
Celery's prefork pool ``--concurrency N``, and the upstream AsyncTasQ 1.7 release, which has
no such mode, as N separate worker processes (``apps/spawn.py``). Peers run from their
pinned environments under ``.bench/peers`` (`scripts.bench.peers.venvs`), created on first
use.

The broker state is this run's own (Redis db 13, PostgreSQL database
``asynctasq_bench_scaling``), so the peer comparison (db 12) can run at the same time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.bench import procstat
from scripts.bench.peers.contenders import PEER_PACKAGES, PEER_PYTHON
from scripts.bench.peers.venvs import VENVS, ensure_venv

APPS = Path(__file__).resolve().parent / "peers" / "apps"
REDIS_URL = os.environ.get("ASYNCTASQ_BENCH_SCALING_REDIS_URL", "redis://127.0.0.1:6379/13")
PG_SERVER = os.environ.get("ASYNCTASQ_BENCH_PEERS_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "asynctasq_bench_scaling"
BROKER_PROCESSES = {"redis": ("redis-server",), "postgres": ("postgres", "postmaster")}
PHASE_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Contender:
    """One framework on one broker; in `worker`, ``{n}`` is the number of processes and
    ``{bin}`` the environment's ``bin`` directory; `how` says how N processes are run.

    The peers drain 50,000 tasks by default, not 200,000: at their 1,000 to 5,000 tasks/s
    that is still 10 s or more per drain (start-up stays a small part of it), and a full
    run stays within a couple of hours on 2 cores."""

    framework: str
    broker: str
    app: str
    worker: tuple[str, ...]
    how: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.framework}/{self.broker}"

    @property
    def queue(self) -> str:
        return f"scale-{self.framework}"

    @property
    def ours(self) -> bool:
        return self.framework in ("asynctasq", AUTO_PINNED)


AUTO_PINNED = "asynctasq-auto"
"""AsyncTasQ with ``ASYNCTASQ_PIN_CPUS=auto``: each worker on its own CPU where N is the CPU
count (here N = 2), unpinned otherwise."""


def _ours(broker: str, env: dict[str, str], *, auto_pinned: bool = False) -> Contender:
    framework = AUTO_PINNED if auto_pinned else "asynctasq"
    worker = (
        "{bin}/asynctasq", "worker", "--import", "asynctasq_app", "--queues", f"scale-{framework}",
        "--concurrency", "10", "--log-level", "warning", "--no-live", "--workers", "{n}",
    )  # fmt: skip
    how = "`asynctasq worker --workers N --concurrency 10`" + (
        " with `ASYNCTASQ_PIN_CPUS=auto` (pinned where N is the CPU count)" if auto_pinned else ""
    )
    pin = {"ASYNCTASQ_PIN_CPUS": "auto"} if auto_pinned else {}
    return Contender(
        framework, broker, "asynctasq_app", worker, how, {"ASYNCTASQ_DRIVER": broker, **env, **pin}
    )


def _peers() -> list[Contender]:
    """The Redis peers, each with its own multi-process mode and 10 tasks at a time per
    process where the model allows (Celery's prefork pool runs one per process)."""
    upstream = (
        "{bin}/python", "spawn.py", "{n}", "{bin}/asynctasq", "worker", "--driver", "redis",
        "--queues", "scale-asynctasq-1.7", "--concurrency", "10",
    )  # fmt: skip
    dramatiq = (
        "{bin}/dramatiq", "dramatiq_app", "--processes", "{n}", "--threads", "10",
        "--queues", "scale-dramatiq",
    )  # fmt: skip
    taskiq = (
        "{bin}/taskiq", "worker", "taskiq_app:broker", "--workers", "{n}",
        "--max-async-tasks", "10",
    )  # fmt: skip
    celery = (
        "{bin}/celery", "-A", "celery_app", "worker", "--pool", "prefork", "--concurrency", "{n}",
        "-Q", "scale-celery", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    )  # fmt: skip
    url = {"BENCH_URL": REDIS_URL}
    return [
        Contender(
            "asynctasq-1.7", "redis", "asynctasq17_app", upstream,
            "N separate `asynctasq worker --concurrency 10` processes (1.7 has no "
            "multi-process mode)",
            {"ASYNCTASQ_DRIVER": "redis", "ASYNCTASQ_REDIS_URL": REDIS_URL},
        ),
        Contender("dramatiq", "redis", "dramatiq_app", dramatiq,
                  "`dramatiq --processes N --threads 10`", url),
        Contender("taskiq", "redis", "taskiq_app", taskiq,
                  "`taskiq worker --workers N --max-async-tasks 10` (taskiq-redis streams)", url),
        Contender("saq", "redis", "saq_app", ("{bin}/saq", "saq_app.settings", "--workers", "{n}"),
                  "`saq --workers N` (concurrency 10)", url),
        Contender("celery", "redis", "celery_app", celery,
                  "`celery worker --pool prefork --concurrency N` (one task at a time per "
                  "process)", url),
    ]  # fmt: skip


def contenders() -> list[Contender]:
    """Redis first, AsyncTasQ first on each broker."""
    return [
        _ours("redis", {"ASYNCTASQ_REDIS_URL": REDIS_URL}),
        _ours("redis", {"ASYNCTASQ_REDIS_URL": REDIS_URL}, auto_pinned=True),
        *_peers(),
        *(
            _ours(
                "postgres",
                {
                    "ASYNCTASQ_POSTGRES_DSN": f"{PG_SERVER}/{PG_DATABASE}",
                    "ASYNCTASQ_POSTGRES_AUTO_MIGRATE": "true",
                },
                auto_pinned=auto_pinned,
            )
            for auto_pinned in (False, True)
        ),
    ]


def python_of(contender: Contender) -> Path:
    """This interpreter for AsyncTasQ; a peer's pinned environment (created once)."""
    if contender.ours:
        return Path(sys.executable)
    name = contender.framework
    return ensure_venv(name, PEER_PACKAGES[name], PEER_PYTHON.get(name))


@dataclass
class Sample:
    """One drain: its rate and where the CPU went."""

    rate: float
    seconds: float
    tasks: int
    worker_cpu: float
    broker_cpu: float
    host_busy: float
    run: int = 0
    """Which of the repeats it was (drains of one run are paired for the 2-vs-1 speed-up)."""

    @property
    def worker_us(self) -> float:
        return self.worker_cpu / self.tasks * 1e6

    @property
    def broker_us(self) -> float:
        return self.broker_cpu / self.tasks * 1e6

    @property
    def cores(self) -> float:
        """Cores kept busy by the worker processes and the broker."""
        return (self.worker_cpu + self.broker_cpu) / self.seconds

    @property
    def host_cores(self) -> float:
        """Cores busy on the whole host (other work included)."""
        return self.host_busy / self.seconds


def reset(contender: Contender) -> None:
    if contender.broker == "redis":
        import redis

        with redis.Redis.from_url(REDIS_URL) as r:
            r.flushdb()
    else:
        import asyncio

        import asyncpg

        async def recreate() -> None:
            conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
            finally:
                await conn.close()

        asyncio.run(recreate())


def _env(contender: Contender, counter: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCTASQ_", "BENCH_"))}
    env.update(
        BENCH_QUEUE=contender.queue,
        BENCH_COUNTER=str(counter),
        PYTHONPATH=str(APPS),
        PYTHONUNBUFFERED="1",
        **contender.env,
    )
    return env


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_once(contender: Contender, processes: int, tasks: int) -> Sample:
    """Queue `tasks`, drain them with `processes` worker processes, measure."""
    run_dir = VENVS / "scaling" / contender.name.replace("/", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    counter, log = run_dir / "counter", run_dir / "worker.log"
    counter.unlink(missing_ok=True)
    for marker in counter.parent.glob(f"{counter.name}.*"):
        marker.unlink()
    env = _env(contender, counter)
    reset(contender)
    python = python_of(contender)
    fill = subprocess.run(
        [str(python), str(APPS / f"{contender.app}.py"), "fill", str(tasks)],
        cwd=APPS, env=env, capture_output=True, text=True, timeout=PHASE_TIMEOUT, check=False,
    )  # fmt: skip
    if fill.returncode != 0:
        raise RuntimeError(f"fill failed: {fill.stderr.strip()[-800:]}")
    bin_dir = str(python.parent)
    argv = [p.replace("{bin}", bin_dir).replace("{n}", str(processes)) for p in contender.worker]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=APPS, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while _size(counter) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no task ran: {log.read_text(errors='replace')[-800:]}")
            time.sleep(0.002)
        # The window opens once every process has run a task (each leaves a marker file):
        # children start one after another, and a drain timed from the first task would
        # count the others' start-up as if they were slow.
        while len(list(counter.parent.glob(f"{counter.name}.*"))) < processes:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"not all {processes} processes ran a task")
            if _size(counter) >= tasks // 2:
                raise RuntimeError(
                    f"half the tasks ran before all {processes} processes had started: "
                    "use more --tasks"
                )
            time.sleep(0.002)
        started, first = time.monotonic(), _size(counter)
        snap0 = procstat.processes()
        worker0 = procstat.tree_cpu(proc.pid, snap0)
        host0, _ = procstat.host_busy()
        while _size(counter) < tasks:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{_size(counter)} of {tasks} ran: {log.read_text(errors='replace')[-800:]}"
                )
            time.sleep(0.005)
        ended = time.monotonic()
        snap1 = procstat.processes()
        worker1 = procstat.tree_cpu(proc.pid, snap1)
        broker = procstat.named_cpu(BROKER_PROCESSES[contender.broker], snap0, snap1)
        host1, _ = procstat.host_busy()
    finally:
        _stop(proc)
    done = tasks - first
    seconds = ended - started
    return Sample(
        rate=done / seconds,
        seconds=seconds,
        tasks=done,
        worker_cpu=worker1 - worker0,
        broker_cpu=broker,
        host_busy=host1 - host0,
    )


def median_sample(samples: list[Sample]) -> Sample:
    """The run with the median rate (its CPU figures come with it, consistent)."""
    ordered = sorted(samples, key=lambda s: s.rate)
    return ordered[len(ordered) // 2]


def main(argv: list[str] | None = None) -> None:
    from scripts.bench import scaling_report

    parser = argparse.ArgumentParser(description="Drain throughput with 1, 2, 4 processes.")
    parser.add_argument("--processes", default="1,2,4", help="comma-separated (default 1,2,4)")
    parser.add_argument("--tasks", type=int, help="tasks per drain, for every contender "
                        "(default: AsyncTasQ 200,000 on Redis, 50,000 on PostgreSQL; the peers "
                        "50,000)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 tasks, one run")
    parser.add_argument("--only", help="comma-separated frameworks or framework/broker names: "
                        + ", ".join(c.name for c in contenders()))  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--report", action="store_true", help="write the page and chart again "
                        "from the last run's numbers (docs/benchmarks/scaling.json), running "
                        "nothing")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a setting for AsyncTasQ's workers (e.g. worker.prefetch=10), to "
                        "try a tuning; a run with it does not write the page")  # fmt: skip
    args = parser.parse_args(argv)
    if args.report:
        report_again(scaling_report)
        return
    if args.set:
        args.no_write = True
    counts = [int(n) for n in args.processes.split(",")]
    repeats = 1 if args.quick else args.repeats
    chosen = [
        dataclasses.replace(c, worker=(*c.worker, *(a for v in args.set for a in ("--set", v))))
        if c.ours
        else c
        for c in contenders()
    ]
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [c for c in chosen if c.name in wanted or c.framework in wanted]
        if not chosen:
            names = ", ".join(c.name for c in contenders())
            parser.error(f"--only {args.only}: no such contender (choose from {names})")
    results: dict[str, dict[int, list[Sample]]] = {c.name: {n: [] for n in counts} for c in chosen}
    sizes: dict[str, int] = {}
    for repeat in range(repeats):
        print(f"scaling: run {repeat + 1} of {repeats}", flush=True)
        for contender in chosen:
            default = 200_000 if contender.ours and contender.broker == "redis" else 50_000
            tasks = sizes[contender.name] = args.tasks or (20_000 if args.quick else default)
            for n in counts:
                try:
                    sample = run_once(contender, n, tasks)
                except Exception as exc:
                    print(f"  {contender.name} x{n}: failed: {exc}"[:600], flush=True)
                    continue
                results[contender.name][n].append(dataclasses.replace(sample, run=repeat))
                print(
                    f"  {contender.name:20} x{n}: {sample.rate:9,.0f}/s  worker "
                    f"{sample.worker_us:5.1f} us/task  broker {sample.broker_us:5.1f} us/task  "
                    f"cores {sample.cores:4.2f} (host {sample.host_cores:4.2f})",
                    flush=True,
                )
    medians = {
        name: {n: median_sample(s) for n, s in by_n.items() if s} for name, by_n in results.items()
    }
    print(scaling_report.summary(chosen, medians, results))
    print(scaling_report.table(chosen, medians))
    if not args.no_write:
        given = argv if argv is not None else sys.argv[1:]
        command = (
            "make bench" if not given else "python -m scripts.bench.scaling " + " ".join(given)
        )
        scaling_report.write(chosen, medians, results, sizes, repeats, command)
        print(f"scaling: wrote {scaling_report.PAGE} and {scaling_report.ASSETS}", flush=True)
    reset_all(chosen)


def report_again(scaling_report: Any) -> None:
    """Write the page, chart and numbers again from the saved numbers of the last run."""
    saved = json.loads((scaling_report.ASSETS / "scaling.json").read_text())
    results = {
        name: {int(n): [Sample(**sample) for sample in samples] for n, samples in by_n.items()}
        for name, by_n in saved["runs"].items()
    }
    chosen = [c for c in contenders() if c.name in results]
    medians = {
        name: {n: median_sample(s) for n, s in by_n.items() if s} for name, by_n in results.items()
    }
    command = saved.get("command", "make bench")
    scaling_report.write(chosen, medians, results, saved["tasks"], saved["repeats"], command)
    print(f"scaling: wrote {scaling_report.PAGE} and {scaling_report.ASSETS} again", flush=True)


def reset_all(chosen: list[Contender]) -> None:
    """The run's Redis db and database go away."""
    for broker in {c.broker for c in chosen}:
        reset(next(c for c in chosen if c.broker == broker))
    if any(c.broker == "postgres" for c in chosen):
        import asyncio

        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


if __name__ == "__main__":
    main()


__all__ = ["Contender", "Sample", "contenders", "main", "run_once"]
