"""Bounds on the work one message can make the decoder do.

Task arguments come from the queue, and anyone who can write to the broker chooses every byte
of them. Decoding runs on the worker's event loop, so the decoder must stay roughly linear in
the message size and must not grow the worker's memory for good. The limits below are far
above what real task arguments use; a message beyond one is refused with a
`DeserializationError` naming the limit (the worker dead-letters it). The encoder refuses
what the decoder would refuse wherever it can tell (`MAX_INT_BITS`).
"""

from __future__ import annotations

from typing import Final

MAX_TAGGED_VALUES: Final = 1_000_000
"""Tagged nodes (tuples, sets, datetimes, Decimals, big ints, Enum members, registered types,
hook values...) decoded for one message, all levels together. Plain JSON values are not
counted: their cost is the JSON parser's."""

MAX_HOOK_VALUES: Final = 10_000
"""Serializer-hook values (ORM model instances fetched again in the worker) in one message.
Each one is an awaited decode (typically a database query) started concurrently with the
others; pass primary keys instead of more instances than this."""

MAX_EQUAL_HASHES: Final = 16
"""Members of one set or frozenset (keys of one dict) that may share a hash value.

Python keeps them in one probe chain, so ``n`` of them cost up to ``n**2`` comparisons: ints
that differ by multiples of ``2**61 - 1``, UUIDs and Decimals built on such ints, and tuples
ending in them are easy to collide on purpose (60,000 such ints took half a minute to put in
a set). Distinct values with one hash are rare in real data (the powers of two below
``2**976`` are within the limit), and with it a hostile 10 MB message costs at most about
twice the time of an ordinary one."""

MAX_INT_DIGITS: Final = 4300
"""Decimal digits of a big int on the wire: Python's own default (`sys.int_max_str_digits`),
beyond which decimal conversion is quadratic. Larger ints travel in hex."""

MAX_INT_BITS: Final = 1_000_000
"""Bits of the largest int the serializer carries (hex, linear to convert)."""

MAX_FLAG_COMBINATIONS: Final = 4096
"""Combined members of one `enum.Flag` class that decoding may create.

Python caches every combined Flag value it creates in the class, for the life of the process,
so a message naming a new combination each time would grow the worker without bound. A value
already cached, or made of the class's defined members while fewer than this many
combinations exist, decodes; any other is refused. Every combination of a class with up to
12 single-bit members fits."""

MAX_ZONE_KEY_LENGTH: Final = 255
"""Characters in a ``zoneinfo`` key (real ones are under 40): the key becomes a file path."""
