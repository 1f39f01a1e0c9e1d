"""Exceptions raised while turning a model reference back into a model instance."""

from __future__ import annotations

from typing import Any

import asynctasq.errors


class ModelNotFoundError(asynctasq.errors.ModelNotFoundError):
    """The row a task argument refers to no longer exists.

    Raised in the worker while the task is built from its message, so the task is
    dead-lettered at once, without running and without retries (a deleted row does not come
    back). Set ``_asynctasq_on_missing = "none"`` on the model (or call
    `set_default_on_missing`) to pass None to the task instead.

    Attributes:
        model: The model class as ``module:qualname``.
        pk: The primary key that was looked up (a tuple for composite keys).
    """

    def __init__(self, model: str, pk: Any) -> None:
        super().__init__(
            f"{model} with primary key {pk!r} does not exist (deleted after the task was "
            "dispatched?): the task was not run. Set _asynctasq_on_missing = 'none' on the "
            "model to pass None instead"
        )
        self.model = model
        self.pk = pk

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields: it may cross a process boundary (process tasks).
        return (type(self), (self.model, self.pk))
