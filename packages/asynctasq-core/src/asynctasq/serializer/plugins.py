"""Discovery of serializer hooks from the ``asynctasq.serializer_hooks`` entry-point group.

Discovery is lazy and happens at most once per registry: the first time the encoder meets a
value nothing handles, or the decoder meets a tag nobody registered. Plain payloads never
pay for the metadata scan. A plugin that fails to load does not stop the others; it is
logged and named (with its distribution) in the error for any value it might have handled.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from typing import Any, Final

from . import registry
from .registry import HookPlugin

ENTRY_POINT_GROUP: Final = "asynctasq.serializer_hooks"

logger = logging.getLogger(__name__)


def _entry_points() -> Iterable[Any]:
    """The group's entry points (a seam: tests replace it to fake installed plugins)."""
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _distribution_of(entry_point: Any) -> str | None:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None
    try:
        return f"{dist.name} {dist.version}"
    except Exception:  # metadata of a broken install must not hide the real error
        return None


def _instantiate(target: object) -> object:
    """An entry point may name a hook instance, a hook class or a zero-argument factory."""
    if isinstance(target, type):
        return target()
    if all(hasattr(target, name) for name in ("tag", "matches", "encode", "decode")):
        return target
    if callable(target):
        return target()
    raise TypeError(f"{target!r} is neither a serializer hook, a hook class nor a factory")


def _load(entry_point: Any) -> HookPlugin:
    name = str(getattr(entry_point, "name", "?"))
    value = str(getattr(entry_point, "value", "?"))
    distribution = _distribution_of(entry_point)
    try:
        hook: Any = _instantiate(entry_point.load())
        registry.register_hook(hook)
    except Exception as exc:
        plugin = HookPlugin(name, value, distribution, None, f"{type(exc).__name__}: {exc}")
        logger.warning("%s failed to load: %s", plugin.describe(), plugin.error, exc_info=True)
        return plugin
    return HookPlugin(name, value, distribution, hook.tag, None)


def discover_hooks() -> tuple[HookPlugin, ...]:
    """Load the hooks declared by installed distributions, once, and report on each.

    Runs by itself when first needed; call it to load plugins early or to list them (for
    example in ``asynctasq doctor``).

    Returns:
        One record per entry point in the group: its name, target, distribution, and the
        tag of the hook it registered or the error that stopped it.
    """
    with registry.LOCK:
        state = registry.REGISTRY
        if not state.discovered:
            try:
                entry_points = list(_entry_points())
            except Exception:
                # Corrupt metadata elsewhere in the environment must not break every encode.
                logger.warning("cannot read entry points of %s", ENTRY_POINT_GROUP, exc_info=True)
                entry_points = []
            state.plugins.extend(_load(entry_point) for entry_point in entry_points)
            state.discovered = True
        return tuple(state.plugins)


def ensure_discovered() -> bool:
    """Discover hooks unless done already.

    Returns:
        True when this call ran discovery (so a failed lookup is worth retrying).
    """
    if registry.REGISTRY.discovered:
        return False
    discover_hooks()
    return True


def failure_notes() -> str:
    """``"; note: <plugin> failed to load: <error>"`` for every broken plugin, or ``""``."""
    return "".join(
        f"; note: {plugin.describe()} failed to load: {plugin.error}"
        for plugin in registry.REGISTRY.plugins
        if plugin.error is not None
    )
