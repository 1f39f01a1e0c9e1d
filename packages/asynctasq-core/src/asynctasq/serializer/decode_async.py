"""Decoding with asynchronous serializer hooks (ORM models fetched again in the worker).

`from_wire_async` works in two steps: it finds the outermost hook nodes, awaits all their
decodes concurrently (a hook payload holding further hook nodes resolves those first), then
runs the ordinary synchronous decoder, which picks each hook result up by node identity.
Results therefore land wherever the node sat: in dicts, lists, tuples, sets, keys, payloads.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Final

from . import _tags, plugins
from . import registry as _registry
from .decode import (
    Budget,
    async_results,
    budget,
    decode_payload,
    from_wire,
    node_tag,
    spend_hook_value,
)
from .errors import DecodeFailure, DeserializationError, short_repr

_TAG: Final = _tags.TAG_KEY
_V: Final = _tags.VALUE_KEY


async def from_wire_async(tree: Any, path: str = "payload") -> Any:
    """Like `from_wire`, and await every serializer-hook decode, all concurrently.

    Needed only for trees whose encoding reported ``uses_async`` (see `to_wire_with_info`);
    on other trees it costs one extra scan over `from_wire`.

    Exceptions raised by a hook's ``decode`` propagate unchanged (a missing row or a lost
    database connection is the hook's to report), after the other pending decodes are
    cancelled.

    Args:
        tree: A JSON-native tree.
        path: What ``tree`` is, for error messages.

    Returns:
        The decoded value, with hook results in place of their nodes.

    Raises:
        DeserializationError: As `from_wire`, or the tree holds more than
            `~asynctasq.serializer.limits.MAX_HOOK_VALUES` hook values.
    """
    if budget.get() is not None:
        return await _from_wire_async(tree, path)
    token = budget.set(Budget())
    try:
        return await _from_wire_async(tree, path)
    finally:
        budget.reset(token)


async def _from_wire_async(tree: Any, path: str) -> Any:
    try:
        pending = _find_hook_nodes(tree, [], set())
    except RecursionError:
        pending = []  # from_wire below reports it
    except DecodeFailure as failure:
        raise failure.to_error(path) from None
    if not pending:
        return from_wire(tree, path)
    results: dict[int, Any] = {}
    await _resolve_all(pending, results, path, _Place(tree, None, ""))
    token = async_results.set(results)
    try:
        return from_wire(tree, path)
    finally:
        async_results.reset(token)


class _Place:
    """Where a batch of hook nodes was found: in ``tree``, the payload of the hook node
    ``parent`` (None: the whole message) of tag ``tag``.

    Paths are only worked out when a decode fails: building one per hook node up front costs
    the depth of the tree for each of them.
    """

    __slots__ = ("parent", "tag", "tree")

    def __init__(self, tree: Any, parent: tuple[dict[str, Any], _Place] | None, tag: str) -> None:
        self.tree = tree
        self.parent = parent
        self.tag = tag

    def locate(self, node: dict[str, Any]) -> str:
        """The path of ``node`` (found in this place's tree) below the root."""
        above = ""
        if self.parent is not None:
            parent_node, parent_place = self.parent
            above = f"{parent_place.locate(parent_node)}<{self.tag} payload>"
        return above + (_trail_to(self.tree, node, []) or "")


def _is_hook_tag(tag: object) -> bool:
    if type(tag) is not str or tag in _tags.BUILTIN_TAGS:
        return False
    registry = _registry.REGISTRY
    if tag in registry.hooks_by_tag:
        return True
    if tag in registry.codecs_by_tag or not plugins.ensure_discovered():
        return False
    return tag in _registry.REGISTRY.hooks_by_tag


def _find_hook_nodes(x: Any, found: list[dict[str, Any]], seen: set[int]) -> list[dict[str, Any]]:
    """Collect the outermost hook nodes under ``x`` (malformed nodes are left to the decoder).

    Raises:
        DecodeFailure: The message holds more hook nodes than its budget allows.
    """
    t = type(x)
    if t is dict:
        if _TAG not in x:
            for v in x.values():
                if type(v) is dict or type(v) is list:
                    _find_hook_nodes(v, found, seen)
            return found
        tag = x.get(_TAG)
        payload = x.get(_V)
        if tag == _tags.DICT and type(payload) is dict:
            for v in payload.values():  # the escaped dict's own keys are not nodes
                _find_hook_nodes(v, found, seen)
        elif _is_hook_tag(tag):
            if id(x) not in seen:
                seen.add(id(x))
                found.append(x)
                spend_hook_value(tag)
        else:
            _find_hook_nodes(payload, found, seen)
    elif t is list:
        for v in x:
            if type(v) is dict or type(v) is list:
                _find_hook_nodes(v, found, seen)
    return found


def _trail_to(x: Any, target: dict[str, Any], trail: list[str]) -> str | None:
    """The path segments from ``x`` down to the node ``target``, as `_find_hook_nodes` walks."""
    if x is target:
        return "".join(trail)
    t = type(x)
    if t is dict:
        if _TAG not in x:
            items: Any = x.items()
        elif x.get(_TAG) == _tags.DICT and type(x.get(_V)) is dict:
            items = x[_V].items()
        else:
            return _trail_to(x.get(_V), target, trail)
        for k, v in items:
            if type(v) is dict or type(v) is list:
                trail.append(f"[{short_repr(k)}]")
                where = _trail_to(v, target, trail)
                if where is not None:
                    return where
                trail.pop()
    elif t is list:
        for i, v in enumerate(x):
            if type(v) is dict or type(v) is list:
                trail.append(f"[{i}]")
                where = _trail_to(v, target, trail)
                if where is not None:
                    return where
                trail.pop()
    return None


async def _resolve_all(
    pending: list[dict[str, Any]], results: dict[int, Any], root: str, place: _Place
) -> None:
    """Decode ``pending`` (found in ``place``) concurrently."""
    if len(pending) == 1:
        await _resolve(pending[0], results, root, place)
        return
    tasks = [asyncio.ensure_future(_resolve(node, results, root, place)) for node in pending]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # gather leaves the other decodes running after the first error: stop them.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _resolve(node: dict[str, Any], results: dict[int, Any], root: str, place: _Place) -> None:
    tag: str = node[_TAG]
    hook = _registry.REGISTRY.hooks_by_tag[tag]
    payload = node.get(_V)
    try:
        inner = _find_hook_nodes(payload, [], set())
    except DecodeFailure as failure:
        raise _located(failure, tag, root, place, node) from failure.__cause__
    if inner:
        await _resolve_all(inner, results, root, _Place(payload, (node, place), tag))
    token = async_results.set(results)
    try:
        node_tag(node)
        data = decode_payload(payload, tag)
    except DecodeFailure as failure:
        raise _located(failure, tag, root, place, node) from failure.__cause__
    finally:
        async_results.reset(token)
    result = hook.decode(data)
    # The protocol says async; a plain function returning the object is accepted as well.
    results[id(node)] = await result if inspect.isawaitable(result) else result


def _located(
    failure: DecodeFailure, tag: str, root: str, place: _Place, node: dict[str, Any]
) -> DeserializationError:
    failure.tag = failure.tag or tag
    location = place.locate(node)
    if location:
        failure.at(location)
    return failure.to_error(root)
