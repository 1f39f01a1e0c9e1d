"""Tortoise ORM models as AsyncTasQ task arguments.

Installed, this package registers a serializer hook (entry-point group
``asynctasq.serializer_hooks``): a model instance passed to a task travels as its class and
primary key, and the worker fetches the row fresh. Tell the worker how to initialise
Tortoise with `init_on_first_use` in a module it imports at start-up.
"""

from .errors import ModelNotFoundError, TortoiseNotInitializedError
from .hook import TAG, TortoiseModelHook
from .policy import OnMissing, on_missing, set_default_on_missing
from .setup import ensure_initialized, init_on_first_use

__all__ = [
    "TAG",
    "ModelNotFoundError",
    "OnMissing",
    "TortoiseModelHook",
    "TortoiseNotInitializedError",
    "ensure_initialized",
    "init_on_first_use",
    "on_missing",
    "set_default_on_missing",
]
