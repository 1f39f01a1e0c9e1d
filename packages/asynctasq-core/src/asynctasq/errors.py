"""Exceptions users may catch. Every message names what is wrong and, where it can, the fix."""

from __future__ import annotations


class AsyncTasQError(Exception):
    """Base class of every error AsyncTasQ raises on purpose."""


class ConfigError(AsyncTasQError, ValueError):
    """A setting is unknown or has a value that cannot be used."""


class UnknownDriverError(ConfigError):
    """No installed driver has the requested name."""


class MissingDependencyError(AsyncTasQError, ImportError):
    """An optional package is needed for what was asked; the message says which."""


class SchemaNotInitializedError(AsyncTasQError, RuntimeError):
    """A driver's tables are missing or older than the driver, and it does not create or
    upgrade them itself (``auto_migrate=False``).

    Raised by the SQL drivers (PostgreSQL, MySQL, SQLite). The message names the tables and
    both fixes: run ``asynctasq migrate`` (or ``await driver.init_schema()``), or set
    ``auto_migrate=True``.

    Args:
        where: What is not set up, e.g. ``public.task_queue on postgresql://db/app``.
        detail: The database's own words, when there are any.
    """

    def __init__(self, where: str, detail: str | None = None) -> None:
        super().__init__(
            f"{where} is not set up, or is older than this driver's schema: run "
            "`asynctasq migrate` (or `await driver.init_schema()`), or set auto_migrate=True "
            "to create and upgrade it at connect" + (f" [{detail}]" if detail else "")
        )
        self.where = where
        self.detail = detail

    def __reduce__(self) -> tuple[type[SchemaNotInitializedError], tuple[str, str | None]]:
        # Keeps the two arguments across processes (pickling).
        return (type(self), (self.where, self.detail))


class TaskNotFoundError(AsyncTasQError, LookupError):
    """A message names task code this worker cannot load (yet): retried like a failed run.

    A module not deployed here, a task added in a newer release, an import that failed.
    """


class MalformedMessageError(AsyncTasQError, ValueError):
    """A message's bytes are not a task envelope this version understands."""


class PermanentError(AsyncTasQError):
    """Raise it (or a subclass) from a task to fail for good at once, without retries.

    Errors raised while a task is rebuilt from its message are retried like task errors
    unless they are permanent (a malformed message, refused code, or a subclass of this).
    """


class ForbiddenTaskError(TaskNotFoundError, PermanentError):
    """A message names code the worker may never load: dead-lettered at once, never retried.

    A malformed or private name, a module outside the allowed roots, a standard-library
    module the worker has not imported itself, or an object that is not a task.
    """


class ModelNotFoundError(PermanentError, LookupError):
    """The row a model argument refers to no longer exists when the task runs.

    Raised in the worker while the task is rebuilt from its message, so the task is
    dead-lettered at once, without running and without retries (a deleted row does not come
    back). Set ``_asynctasq_on_missing = "none"`` on the model (or call
    `asynctasq.serializer.model_refs.set_default_on_missing`) to pass None instead.

    Attributes:
        model: The model class as ``module:qualname``.
        pk: The primary key that was looked up (a tuple for composite keys).
    """

    def __init__(self, model: str, pk: object) -> None:
        super().__init__(
            f"{model} with primary key {pk!r} does not exist (deleted after the task was "
            "dispatched?): the task was not run. Set _asynctasq_on_missing = 'none' on the "
            "model to pass None instead"
        )
        self.model = model
        self.pk = pk

    def __reduce__(self) -> tuple[type[ModelNotFoundError], tuple[str, object]]:
        # Keeps the two arguments across processes (process-pool children, pickling).
        return (type(self), (self.model, self.pk))


class TaskLostError(AsyncTasQError):
    """A task was delivered more often than allowed without finishing.

    Its worker died or lost the lease each time (for example a task that crashes the process).
    """


class TaskAbortedError(AsyncTasQError):
    """A task, or code it loaded, raised ``SystemExit``, ``KeyboardInterrupt`` or a stray
    ``CancelledError``: the worker keeps running and treats it as a failed run.

    The original exception is the ``__cause__``.
    """


class TaskTimeoutError(AsyncTasQError, TimeoutError):
    """A task ran longer than its timeout: stopped (async, process), or for a thread task
    asked to stop and failed once it returned (or never started, waiting for a thread)."""


class TaskExpiredError(AsyncTasQError):
    """A worker took a task after its expiry (``expires``): the task was not run.

    The failure kept with its dead letter (reason ``expired``), unless the task drops
    expired tasks (``on_expiry="drop"``).
    """


class UniqueNotSupportedError(AsyncTasQError, TypeError):
    """A unique task was dispatched through a driver that cannot hold claims (SQS,
    RabbitMQ): nothing was queued. The message names the drivers that can."""


class LimitsNotSupportedError(AsyncTasQError, TypeError):
    """A task with ``concurrency_limit`` or ``rate_limit`` was dispatched through a driver
    that cannot hold claims (SQS, RabbitMQ): nothing was queued (a worker given such a
    message dead-letters it). The message names the drivers that can."""


class TaskFailedError(AsyncTasQError):
    """Awaiting a result: the task failed for good (it was dead-lettered).

    Attributes:
        task_id: The task's id.
        exception_type: Qualified name of the exception its last run raised.
        message: That exception's message.
    """

    def __init__(self, task_id: str, exception_type: str, message: str) -> None:
        super().__init__(f"task {task_id} failed for good: {exception_type}: {message}")
        self.task_id = task_id
        self.exception_type = exception_type
        self.message = message


class ResultTimeoutError(AsyncTasQError, TimeoutError):
    """Awaiting a result: none arrived within the timeout (the task may still run)."""


class ResultNotKeptError(AsyncTasQError, LookupError):
    """Awaiting a result the task does not keep (no ``keep_result``): none will ever arrive,
    so it is raised at once. Not a `ResultTimeoutError`: a loop that waits again after a
    timeout must not spin on it."""
