"""``asynctasq worker --log-tasks``: a line per task started and finished, with its name, id,
queue, attempt and duration; fields of their own in JSON logs; nothing without the flag."""

from __future__ import annotations

import json
import subprocess

import prom_tasks as t
import pytest
from prom_testing import QUEUE, REDIS_URL, SCRIPT, TASKS_DIR, enqueue, env, redis_args

pytestmark = pytest.mark.slow


def drain(prefix: str, *args: str, extra_env: dict[str, str] | None = None) -> str:
    """Queue two tasks that succeed and one that fails twice; drain them; the output."""
    from asynctasq_redis import RedisDriver

    driver = RedisDriver(url=REDIS_URL, prefix=prefix)
    ids = enqueue(driver, [t.ok(1), t.ok(2), t.broken(3)])
    command = [str(SCRIPT), "worker", *redis_args(prefix), "--queues", QUEUE, "--burst"]
    command += ["--import", "prom_tasks", "--allowed-root", str(TASKS_DIR), "--no-live", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**env(), **(extra_env or {})}
    )
    assert done.returncode == 0, done.stderr
    assert all(i in done.stderr for i in ids) or "--log-tasks" not in args
    return done.stderr


def test_json_lines_carry_the_fields(prefix: str) -> None:
    out = drain(prefix, "--log-tasks", "--log-format", "json")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    tasks = [r for r in records if r["logger"] == "asynctasq.tasks"]
    events = sorted(r["event"] for r in tasks)
    assert events == sorted(["task-started"] * 4 + ["task-succeeded"] * 2 + ["task-failed"] * 2)
    for record in tasks:
        assert record["queue"] == QUEUE and record["level"] == "info"
        assert record["task"] in ("prom_tasks:ok", "prom_tasks:broken")
        assert len(record["task_id"]) == 36
        if record["event"] != "task-started":
            assert record["duration"] >= 0
    succeeded = [r for r in tasks if r["event"] == "task-succeeded"]
    # The task sleeps 10 ms; the event loop's timers (uvloop: 1 ms resolution) may end a
    # sleep up to a millisecond early, so the measured run is 10 ms give or take that.
    assert all(r["duration"] >= 0.008 and r["attempt"] == 1 for r in succeeded), succeeded
    failed = sorted((r["attempt"], r["error"]) for r in tasks if r["event"] == "task-failed")
    assert failed == [(1, "ValueError"), (2, "ValueError")]


def test_text_lines_and_the_environment_variable(prefix: str) -> None:
    out = drain(prefix, extra_env={"ASYNCTASQ_WORKER_LOG_TASKS": "true"})
    started = [
        line for line in out.splitlines() if "asynctasq.tasks:" in line and "started" in line
    ]
    assert len(started) == 4
    assert any(
        "task prom_tasks:ok [" in line
        and "] succeeded in " in line
        and "(queue prom, attempt 1)" in line
        for line in out.splitlines()
    ), out
    assert "failed in " in out and ": ValueError (queue prom, attempt 2)" in out


def test_off_by_default(prefix: str) -> None:
    out = drain(prefix)
    assert "asynctasq.tasks" not in out
