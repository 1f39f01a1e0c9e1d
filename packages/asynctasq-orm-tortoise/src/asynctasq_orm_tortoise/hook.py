"""The serializer hook: a Tortoise model instance travels as ``[class, primary key]``.

On the wire: ``{"__aq__": "tortoise", "v": ["blog.models:Post", 10]}``. The worker imports
the class through core's import guard, initialises Tortoise if needed (see `setup`), and
fetches the row fresh.
"""

from __future__ import annotations

from typing import Any, Final, cast

from tortoise.models import Model

from . import _classref, policy
from .setup import ensure_initialized

TAG: Final = "tortoise"


def is_model_class(cls: type) -> bool:
    """Whether ``cls`` is a concrete Tortoise model class."""
    return issubclass(cls, Model) and not cls._meta.abstract


class TortoiseModelHook:
    """Serializer hook for Tortoise ORM model instances (registered by the entry point)."""

    tag: Final = TAG

    def __repr__(self) -> str:
        return "TortoiseModelHook()"

    def matches(self, obj: object) -> bool:
        """Whether ``obj`` is a Tortoise model instance."""
        return isinstance(obj, Model)

    def encode(self, obj: Any) -> list[Any]:
        """``[module:qualname, pk]``.

        Raises:
            ValueError: ``obj`` is not saved yet (no primary key).
            TypeError: Its class is defined inside a function.
        """
        pk = obj.pk
        if pk is None:
            raise ValueError(
                f"{type(obj).__qualname__} instance has no primary key yet: save it before "
                "dispatching"
            )
        return [_classref.class_ref(type(obj)), pk]

    async def decode(self, data: Any) -> Any:
        """Fetch the row again; apply the on-missing policy.

        Raises:
            DeserializationError: The payload or the class it names is not acceptable.
            ModelNotFoundError: The row is gone and the policy is ``"error"``.
            TortoiseNotInitializedError: Tortoise is not initialised and nothing says how.
        """
        if not isinstance(data, list) or len(data) != 2:
            raise _classref.malformed(TAG, data)
        ref, pk = data
        cls = cast(type[Model], _classref.resolve_class(ref, tag=TAG, is_model=is_model_class))
        await ensure_initialized()
        obj = await cls.get_or_none(pk=pk)
        if obj is None:
            policy.missing(cls, ref, pk)
        return obj
