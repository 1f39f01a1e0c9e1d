"""The process-wide table of registered type codecs and serializer hooks."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from . import _tags
from .hooks import SerializerHook, TypeCodec

NATIVE_TYPES: Final[frozenset[type]] = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        dict,
        list,
        tuple,
        set,
        frozenset,
        bytes,
        bytearray,
        dt.datetime,
        dt.date,
        dt.time,
        dt.timedelta,
        Decimal,
        uuid.UUID,
    }
)
"""Types the serializer handles itself (matched by exact type, before any registration)."""


@dataclass(frozen=True, slots=True)
class HookPlugin:
    """What loading one ``asynctasq.serializer_hooks`` entry point gave.

    Attributes:
        name: The entry point's name.
        value: Its target, ``module:attribute``.
        distribution: ``"name version"`` of the distribution that declares it, when known.
        tag: The tag of the hook it provided, or None when loading failed.
        error: ``"ExceptionType: message"`` when loading failed, else None.
    """

    name: str
    value: str
    distribution: str | None
    tag: str | None
    error: str | None

    def describe(self) -> str:
        """``'name = module:attr' (distribution 'dist 1.0')`` for messages."""
        origin = f" from distribution {self.distribution!r}" if self.distribution else ""
        return f"serializer hook plugin '{self.name} = {self.value}'{origin}"


@dataclass(slots=True)
class _Registry:
    codecs_by_class: dict[type, TypeCodec] = field(default_factory=dict)
    codecs_by_tag: dict[str, TypeCodec] = field(default_factory=dict)
    hooks: list[SerializerHook] = field(default_factory=list)
    """In registration order, which is the order `matches` is asked in."""
    hooks_by_tag: dict[str, SerializerHook] = field(default_factory=dict)
    resolved: dict[type, TypeCodec | None] = field(default_factory=dict)
    """Cache of MRO lookups, misses included, so unknown-but-hooked types walk it once."""
    discovered: bool = False
    plugins: list[HookPlugin] = field(default_factory=list)

    def copy(self) -> _Registry:
        return _Registry(
            dict(self.codecs_by_class),
            dict(self.codecs_by_tag),
            list(self.hooks),
            dict(self.hooks_by_tag),
            {},
            self.discovered,
            list(self.plugins),
        )


REGISTRY = _Registry()
"""The registry in use; replaced wholesale by `isolated_registry`."""

LOCK = threading.RLock()
"""Serializes registration and entry-point discovery (both rare; lookups take no lock)."""


def _check_tag(tag: object, owner: object) -> str:
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"tag of {owner!r} must be a non-empty str, got {tag!r}")
    if tag in _tags.BUILTIN_TAGS:
        raise ValueError(f"tag {tag!r} is reserved by asynctasq.serializer; pick another")
    return tag


def register_type(
    cls: type,
    *,
    tag: str,
    encode: Callable[[Any], Any],
    decode: Callable[[Any], Any],
) -> None:
    """Teach the serializer a type it cannot handle natively.

    Instances of ``cls`` and of its subclasses (through the MRO, the nearest registered
    class wins; an exact match is found first) are written as ``{"__aq__": tag, "v":
    encode(obj)}``; the payload is serialized recursively, so it may contain dates,
    tuples or other registered types. On decode, ``decode(payload)`` rebuilds the object.
    Registering ``cls`` again replaces its codec.

    Args:
        cls: The class to handle.
        tag: Wire name, unique among registered types and hooks. Prefer a namespaced name
            such as ``"myapp.Money"``; the built-in tag names are reserved.
        encode: ``obj -> payload``.
        decode: ``payload -> obj``.

    Raises:
        TypeError: ``cls`` is not a class, a callable is missing or ``tag`` is not a str.
        ValueError: ``cls`` is handled natively, or ``tag`` is reserved or already taken.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_type() needs a class, got {cls!r}")
    if cls in NATIVE_TYPES:
        raise ValueError(f"{cls.__qualname__} is serialized natively and cannot be registered")
    _check_tag(tag, cls)
    if not callable(encode) or not callable(decode):
        raise TypeError(f"encode and decode for {cls.__qualname__} must be callable")
    with LOCK:
        registry = REGISTRY
        taken = registry.codecs_by_tag.get(tag)
        if (taken is not None and taken.cls is not cls) or tag in registry.hooks_by_tag:
            raise ValueError(f"serializer tag {tag!r} is already registered")
        previous = registry.codecs_by_class.get(cls)
        if previous is not None:
            del registry.codecs_by_tag[previous.tag]
        codec = TypeCodec(cls=cls, tag=tag, encode=encode, decode=decode)
        registry.codecs_by_class[cls] = codec
        registry.codecs_by_tag[tag] = codec
        registry.resolved.clear()


def register_hook(hook: SerializerHook) -> None:
    """Register an asynchronous serializer hook (see `SerializerHook`).

    Hooks are asked, in registration order, about values that neither the built-ins nor a
    registered type handle. Registering the same hook (or another instance of the same class
    with the same tag) again is a no-op, so a plugin may both register itself on import and
    be listed as an entry point.

    Args:
        hook: The hook.

    Raises:
        TypeError: ``hook`` lacks ``tag``, ``matches``, ``encode`` or ``decode``.
        ValueError: Its tag is reserved or used by another type or hook.
    """
    tag = _check_tag(getattr(hook, "tag", None), hook)
    for method in ("matches", "encode", "decode"):
        if not callable(getattr(hook, method, None)):
            raise TypeError(f"serializer hook {hook!r} has no callable {method}()")
    with LOCK:
        registry = REGISTRY
        existing = registry.hooks_by_tag.get(tag)
        if existing is not None:
            if existing is hook or type(existing) is type(hook):
                return
            raise ValueError(f"serializer tag {tag!r} is already registered by {existing!r}")
        if tag in registry.codecs_by_tag:
            raise ValueError(f"serializer tag {tag!r} is already registered")
        registry.hooks.append(hook)
        registry.hooks_by_tag[tag] = hook


def codec_for_class(cls: type) -> TypeCodec | None:
    """The codec for ``cls``: its own, else the nearest registered class in its MRO."""
    registry = REGISTRY
    try:
        return registry.resolved[cls]
    except KeyError:
        pass
    codecs = registry.codecs_by_class
    codec = next((codecs[base] for base in cls.__mro__ if base in codecs), None)
    registry.resolved[cls] = codec
    return codec


@contextmanager
def isolated_registry(*, empty: bool = False) -> Iterator[None]:
    """Run a block with its own registry and restore the original afterwards.

    Types and hooks registered inside the block disappear when it ends. Meant for tests,
    including those of plugin packages.

    Args:
        empty: Start from a registry with nothing registered and entry points not yet
            discovered (they are discovered again when first needed), instead of a copy of
            the current one.
    """
    global REGISTRY
    with LOCK:
        saved = REGISTRY
        REGISTRY = _Registry() if empty else saved.copy()
    try:
        yield
    finally:
        with LOCK:
            REGISTRY = saved
