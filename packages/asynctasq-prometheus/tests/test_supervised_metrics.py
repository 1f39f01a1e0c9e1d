"""``asynctasq worker --workers 2 --metrics-port``: one scrape of the supervisor gives the
sum of both worker processes; its probes speak for both."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import prom_tasks as t
import pytest
from prom_testing import (
    QUEUE,
    REDIS_URL,
    enqueue,
    free_port,
    get,
    redis_args,
    scrape,
    value,
    wait_until,
    worker,
)

pytestmark = pytest.mark.slow
TOTAL = 30


def test_one_scrape_sums_the_worker_processes(prefix: str, tmp_path: Path) -> None:
    from asynctasq_redis import RedisDriver

    port, log = free_port(), tmp_path / "supervisor.log"
    args = [*redis_args(prefix), "--workers", "2", "--concurrency", "3", "--log-tasks"]
    with worker(log, *args, "--metrics-port", str(port)) as proc:
        wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), 90, "both ready", log, proc)
        samples = scrape(port)
        pids = {
            dict(labels)["pid"]
            for name, labels in samples
            if name == "asynctasq_worker_ready" and samples[(name, labels)] == 1
        }
        assert len(pids) == 2 and str(proc.pid) not in pids  # the two workers, each ready
        assert value(samples, "asynctasq_worker_concurrency") == 6  # summed
        # 0.2 s each, 3 at a time per process: one process alone would need 2 s, so both
        # take some (their log lines say which ran what).
        enqueue(RedisDriver(url=REDIS_URL, prefix=prefix), [t.slow(0.2) for _ in range(TOTAL)])
        done = wait_until(
            lambda: (
                (s := scrape(port))
                and value(s, "asynctasq_tasks_finished_total", outcome="succeeded") == TOTAL
                and s
            ),
            90,
            "every task counted",
            log,
            proc,
        )
        assert value(done, "asynctasq_task_duration_seconds_count", queue=QUEUE) == TOTAL
        wait_until(  # sampled every 2 s
            lambda: value(scrape(port), "asynctasq_tasks_in_flight") == 0, 30, "none", log, proc
        )
        text = log.read_text()
        assert "[worker 1] asynctasq.tasks: task prom_tasks:slow" in text, text
        assert "[worker 2] asynctasq.tasks: task prom_tasks:slow" in text, text
        # A killed process: its live gauges go, its counts stay; the probes say so.
        victim = int(sorted(pids)[0])
        os.kill(victim, 9)
        wait_until(
            lambda: (
                str(victim)
                not in {
                    dict(ls).get("pid") for n, ls in scrape(port) if n == "asynctasq_worker_ready"
                }
            ),
            30,
            "the dead process's gauges gone",
            log,
            proc,
        )
        after = scrape(port)
        assert value(after, "asynctasq_tasks_finished_total", outcome="succeeded") == TOTAL
        wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), 90, "ready after restart", log)


def test_scrapes_never_fail_while_worker_processes_are_killed_and_restarted(
    prefix: str, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "supervisor.log"
    args = [*redis_args(prefix), "--workers", "2", "--concurrency", "2"]
    failures: list[str] = []
    scrapes = 0
    done = threading.Event()

    def scrape_all_the_time() -> None:
        # A new process creates its metric files while these read the directory, and a
        # killed one's live gauges are removed by whichever of them sees it dead first.
        nonlocal scrapes
        while not done.is_set():
            for path, allowed in (
                ("/metrics", {200}),
                ("/readyz", {200, 503}),
                ("/healthz", {200, 503}),
            ):
                try:
                    status, body = get(port, path)
                except OSError as exc:
                    failures.append(f"{path}: {exc!r}")
                    continue
                if status not in allowed:
                    failures.append(f"{path}: {status} {body[:500]}")
                scrapes += 1

    def ready_pids() -> set[str]:
        samples = scrape(port)
        return {
            dict(labels)["pid"]
            for name, labels in samples
            if name == "asynctasq_worker_ready" and samples[(name, labels)] == 1
        }

    with worker(log, *args, "--metrics-port", str(port)) as proc:
        wait_until(lambda: len(ready_pids()) == 2, 90, "both ready", log, proc)
        threads = [threading.Thread(target=scrape_all_the_time) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            # Four kills, at most two per slot: short of the supervisor's crash loop.
            for _ in range(4):
                before = ready_pids()
                victim = sorted(before)[0]
                os.kill(int(victim), 9)
                wait_until(
                    lambda before=before, victim=victim: (
                        (now := ready_pids()) and victim not in now and len(now - before) == 1
                    ),
                    90,
                    f"a process in place of {victim}",
                    log,
                    proc,
                )
        finally:
            done.set()
            for thread in threads:
                thread.join(30)
    assert not failures, "\n".join(failures[:5])
    assert scrapes > 20
