"""The middleware in process, on the in-memory driver: outcomes the end-to-end tests do not
reach (expired), the cap on task names, and the in-flight gauge back at zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from asynctasq.core.dispatch import prepare
from asynctasq.core.function import task
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker
from asynctasq_prometheus import PrometheusMiddleware
from asynctasq_prometheus._labels import OTHER, BoundedNames


@task(queue="mw")
async def quick() -> None:
    return None


def sample(middleware: PrometheusMiddleware, name: str, **labels: str) -> float:
    assert middleware.registry is not None
    return middleware.registry.get_sample_value(name, labels) or 0.0


async def test_expired_tasks_are_counted_as_expired_not_dead_lettered() -> None:
    driver = MemoryDriver()
    past = datetime.now(UTC) - timedelta(seconds=1)
    messages = [prepare(quick().expires(past)), prepare(quick())]
    await driver.enqueue_many(messages)
    middleware = PrometheusMiddleware()
    worker = Worker(driver, queues=["mw"], burst=True, middleware=[middleware])
    worker.install_signal_handlers = False
    await worker.run()
    name = "asynctasq_tasks_finished_total"
    labels = {"queue": "mw", "task": quick.name}
    assert sample(middleware, name, **labels, outcome="expired") == 1
    assert sample(middleware, name, **labels, outcome="succeeded") == 1
    assert sample(middleware, name, **labels, outcome="dead_lettered") == 0
    assert b"asynctasq_worker_concurrency" in generate_latest(middleware.registry)


def test_task_names_beyond_the_cap_are_other() -> None:
    names = BoundedNames(limit=2)
    assert [names("a"), names("b"), names("c"), names("a")] == ["a", "b", OTHER, "a"]
    assert names("x" * 1000) == OTHER
    assert len(BoundedNames()("y" * 1000)) == 200
