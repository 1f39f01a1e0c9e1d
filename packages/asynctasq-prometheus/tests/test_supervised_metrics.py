"""``asynctasq worker --workers 2 --metrics-port``: one scrape of the supervisor gives the
sum of both worker processes; its probes speak for both."""

from __future__ import annotations

import os
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
