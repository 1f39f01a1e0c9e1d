"""One trace from this process, through Redis, into a real worker process started by the CLI
and instrumented by configuration alone (``ASYNCTASQ_WORKER_IMPORTS``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from otel_tasks import QUEUE, fails_twice, greet

from asynctasq.config import configured, set_global_config, use_config
from asynctasq.drivers.connections import close_drivers

TASKS_DIR = Path(__file__).parent / "task_modules"
SCRIPT = Path(sys.executable).with_name("asynctasq")
REDIS_URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis() -> None:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return
    except OSError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI is set)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")


@pytest.fixture
async def on_redis() -> AsyncIterator[str]:
    """Dispatch goes to Redis under a fresh key prefix (purged afterwards)."""
    require_redis()
    from asynctasq_redis import RedisDriver

    prefix = f"oteltest-{uuid.uuid4().hex[:8]}"
    saved = configured()
    set_global_config(driver="redis", redis={"url": REDIS_URL, "prefix": prefix})
    try:
        yield prefix
    finally:
        await close_drivers()
        use_config(saved)
        driver = RedisDriver(url=REDIS_URL, prefix=prefix)
        await driver.connect()
        try:
            await driver.purge(QUEUE)
            await driver.purge_dead_letters()
        finally:
            await driver.close()


def run_worker(prefix: str, spans_file: Path, log: Path) -> None:
    """``asynctasq worker --burst`` on the queue until it is empty; instrumented through
    the environment only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASYNCTASQ_", "OTEL_")) or k.startswith("ASYNCTASQ_TEST_")
    }
    env |= {
        "ASYNCTASQ_WORKER_IMPORTS": "otel_tasks,otel_telemetry,asynctasq_otel.auto",
        "OTEL_TEST_SPANS_FILE": str(spans_file),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        str(SCRIPT),
        "worker",
        "--driver",
        "redis",
        "-o",
        f"url={REDIS_URL}",
        "-o",
        f"prefix={prefix}",
        "--allowed-root",
        str(TASKS_DIR),
        "--queues",
        QUEUE,
        "--burst",
        "--no-live",
    ]
    with log.open("wb") as out:
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=90, check=False
        )
    assert done.returncode == 0, log.read_text()


@pytest.mark.slow
async def test_the_workers_spans_continue_the_callers_trace_through_redis(
    on_redis: str, instrumented: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    tracer = instrumented.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        greeting = await greet("ada").dispatch()
        failing = await fails_twice().dispatch()
    await close_drivers()
    spans_file, log = tmp_path / "spans.jsonl", tmp_path / "worker.log"
    run_worker(on_redis, spans_file, log)

    sent = {
        s.attributes["messaging.message.id"]: s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.PRODUCER and s.attributes
    }
    assert set(sent) == {str(greeting), str(failing)}
    runs: list[dict[str, Any]] = [json.loads(line) for line in spans_file.read_text().splitlines()]
    trace_id = f"{request.get_span_context().trace_id:032x}"
    assert {r["trace_id"] for r in runs} == {trace_id}, log.read_text()
    assert all(r["kind"] == "CONSUMER" for r in runs)

    by_task: dict[str, list[dict[str, Any]]] = {}
    for record in runs:
        by_task.setdefault(record["attributes"]["messaging.message.id"], []).append(record)
        send = sent[record["attributes"]["messaging.message.id"]]
        assert record["parent_span_id"] == f"{send.context.span_id:016x}"
        assert record["name"] == f"process {QUEUE}"
    (ok,) = by_task[str(greeting)]
    assert ok["attributes"]["asynctasq.task.outcome"] == "succeeded"
    assert ok["attributes"]["asynctasq.task.name"] == greet.name
    retried, dead = by_task[str(failing)]
    assert [
        retried["attributes"]["asynctasq.task.attempt"],
        dead["attributes"]["asynctasq.task.attempt"],
    ] == [1, 2]
    assert retried["attributes"]["asynctasq.task.outcome"] == "retried"
    assert dead["attributes"]["asynctasq.task.outcome"] == "dead_lettered"
    assert retried["status"] == dead["status"] == "ERROR"
    assert "exception" in dead["events"] and "asynctasq.dead_letter" in dead["events"]
