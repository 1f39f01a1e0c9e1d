"""Django models as AsyncTasQ task arguments.

Installed, this package registers a serializer hook (entry-point group
``asynctasq.serializer_hooks``): a model instance passed to a task travels as its class and
primary key, and the worker fetches the row fresh with the async ORM. Configure Django
(settings module and ``django.setup()``) in the worker before it imports task modules.
"""

from .after_commit import dispatch_after_commit
from .errors import ModelNotFoundError
from .hook import TAG, DjangoModelHook
from .policy import OnMissing, on_missing, set_default_on_missing

__all__ = [
    "TAG",
    "DjangoModelHook",
    "ModelNotFoundError",
    "OnMissing",
    "dispatch_after_commit",
    "on_missing",
    "set_default_on_missing",
]
