"""A real ``asynctasq worker --metrics-port`` process draining a Redis queue: /metrics
counts what ran, by outcome; its histograms and gauges are filled; the probes answer."""

from __future__ import annotations

import time
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

SUCCEEDED, BROKEN = 60, 3


def test_a_scrape_during_a_drain_counts_every_task_by_outcome(prefix: str, tmp_path: Path) -> None:
    from asynctasq_redis import RedisDriver

    port, log = free_port(), tmp_path / "worker.log"
    args = [*redis_args(prefix), "--metrics-port", str(port), "--concurrency", "4"]
    with worker(log, *args, extra_env={"ASYNCTASQ_WORKER_METRICS_INTERVAL": "1"}) as proc:
        wait_until(lambda: get(port, "/readyz")[0] == 200, 60, "ready", log, proc)
        tasks = [t.ok(n) for n in range(SUCCEEDED)] + [t.broken(n) for n in range(BROKEN)]
        enqueue(RedisDriver(url=REDIS_URL, prefix=prefix), tasks)
        name = "prom_tasks:ok"
        # A scrape while the queue drains: some tasks counted, not all of them yet.
        during = wait_until(
            lambda: (
                (s := scrape(port))
                and value(s, "asynctasq_tasks_finished_total", task=name) > 0
                and s
            ),
            60,
            "a first count",
            log,
            proc,
        )
        assert value(during, "asynctasq_tasks_finished_total", task=name) < SUCCEEDED
        done = wait_until(
            lambda: (
                (s := scrape(port))
                and value(s, "asynctasq_tasks_finished_total", outcome="dead_lettered") == BROKEN
                and value(s, "asynctasq_tasks_finished_total", outcome="succeeded") == SUCCEEDED
                and s
            ),
            90,
            "every task counted",
            log,
            proc,
        )
        finished = "asynctasq_tasks_finished_total"
        assert value(done, finished, queue=QUEUE, task=name, outcome="succeeded") == SUCCEEDED
        assert value(done, finished, task="prom_tasks:broken", outcome="retried") == BROKEN
        assert value(done, finished, task="prom_tasks:broken", outcome="dead_lettered") == BROKEN
        assert value(done, finished) == SUCCEEDED + 2 * BROKEN  # no other outcome
        runs = SUCCEEDED + 2 * BROKEN
        assert value(done, "asynctasq_task_duration_seconds_count", queue=QUEUE) == runs
        assert value(done, "asynctasq_task_duration_seconds_sum", task=name) >= 0.01 * SUCCEEDED
        # First runs only: a retry's wait is not dispatch latency.
        latency = value(done, "asynctasq_task_latency_seconds_count", queue=QUEUE)
        assert latency == SUCCEEDED + BROKEN
        assert value(done, "asynctasq_task_latency_seconds_bucket", le="+Inf") == latency
        assert value(done, "asynctasq_worker_concurrency") == 4
        wait_until(  # sampled every 2 s
            lambda: value(scrape(port), "asynctasq_tasks_in_flight") == 0, 30, "none", log, proc
        )
        # Sampled every 2 s: 0 at boot (no fetch yet), then 1.
        wait_until(
            lambda: value(scrape(port), "asynctasq_worker_ready") == 1, 30, "ready 1", log, proc
        )
        heartbeat = value(scrape(port), "asynctasq_worker_heartbeat_timestamp_seconds")
        assert abs(heartbeat - time.time()) < 30
        # The queue depths are sampled every second: the dead letters show up.
        wait_until(
            lambda: (
                value(scrape(port), "asynctasq_queue_tasks", queue=QUEUE, state="dead") == BROKEN
            ),
            30,
            "the dead letters in the queue depths",
            log,
            proc,
        )
        assert value(scrape(port), "asynctasq_queue_tasks", queue=QUEUE, state="ready") == 0
        assert all("task_id" not in dict(labels) for _, labels in done)
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/nothing-here")[0] == 404
