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
* A value no driver writes (longer than any holder, not UTF-8, with a NUL, without an
  expiry, or with one past `MAX_CLAIM_TTL`) is no claim: it reads as nobody and is taken
  over, so a forged value holds a schedule tick, a unique key or a limit only as long as a
  real claim could.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.drivers.claims import (
    MAX_CLAIM_HOLDER_LENGTH,
    MAX_CLAIM_TTL,
    check_claim,
    check_claim_holder,
    check_claim_key,
)
from asynctasq_redis._keys import claim_key
from asynctasq_redis.scripts import LuaScript

MAX_HOLDER_BYTES = 4 * MAX_CLAIM_HOLDER_LENGTH
"""Most bytes of a holder (the longest valid holder in UTF-8)."""
_MAX_TTL_MS = round(MAX_CLAIM_TTL * 1000) + 1000  # a second of slack for rounding

# `is_utf8` comes with the shared helpers, which `LuaScript` adds to a script calling one.
_HELD = r"""
-- The holder of claim `key`, or false when there is none or its value is no claim a driver
-- wrote: longer than any holder, not UTF-8 or with a NUL (a holder is neither), no expiry,
-- or one past the longest ttl.
local function held(key, max_bytes, max_ttl_ms)
  local current = redis.call('GET', key)
  if not current or #current > max_bytes then return false end
  if string.find(current, '\0', 1, true) or not is_utf8(current) then return false end
  -- characters: the bytes that do not continue one (checked only when it could be too long)
  if #current > max_bytes / 4 and #string.gsub(current, '[\128-\191]', '') > max_bytes / 4 then
    return false
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or ttl > max_ttl_ms then return false end
  return current
end
"""

_CLAIM = LuaScript(
    "claim",
    _HELD
    + r"""
-- KEYS: the claim key; ARGV: holder, ttl_ms, '1' when replacing else '0', replace,
-- bytes a holder has at most, longest ttl_ms. Returns nil when taken, else the current
-- holder.
local current = held(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[6]))
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
    _HELD
    + r"""
-- KEYS: the claim key; ARGV: bytes a holder has at most, longest ttl_ms. Returns the
-- holder or nil.
local current = held(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if current then return current end
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
            _MAX_TTL_MS,
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
        found: bytes | None = await _READ(self._bound(), keys, (MAX_HOLDER_BYTES, _MAX_TTL_MS))
        return _holder(found)
