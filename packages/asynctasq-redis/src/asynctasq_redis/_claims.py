"""Named claims (`ClaimStore`): one string key per claim, holding its holder, with ``PX``.

Why this shape:

* A claim is one key (`claim_key`), so Redis expires it by itself on the server's clock (a
  crashed holder never keeps one, and workers on skewed machines agree) and every call
  touches one key: the scripts stay atomic on a cluster, and claims spread over its nodes.
* Taking a claim is compare-then-set, released is compare-then-delete: each is one Lua
  script, so one round trip and atomic however many workers race for a key. (``SET NX GET``
  would do the plain case alone, but only from Redis 7.0; the driver supports 6.2.)
* A holder read back is cut to `MAX_HOLDER_BYTES` on the server and decoded leniently: a
  value written behind the driver's back costs bounded work and never fails a decode.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.drivers.claims import (
    MAX_CLAIM_HOLDER_LENGTH,
    check_claim,
    check_claim_holder,
    check_claim_key,
)
from asynctasq_redis._keys import claim_key
from asynctasq_redis.scripts import LuaScript

MAX_HOLDER_BYTES = 4 * MAX_CLAIM_HOLDER_LENGTH
"""Most bytes of a holder returned (the longest valid holder in UTF-8)."""

_CLAIM = LuaScript(
    "claim",
    r"""
-- KEYS: the claim key; ARGV: holder, ttl_ms, '1' when replacing else '0', replace,
-- bytes to return at most. Returns nil when taken, else the current holder.
local current = redis.call('GET', KEYS[1])
if current and not (ARGV[3] == '1' and current == ARGV[4]) then
  return string.sub(current, 1, tonumber(ARGV[5]))
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
""",
)

_RELEASE = LuaScript(
    "release_claim",
    r"""
-- KEYS: the claim key; ARGV: holder. Returns 1 when it held the claim (now deleted), else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
""",
)

_READ = LuaScript(
    "read_claim",
    r"""
-- KEYS: the claim key; ARGV: bytes to return at most. Returns the holder or nil.
local current = redis.call('GET', KEYS[1])
if current then return string.sub(current, 1, tonumber(ARGV[1])) end
return false
""",
)


def _holder(found: bytes | None) -> str | None:
    return None if found is None else found.decode("utf-8", "replace")


class Claims:
    """`ClaimStore` for `RedisDriver` (mixed in; uses its client and prefix)."""

    prefix: str
    _bound: Callable[[], Redis | RedisCluster]

    async def claim(
        self, key: str, holder: str, ttl: float, *, replace: str | None = None
    ) -> str | None:
        """Make `holder` hold `key` for `ttl` seconds (rounded to milliseconds, at least
        one) when it is free or held by `replace`: one script call. Returns None when
        taken, else the current holder.

        Raises:
            ValueError: An argument breaks the rules of `asynctasq.drivers.claims`.
        """
        seconds = check_claim(key, holder, ttl, replace)
        args = (
            holder.encode(),
            max(round(seconds * 1000), 1),
            b"0" if replace is None else b"1",
            b"" if replace is None else replace.encode(),
            MAX_HOLDER_BYTES,
        )
        keys = (claim_key(self.prefix, key).encode(),)
        found: bytes | None = await _CLAIM(self._bound(), keys, args)
        return _holder(found)

    async def release_claim(self, key: str, holder: str) -> bool:
        """End the claim on `key` if `holder` holds it (one script call); whether it did."""
        check_claim_key(key)
        check_claim_holder(holder)
        keys = (claim_key(self.prefix, key).encode(),)
        return bool(await _RELEASE(self._bound(), keys, (holder.encode(),)))

    async def read_claim(self, key: str) -> str | None:
        """The current holder of `key`, or None (nobody, or expired)."""
        check_claim_key(key)
        keys = (claim_key(self.prefix, key).encode(),)
        found: bytes | None = await _READ(self._bound(), keys, (MAX_HOLDER_BYTES,))
        return _holder(found)
