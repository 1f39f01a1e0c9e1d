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


class TaskNotFoundError(AsyncTasQError, LookupError):
    """A message names task code the worker cannot or may not load."""


class MalformedMessageError(AsyncTasQError, ValueError):
    """A message's bytes are not a task envelope this version understands."""


class PermanentError(AsyncTasQError):
    """Raise it (or a subclass) from a task to fail for good at once, without retries.

    Errors raised while a task is rebuilt from its message are retried like task errors
    unless they are permanent (a malformed message, refused code, or a subclass of this).
    """


class ModelNotFoundError(PermanentError, LookupError):
    """A model instance passed to a task no longer exists when the task runs."""


class TaskLostError(AsyncTasQError):
    """A task was delivered more often than allowed without finishing.

    Its worker died or lost the lease each time (for example a task that crashes the process).
    """


class TaskTimeoutError(AsyncTasQError, TimeoutError):
    """A task ran longer than its timeout and was stopped."""
