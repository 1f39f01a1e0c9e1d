"""The serializer hook: a Django model instance travels as ``[class, primary key]``.

On the wire: ``{"__aq__": "django", "v": ["shop.models:Product", 5]}``, with the database
alias as a third element when the instance came from another database than ``default``. A
composite primary key (Django 5.2+) travels as a tuple. The worker imports the class through
core's import guard and fetches the row fresh with the model's default manager.
"""

from __future__ import annotations

from typing import Any, Final

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.models import Model

from . import _classref, policy

TAG: Final = "django"


def is_model_class(cls: type) -> bool:
    """Whether ``cls`` is a concrete (or proxy) Django model class."""
    return issubclass(cls, Model) and not cls._meta.abstract


def _fetch(model: type[Model], pk: Any, using: str | None) -> Model | None:
    """The row, in Django's sync world (run by `sync_to_async` on its thread)."""
    alias = using or router.db_for_read(model) or DEFAULT_DB_ALIAS
    connection = connections[alias]
    if not connection.in_atomic_block:
        # A worker has no request cycle to recycle connections: drop a broken or expired
        # one (CONN_MAX_AGE, CONN_HEALTH_CHECKS) here, as Django does between requests.
        connection.close_if_unusable_or_obsolete()
    try:
        return model._default_manager.db_manager(alias).get(pk=pk)
    except model.DoesNotExist:
        return None


_fetch_async = sync_to_async(_fetch, thread_sensitive=True)


class DjangoModelHook:
    """Serializer hook for Django model instances (registered by the entry point)."""

    tag: Final = TAG

    def __repr__(self) -> str:
        return "DjangoModelHook()"

    def matches(self, obj: object) -> bool:
        """Whether ``obj`` is a Django model instance."""
        return isinstance(obj, Model)

    def encode(self, obj: Any) -> list[Any]:
        """``[module:qualname, pk]`` (plus the database alias when not the default).

        Raises:
            ValueError: ``obj`` is not saved yet (no primary key).
            TypeError: Its class is defined inside a function.
        """
        pk = obj.pk
        if pk is None or (isinstance(pk, tuple) and None in pk):
            raise ValueError(
                f"{type(obj).__qualname__} instance has no primary key yet: save it before "
                "dispatching, or use dispatch_after_commit(task)"
            )
        payload = [_classref.class_ref(type(obj)), pk]
        db = obj._state.db
        if db is not None and db != DEFAULT_DB_ALIAS:
            payload.append(db)
        return payload

    async def decode(self, data: Any) -> Any:
        """Fetch the row again; apply the on-missing policy.

        Raises:
            DeserializationError: The payload or the class it names is not acceptable.
            ModelNotFoundError: The row is gone and the policy is ``"error"``.
        """
        if not isinstance(data, list) or len(data) not in (2, 3):
            raise _classref.malformed(TAG, data)
        ref, pk = data[0], data[1]
        using = data[2] if len(data) == 3 and isinstance(data[2], str) else None
        cls = _classref.resolve_class(ref, tag=TAG, is_model=is_model_class)
        obj = await _fetch_async(cls, pk, using)
        if obj is None:
            policy.missing(cls, ref, pk)
        return obj
