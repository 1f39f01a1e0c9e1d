"""SQLAlchemy models as AsyncTasQ task arguments.

Installed, this package registers a serializer hook (entry-point group
``asynctasq.serializer_hooks``): a mapped instance passed to a task travels as its class and
primary key, and the worker fetches the row fresh with the session configured on the model
(``Base._asynctasq_session_factory`` or ``Model._asynctasq_session_var``).
"""

from .after_commit import dispatch_after_commit
from .errors import ModelNotFoundError, SessionNotConfiguredError
from .factory import worker_session_factory
from .hook import TAG, SQLAlchemyModelHook
from .policy import OnMissing, on_missing, set_default_on_missing

__all__ = [
    "TAG",
    "ModelNotFoundError",
    "OnMissing",
    "SQLAlchemyModelHook",
    "SessionNotConfiguredError",
    "dispatch_after_commit",
    "on_missing",
    "set_default_on_missing",
    "worker_session_factory",
]
