"""The serializer hook: a mapped instance travels as ``[class, *primary key]``.

On the wire: ``{"__aq__": "sqlalchemy", "v": ["app.models:User", 42]}`` (a composite key adds
one element per column, in the mapper's primary-key order). The worker imports the class
through core's import guard and fetches the row fresh (see `sessions`).
"""

from __future__ import annotations

import weakref
from typing import Any, Final

from sqlalchemy import inspect
from sqlalchemy.orm import InstanceState, Mapper

from . import _classref, policy, sessions

TAG: Final = "sqlalchemy"


def is_mapped_class(cls: type) -> bool:
    """Whether ``cls`` is an ORM-mapped class."""
    return isinstance(inspect(cls, raiseerr=False), Mapper)


def primary_key(obj: Any) -> tuple[Any, ...]:
    """The identity of a mapped instance, without loading anything.

    Raises:
        ValueError: The instance has no primary key yet (not flushed).
    """
    state: InstanceState[Any] = inspect(obj)
    identity = state.identity
    if identity is None:
        identity = tuple(state.mapper.primary_key_from_instance(obj))
        if any(value is None for value in identity):
            raise ValueError(
                f"{type(obj).__qualname__} instance has no primary key yet: flush the session "
                "before dispatching, or use dispatch_after_commit(session, task)"
            )
    return tuple(identity)


class SQLAlchemyModelHook:
    """Serializer hook for SQLAlchemy ORM instances (registered by the entry point)."""

    tag: Final = TAG

    def __init__(self) -> None:
        self._mapped: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return "SQLAlchemyModelHook()"

    def matches(self, obj: object) -> bool:
        """Whether ``obj`` is an instance of a mapped class (cached per class)."""
        cls = type(obj)
        try:
            return self._mapped[cls]
        except KeyError:
            mapped = self._mapped[cls] = is_mapped_class(cls)
            return mapped
        except TypeError:  # a class that cannot be weakly referenced
            return is_mapped_class(cls)

    def encode(self, obj: Any) -> list[Any]:
        """``[module:qualname, *primary key]``.

        Raises:
            ValueError: ``obj`` has no primary key yet.
            TypeError: Its class is defined inside a function.
        """
        return [_classref.class_ref(type(obj)), *primary_key(obj)]

    async def decode(self, data: Any) -> Any:
        """Fetch the row again (see `sessions.fetch`); apply the on-missing policy.

        Raises:
            DeserializationError: The payload or the class it names is not acceptable.
            ModelNotFoundError: The row is gone and the policy is ``"error"``.
            SessionNotConfiguredError: No session is configured for the class.
        """
        if not isinstance(data, list) or len(data) < 2:
            raise _classref.malformed(TAG, data)
        ref = data[0]
        cls = _classref.resolve_class(ref, tag=TAG, is_model=is_mapped_class)
        ident = data[1] if len(data) == 2 else tuple(data[1:])
        obj = await sessions.fetch(cls, ident)
        if obj is None:
            policy.missing(cls, ref, ident)
        return obj
