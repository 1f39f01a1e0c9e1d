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
from .decode import async_results, decode_payload, from_wire, node_tag
from .errors import DecodeFailure, short_repr

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
        DeserializationError: As `from_wire`.
    """
    try:
        pending = _find_hook_nodes(tree, [], [], set())
    except RecursionError:
        pending = []  # from_wire below reports it
    if not pending:
        return from_wire(tree, path)
    results: dict[int, Any] = {}
    await _resolve_all(pending, results, path, "")
    token = async_results.set(results)
    try:
        return from_wire(tree, path)
    finally:
        async_results.reset(token)


_PendingNode = tuple[dict[str, Any], str]
"""A hook node and its path below the root."""


def _is_hook_tag(tag: object) -> bool:
    if type(tag) is not str or tag in _tags.BUILTIN_TAGS:
        return False
    registry = _registry.REGISTRY
    if tag in registry.hooks_by_tag:
        return True
    if tag in registry.codecs_by_tag or not plugins.ensure_discovered():
        return False
    return tag in _registry.REGISTRY.hooks_by_tag


def _find_hook_nodes(
    x: Any, trail: list[str], found: list[_PendingNode], seen: set[int]
) -> list[_PendingNode]:
    """Collect the outermost hook nodes under ``x`` (malformed nodes are left to the decoder)."""
    t = type(x)
    if t is dict:
        if _TAG not in x:
            for k, v in x.items():
                if type(v) is dict or type(v) is list:
                    trail.append(f"[{short_repr(k)}]")
                    _find_hook_nodes(v, trail, found, seen)
                    trail.pop()
            return found
        tag = x.get(_TAG)
        payload = x.get(_V)
        if tag == _tags.DICT and type(payload) is dict:
            for k, v in payload.items():  # the escaped dict's own keys are not nodes
                trail.append(f"[{short_repr(k)}]")
                _find_hook_nodes(v, trail, found, seen)
                trail.pop()
        elif _is_hook_tag(tag):
            if id(x) not in seen:
                seen.add(id(x))
                found.append((x, "".join(trail)))
        else:
            _find_hook_nodes(payload, trail, found, seen)
    elif t is list:
        for i, v in enumerate(x):
            if type(v) is dict or type(v) is list:
                trail.append(f"[{i}]")
                _find_hook_nodes(v, trail, found, seen)
                trail.pop()
    return found


async def _resolve_all(
    pending: list[_PendingNode], results: dict[int, Any], root: str, above: str
) -> None:
    """Decode ``pending`` concurrently; ``above`` is the path from ``root`` to their tree."""
    if len(pending) == 1:
        await _resolve(pending[0], results, root, above)
        return
    tasks = [asyncio.ensure_future(_resolve(item, results, root, above)) for item in pending]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # gather leaves the other decodes running after the first error: stop them.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _resolve(item: _PendingNode, results: dict[int, Any], root: str, above: str) -> None:
    node, where = item
    tag: str = node[_TAG]
    hook = _registry.REGISTRY.hooks_by_tag[tag]
    location = above + where
    payload = node.get(_V)
    inner = _find_hook_nodes(payload, [], [], set())
    if inner:
        await _resolve_all(inner, results, root, f"{location}<{tag} payload>")
    token = async_results.set(results)
    try:
        node_tag(node)
        data = decode_payload(payload, tag)
    except DecodeFailure as failure:
        failure.tag = failure.tag or tag
        if location:
            failure.at(location)
        raise failure.to_error(root) from failure.__cause__
    finally:
        async_results.reset(token)
    result = hook.decode(data)
    # The protocol says async; a plain function returning the object is accepted as well.
    results[id(node)] = await result if inspect.isawaitable(result) else result
