"""Extension contracts: simple synchronous type codecs and asynchronous serializer hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SerializerHook(Protocol):
    """A plugin that encodes some objects and decodes them back *asynchronously*.

    Meant for ORM packages: ``encode`` turns a model instance into its primary key (plus
    whatever identifies the model), ``decode`` fetches the row again in the worker. The
    worker awaits every hook decode of one task's arguments concurrently.

    Hooks are registered with `register_hook` or through the entry-point group
    ``asynctasq.serializer_hooks`` (the entry point may name a hook instance, a hook class
    or a zero-argument factory).
    """

    @property
    def tag(self) -> str:
        """The tag written on the wire; unique among all registered types and hooks."""
        ...

    def matches(self, obj: object) -> bool:
        """Whether this hook encodes ``obj``. Called only for values no built-in handles."""
        ...

    def encode(self, obj: Any) -> Any:
        """Return a JSON-representable payload that identifies ``obj``."""
        ...

    async def decode(self, data: Any) -> Any:
        """Rebuild the object from the payload ``encode`` returned."""
        ...


@dataclass(frozen=True, slots=True)
class TypeCodec:
    """A synchronous codec registered with `register_type`.

    Attributes:
        cls: The class it handles (subclasses too, through their MRO; the nearest wins).
        tag: The tag written on the wire.
        encode: Turns an instance into a payload; the payload may hold any serializable
            value (it goes through the serializer again).
        decode: Turns the decoded payload back into an instance.
    """

    cls: type
    tag: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
