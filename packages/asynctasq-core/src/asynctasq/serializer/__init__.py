"""The AsyncTasQ serializer: task arguments <-> JSON, exactly.

`to_wire` turns a Python value into a JSON-native tree in which every value JSON cannot
hold is a *tagged node* ``{"__aq__": tag, "v": payload}``; `from_wire` turns it back.
Round-trips are exact: datetimes keep their fold and timezone, tuples stay tuples, ``True``
stays ``True``, dict keys keep their types, Decimals keep their exponent, big ints and
non-finite floats survive, and a user dict that contains ``"__aq__"`` comes back unchanged.

Extend it with `register_type` (synchronous codecs) or a `SerializerHook` (asynchronous
decoding, e.g. ORM models fetched again in the worker), registered directly or through the
``asynctasq.serializer_hooks`` entry-point group.

Decoding reads what anyone with access to the broker wrote, so it is bounded: see
`asynctasq.serializer.limits` for what one message may make the decoder do.

Example:
    >>> from datetime import date
    >>> tree = to_wire({"when": date(2024, 5, 1), "ids": (1, 2)})
    >>> tree
    {'when': {'__aq__': 'date', 'v': '2024-05-01'}, 'ids': {'__aq__': 'tuple', 'v': [1, 2]}}
    >>> from_wire(tree)
    {'when': datetime.date(2024, 5, 1), 'ids': (1, 2)}
"""

from ._tags import TAG_KEY, VALUE_KEY
from .decode import from_wire, loads
from .decode_async import from_wire_async
from .encode import dumps, to_wire, to_wire_with_info
from .errors import DeserializationError, SerializationError, SerializerError
from .guard import ImportGuard, get_import_guard, set_import_guard
from .hooks import SerializerHook, TypeCodec
from .plugins import ENTRY_POINT_GROUP, discover_hooks
from .registry import HookPlugin, isolated_registry, register_hook, register_type

__all__ = [
    "ENTRY_POINT_GROUP",
    "TAG_KEY",
    "VALUE_KEY",
    "DeserializationError",
    "HookPlugin",
    "ImportGuard",
    "SerializationError",
    "SerializerError",
    "SerializerHook",
    "TypeCodec",
    "discover_hooks",
    "dumps",
    "from_wire",
    "from_wire_async",
    "get_import_guard",
    "isolated_registry",
    "loads",
    "register_hook",
    "register_type",
    "set_import_guard",
    "to_wire",
    "to_wire_with_info",
]
