"""The Lua scripts: every state change of a message is one of these, so it is atomic.

All times come from the Redis server clock (``TIME``), so workers on machines with skewed
clocks agree on due times and lease expiries. Key layout: see `asynctasq_redis._keys`.

A message is in exactly one of ``ready`` / ``delayed`` / ``leased`` / ``dead``, and its hash
``m:<id>`` exists exactly while it is in one of them. A lease is *held* by a receipt when the
id is in ``leased`` and the hash's lease token ``n`` equals the receipt; every settle script
checks that first, so a worker whose lease expired (and was handed to someone else, or put
back to ready) cannot touch the message any more.

Scripts run by EVALSHA; `LuaScript` loads the source on NOSCRIPT (after a server restart or
``SCRIPT FLUSH``) and tries again once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

_PREAMBLE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function held(leased, key, id, token)
  return redis.call('ZSCORE', leased, id) and redis.call('HGET', key, 'n') == token
end
local function wake(notify)
  if redis.call('LLEN', notify) == 0 then redis.call('RPUSH', notify, 1) end
end
"""
# Every script takes the queue's hash tag ``{prefix:queue}`` as its key (KEYS[i], one per
# queue) and derives the key names from it (see `_keys`): short commands are cheaper to
# send, and every derived key is in the declared key's slot.

ENQUEUE = """
-- KEYS: tag; ARGV per message: task_id, payload, delay_ms, visibility_ms
-- A task id that is already stored is skipped, so a producer may safely resend a batch
-- whose reply it lost.
local tag = KEYS[1]
local ready, delayed = tag .. ':ready', tag .. ':delayed'
local now = nil
local added = 0
for i = 1, #ARGV, 4 do
  local id = ARGV[i]
  local key = tag .. ':m:' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'p', ARGV[i + 1], 'v', ARGV[i + 3], 'a', 0, 'n', 0)
    local delay = tonumber(ARGV[i + 2])
    if delay > 0 then
      if not now then now = now_ms() end
      redis.call('ZADD', delayed, now + delay, id)
    else
      redis.call('RPUSH', ready, id)
    end
    added = added + 1
  end
end
-- Wake a blocked consumer; for a delayed message it re-computes how long to sleep.
if added > 0 then wake(tag .. ':notify') end
return added
"""

DEQUEUE = """
-- KEYS: the tags of the queues, in serving order; ARGV: limit, move_batch
-- Returns {hint_ms, then per message: queue_index, id, payload, attempts, visibility_ms, token}
-- hint_ms (only when nothing was taken) is how long until the next delayed message is due or
-- lease expires, -1 when there is none.
local limit = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local now = now_ms()
local out = {-1}
local taken = 0
for q = 1, #KEYS do
  local tag = KEYS[q]
  local ready, delayed = tag .. ':ready', tag .. ':delayed'
  local leased, notify = tag .. ':leased', tag .. ':notify'
  -- Expired leases go back to the front (they have waited longest), keeping their count.
  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, batch)
  if #expired > 0 then
    redis.call('ZREM', leased, unpack(expired))
    for i = #expired, 1, -1 do redis.call('LPUSH', ready, expired[i]) end
  end
  -- Due delayed messages join the back, in due order.
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, batch)
  if #due > 0 then
    redis.call('ZREM', delayed, unpack(due))
    redis.call('RPUSH', ready, unpack(due))
  end
  while taken < limit do
    local ids = redis.call('LPOP', ready, limit - taken)
    if not ids then break end
    for _, id in ipairs(ids) do
      local key = tag .. ':m:' .. id
      local m = redis.call('HMGET', key, 'p', 'v', 'a', 'n')
      if m[1] then
        local attempts = tonumber(m[3])
        local token = tonumber(m[4]) + 1
        redis.call('HSET', key, 'a', attempts + 1, 'n', token)
        redis.call('ZADD', leased, now + tonumber(m[2]), id)
        local o = #out
        out[o+1] = q; out[o+2] = id; out[o+3] = m[1]
        out[o+4] = attempts; out[o+5] = m[2]; out[o+6] = token
        taken = taken + 1
      end
    end
  end
  if taken >= limit then
    -- Pass the wake-up on when work is left, so a second blocked consumer gets it.
    if redis.call('LLEN', ready) > 0 then wake(notify) else redis.call('DEL', notify) end
    break
  end
  redis.call('DEL', notify)
end
if taken == 0 then
  local next_due = nil
  for q = 1, #KEYS do
    for _, z in ipairs({KEYS[q] .. ':delayed', KEYS[q] .. ':leased'}) do
      local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
      if first[2] then
        local at = tonumber(first[2])
        if not next_due or at < next_due then next_due = at end
      end
    end
  end
  if next_due then out[1] = math.max(next_due - now, 0) end
end
return out
"""

ACK = """
-- KEYS: tag; ARGV per delivery: task_id, token
local leased = KEYS[1] .. ':leased'
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local key = KEYS[1] .. ':m:' .. id
  if held(leased, key, id, ARGV[i + 1]) then
    redis.call('ZREM', leased, id)
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""

RELEASE = """
-- KEYS: tag; ARGV per delivery: task_id, token
-- Back to the front without counting the delivery; reversed so the first stays first.
local leased, ready = KEYS[1] .. ':leased', KEYS[1] .. ':ready'
local n = 0
for i = #ARGV - 1, 1, -2 do
  local id = ARGV[i]
  local key = KEYS[1] .. ':m:' .. id
  if held(leased, key, id, ARGV[i + 1]) then
    redis.call('ZREM', leased, id)
    if tonumber(redis.call('HGET', key, 'a')) > 0 then redis.call('HINCRBY', key, 'a', -1) end
    redis.call('LPUSH', ready, id)
    n = n + 1
  end
end
if n > 0 then wake(KEYS[1] .. ':notify') end
return n
"""

RETRY = """
-- KEYS: tag; ARGV: task_id, token, delay_ms
local id, leased = ARGV[1], KEYS[1] .. ':leased'
if not held(leased, KEYS[1] .. ':m:' .. id, id, ARGV[2]) then return 0 end
redis.call('ZREM', leased, id)
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[1] .. ':delayed', now_ms() + delay, id)
else
  redis.call('RPUSH', KEYS[1] .. ':ready', id)
end
wake(KEYS[1] .. ':notify')
return 1
"""

DEAD_LETTER = """
-- KEYS: tag; ARGV: task_id, token, exc_type, message, traceback
local id, leased = ARGV[1], KEYS[1] .. ':leased'
local key = KEYS[1] .. ':m:' .. id
if not held(leased, key, id, ARGV[2]) then return 0 end
local now = now_ms()
redis.call('ZREM', leased, id)
redis.call('HSET', key, 'e', ARGV[3], 's', ARGV[4], 't', ARGV[5], 'f', now)
redis.call('ZADD', KEYS[1] .. ':dead', now, id)
return 1
"""

EXTEND = """
-- KEYS: tag; ARGV: visibility_ms, then per delivery: task_id, token
local leased = KEYS[1] .. ':leased'
local expiry = now_ms() + tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if held(leased, KEYS[1] .. ':m:' .. id, id, ARGV[i + 1]) then
    redis.call('ZADD', leased, 'XX', expiry, id)
    n = n + 1
  end
end
return n
"""

_PICK_DEAD = """
local function pick_dead(dead, batch)
  if #ARGV >= 2 then
    local ids = {}
    for i = 2, #ARGV do
      if redis.call('ZSCORE', dead, ARGV[i]) then ids[#ids + 1] = ARGV[i] end
    end
    return ids
  end
  return redis.call('ZRANGE', dead, 0, batch - 1)
end
"""

LIST_DEAD = (
    _PICK_DEAD
    + """
-- KEYS: tag; ARGV: limit, [task_id ...]
-- Returns per dead letter: id, payload, attempts, exc_type, message, traceback, failed_ms
local out = {}
for _, id in ipairs(pick_dead(KEYS[1] .. ':dead', tonumber(ARGV[1]))) do
  local m = redis.call('HMGET', KEYS[1] .. ':m:' .. id, 'p', 'a', 'e', 's', 't', 'f')
  if m[1] then
    out[#out + 1] = id
    for j = 1, 6 do out[#out + 1] = m[j] or '' end
  end
end
return out
"""
)

RETRY_DEAD = (
    _PICK_DEAD
    + """
-- KEYS: tag; ARGV: batch, [task_id ...]
-- Ready now with a fresh attempt count. Returns how many moved.
local dead, ready = KEYS[1] .. ':dead', KEYS[1] .. ':ready'
local ids = pick_dead(dead, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  local key = KEYS[1] .. ':m:' .. id
  redis.call('ZREM', dead, id)
  redis.call('HSET', key, 'a', 0)
  redis.call('HDEL', key, 'e', 's', 't', 'f')
  redis.call('RPUSH', ready, id)
end
if #ids > 0 then wake(KEYS[1] .. ':notify') end
return #ids
"""
)

PURGE_DEAD = (
    _PICK_DEAD
    + """
-- KEYS: tag; ARGV: batch, [task_id ...]. Returns how many were deleted.
local dead = KEYS[1] .. ':dead'
local ids = pick_dead(dead, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', dead, id)
  redis.call('DEL', KEYS[1] .. ':m:' .. id)
end
return #ids
"""
)

PURGE = """
-- KEYS: tag; ARGV: batch. Returns {deleted, looked_at}; call again until looked_at is 0.
local tag, batch = KEYS[1], tonumber(ARGV[1])
local deleted, seen = 0, 0
local ids = redis.call('LPOP', tag .. ':ready', batch) or {}
for _, id in ipairs(ids) do deleted = deleted + redis.call('DEL', tag .. ':m:' .. id) end
seen = #ids
if seen < batch then
  local later = redis.call('ZRANGE', tag .. ':delayed', 0, batch - seen - 1)
  if #later > 0 then
    redis.call('ZREM', tag .. ':delayed', unpack(later))
    for _, id in ipairs(later) do deleted = deleted + redis.call('DEL', tag .. ':m:' .. id) end
  end
  seen = seen + #later
end
return {deleted, seen}
"""

STATS = """
-- KEYS: tag. Returns {ready, delayed, in_flight, dead}; due delayed messages and expired
-- leases count as ready (the next dequeue hands them out).
local tag = KEYS[1]
local now = now_ms()
local due = redis.call('ZCOUNT', tag .. ':delayed', '-inf', now)
local expired = redis.call('ZCOUNT', tag .. ':leased', '-inf', now)
return {
  redis.call('LLEN', tag .. ':ready') + due + expired,
  redis.call('ZCARD', tag .. ':delayed') - due,
  redis.call('ZCARD', tag .. ':leased') - expired,
  redis.call('ZCARD', tag .. ':dead'),
}
"""


class LuaScript:
    """A script run by EVALSHA, loaded on demand.

    Args:
        name: A label for errors and repr.
        body: The Lua source (the shared helpers are prepended).
    """

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        self.source = _PREAMBLE + body
        # bytes: redis-py sends bytes arguments without converting them
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest().encode()

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r}, sha={self.sha[:10].decode()})"

    async def __call__(self, client: Any, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        """Run on `client` (a standalone or cluster client); load the script on NOSCRIPT."""
        try:
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


SCRIPTS: dict[str, LuaScript] = {
    name: LuaScript(name.lower(), body)
    for name, body in {
        "ENQUEUE": ENQUEUE,
        "DEQUEUE": DEQUEUE,
        "ACK": ACK,
        "RELEASE": RELEASE,
        "RETRY": RETRY,
        "DEAD_LETTER": DEAD_LETTER,
        "EXTEND": EXTEND,
        "LIST_DEAD": LIST_DEAD,
        "RETRY_DEAD": RETRY_DEAD,
        "PURGE_DEAD": PURGE_DEAD,
        "PURGE": PURGE,
        "STATS": STATS,
    }.items()
}
"""Every script by name, for loading them all at connect time."""
