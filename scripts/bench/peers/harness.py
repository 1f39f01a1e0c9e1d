"""The common workload, measured the same way for every contender.

Per run: clean the broker; a client process enqueues N no-op tasks one call at a time
(enqueue rate); one worker process at concurrency 10 starts and drains them (rate from the
first task's start to the N-th task's start, noted inside the worker by the task itself, so
no framework-specific queue inspection is involved); then, with that worker idle, a client
dispatches probe tasks one at a time and each reports how long after its dispatch it started
(dispatch-to-start latency); the worker is stopped and the broker cleaned again.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.peers import brokers
from scripts.bench.peers.contenders import PEER_PACKAGES, Contender
from scripts.bench.peers.venvs import ROOT, VENVS, ensure_venv

APPS = Path(__file__).resolve().parent / "apps"
WARM_UP = 10
PHASE_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Workload:
    """Sizes of one run."""

    tasks: int
    samples: int
    repeats: int


@dataclass
class Measured:
    """Every run's values for one contender (medians are taken by the report)."""

    enqueue: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    error: str | None = None

    def median(self, name: str) -> float | None:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else None


def python_of(contender: Contender) -> Path:
    if contender.ours:
        return Path(sys.executable)
    return ensure_venv(contender.framework, PEER_PACKAGES[contender.framework])


def _env(contender: Contender, workload: Workload, run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCTASQ_", "BENCH_"))}
    env.update(
        BENCH_URL=contender.url,
        BENCH_QUEUE=contender.queue,
        BENCH_N=str(workload.tasks + 1),  # the client sends one untimed task first
        BENCH_MARKS=str(run_dir / "marks.json"),
        BENCH_LATENCY=str(run_dir / "latency.txt"),
        PYTHONPATH=str(APPS),
        PYTHONUNBUFFERED="1",
        **contender.env,
    )
    return env


def _client(contender: Contender, env: dict[str, str], *args: str) -> dict[str, float]:
    done = subprocess.run(
        [str(python_of(contender)), str(APPS / f"{contender.app}.py"), *args],
        cwd=APPS,
        env=env,
        capture_output=True,
        text=True,
        timeout=PHASE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"client {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    out: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            out.update(json.loads(line))
    return out


def _start_worker(contender: Contender, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    bin_dir = str(python_of(contender).parent)
    argv = [part.replace("{bin}", bin_dir) for part in contender.worker]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, cwd=APPS, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_file(path: Path, proc: subprocess.Popen[bytes], log: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:]
            raise RuntimeError(f"worker exited with {proc.returncode}: {tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the drain did not finish within {within:.0f} s")
        time.sleep(0.01)
    time.sleep(0.05)  # the writer closes the file right after creating it


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_once(contender: Contender, workload: Workload, measured: Measured) -> None:
    """One run of the workload for `contender`; values appended to `measured`."""
    run_dir = VENVS / "runs" / contender.name.replace("/", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.iterdir():
        stale.unlink()
    env = _env(contender, workload, run_dir)
    log = run_dir / "worker.log"
    brokers.reset(contender)
    if contender.framework == "procrastinate":
        _client(contender, env, "setup", "0")
    try:
        measured.enqueue.append(_client(contender, env, "enqueue", str(workload.tasks))["enqueue"])
        worker = _start_worker(contender, env, log)
        try:
            _wait_file(run_dir / "marks.json", worker, log, 60 + workload.tasks / 20)
            marks = json.loads((run_dir / "marks.json").read_text())
            # N = tasks + 1 starts, so `tasks` intervals between the first and the last.
            measured.drain.append(workload.tasks / (marks["last"] - marks["first"]))
            time.sleep(0.5)  # idle before the latency probes
            _client(contender, env, "latency", str(workload.samples + WARM_UP))
            delays = [float(v) for v in (run_dir / "latency.txt").read_text().split()][WARM_UP:]
            measured.p50.append(_percentile(delays, 0.5) * 1000)
            measured.p99.append(_percentile(delays, 0.99) * 1000)
        finally:
            _stop(worker)
    finally:
        brokers.reset(contender)


def run_all(contenders: list[Contender], workload: Workload) -> dict[str, Measured]:
    """Every contender, `workload.repeats` times, contenders interleaved within a repeat."""
    results = {c.name: Measured() for c in contenders}
    for contender in contenders:
        if not contender.ours:
            try:
                python_of(contender)
            except Exception as exc:
                results[contender.name].error = f"install failed: {exc}"
    for repeat in range(workload.repeats):
        print(f"bench: run {repeat + 1} of {workload.repeats}", flush=True)
        for contender in contenders:
            measured = results[contender.name]
            if measured.error:
                continue
            try:
                run_once(contender, workload, measured)
            except Exception as exc:
                measured.error = f"{type(exc).__name__}: {exc}"
                print(f"  {contender.name:24} failed: {measured.error[:300]}", flush=True)
                continue
            print(
                f"  {contender.name:24} enqueue {measured.enqueue[-1]:9,.0f}/s  "
                f"drain {measured.drain[-1]:9,.0f}/s  p50 {measured.p50[-1]:8.2f} ms  "
                f"p99 {measured.p99[-1]:8.2f} ms",
                flush=True,
            )
    return results


__all__ = ["ROOT", "Measured", "Workload", "run_all", "run_once"]
