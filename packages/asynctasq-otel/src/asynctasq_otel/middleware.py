"""`TracingMiddleware`: AsyncTasQ middleware that makes the producer and consumer spans."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from asynctasq.middleware import Middleware
from asynctasq_otel import _attributes as attr
from asynctasq_otel.consumer import ConsumerSpans
from asynctasq_otel.producer import ProducerSpans

if TYPE_CHECKING:
    from asynctasq.core.task import BaseTask
    from asynctasq.drivers.base import Failure, OutgoingMessage
    from asynctasq.worker.job import Job


def _version() -> str:
    try:
        return version("asynctasq-otel")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


class TracingMiddleware(Middleware):
    """Producer spans at dispatch and consumer spans around each run.

    `asynctasq_otel.instrument()` adds one to dispatch and to every worker; build one
    yourself to trace only some workers (``Worker(middleware=[TracingMiddleware()])``) or to
    use a tracer provider other than the global one.

    Args:
        tracer_provider: Where spans go; the global provider (``trace.set_tracer_provider``)
            when None.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        tracer = trace.get_tracer(
            "asynctasq_otel", _version(), tracer_provider, schema_url=attr.SCHEMA_URL
        )
        self._producer = ProducerSpans(tracer)
        self._consumer = ConsumerSpans(tracer)

    # -- dispatch side ---------------------------------------------------------------------
    def message_headers(self, task: BaseTask[Any]) -> dict[str, str] | None:
        return self._producer.message_headers(task)

    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        self._producer.before_enqueue(task, message)

    def after_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        self._producer.after_enqueue(task)

    # -- worker side -----------------------------------------------------------------------
    def before_process(self, job: Job) -> None:
        self._consumer.before_process(job)

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        self._consumer.after_process(job, exception)

    def after_retry(self, job: Job, exception: BaseException, delay: float) -> None:
        self._consumer.after_retry(job, exception, delay)

    def after_dead_letter(self, job: Job, failure: Failure) -> None:
        self._consumer.after_dead_letter(job, failure)

    def after_cancel(self, job: Job) -> None:
        self._consumer.after_cancel(job)

    def after_expire(self, job: Job) -> None:
        self._consumer.after_expire(job)

    def after_release(self, job: Job) -> None:
        self._consumer.after_release(job)
