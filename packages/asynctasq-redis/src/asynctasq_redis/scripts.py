"""The Lua scripts: every state change of a message is one of these, so it is atomic.

All times come from the Redis server clock (``TIME``), so workers on machines with skewed
clocks agree on due times and lease expiries. Key layout: see `asynctasq_redis._keys`.

A message travels as one *entry* string, ``<task id>\\n<visibility ms>\\n<deliveries>\\n<payload>``:
enqueueing is one plain ``RPUSH`` of that string to ``ready`` (no script, no per-message key:
as cheap as the rawest Redis queue). It sits in ``ready`` (list) or ``delayed`` (sorted set)
until a dequeue leases it: then its id goes to ``leased`` (sorted set by expiry) and ``leases``
(hash id -> ``<token>\\n<entry>``, the entry with its delivery count raised). A lease is *held*
by a receipt when ``leases`` has the id with that token; every settle script checks that
first, so a worker whose lease expired (and was put back to ready, or handed to someone else)
cannot touch the message any more. Dead letters are a hash each (``dead:<id>``) plus the
``dead`` sorted set.

An idle consumer blocks in ``BLMOVE ready staged``: Redis itself hands a newly pushed entry
to a blocked consumer, moving it (never out of Redis) to ``staged``, and the dequeue script
that follows leases staged entries before ready ones and puts back what it does not take, so
``staged`` is only ever the front of ``ready`` for the microseconds between the two. A new
*delayed* message cannot wake a consumer that way, so the scripts that add one push a
*wake-up sentinel* (an empty entry, flagged by the ``woken`` key so counts can leave it out)
onto an empty ``ready``; the dequeue script drops it and re-computes how long to sleep.

Scripts run by EVALSHA; `LuaScript` loads the source on NOSCRIPT (after a server restart or
``SCRIPT FLUSH``) and tries again once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

_HELPERS: dict[str, str] = {
    "now_ms": r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
""",
    # Microseconds as a string: Lua prints numbers with 14 digits, too few for these.
    "now_us": r"""
local function now_us()
  local t = redis.call('TIME')
  return t[1] .. string.sub('00000' .. t[2], -6)
end
""",
    # The entry of the lease `id` holds with `token`, or nil when that lease is gone.
    "held": r"""
local function held(tag, id, token)
  local rec = redis.call('HGET', tag .. ':leases', id)
  if rec and string.sub(rec, 1, #token + 1) == token .. '\n' then
    return string.sub(rec, #token + 2)
  end
  return nil
end
""",
    "unlease": r"""
local function unlease(tag, id)
  redis.call('HDEL', tag .. ':leases', id)
  redis.call('ZREM', tag .. ':leased', id)
end
""",
    # id, visibility ms, deliveries, and the positions of the 2nd and 3rd newline; nil for
    # a string this driver did not write (something else pushed to the list)
    "parse": r"""
local function parse(e)
  local a = string.find(e, '\n', 1, true)
  local b = a and string.find(e, '\n', a + 1, true)
  local c = b and string.find(e, '\n', b + 1, true)
  if not c or a == 1 then return nil end
  local vt, n = tonumber(string.sub(e, a + 1, b - 1)), tonumber(string.sub(e, b + 1, c - 1))
  if not vt or not n then return nil end
  return string.sub(e, 1, a - 1), vt, n, b, c
end
""",
    "with_count": r"""
local function with_count(e, n)
  local _, _, _, b, c = parse(e)
  return string.sub(e, 1, b) .. n .. string.sub(e, c)
end
""",
    # Keep a message as a dead letter: the hash of its fields, and its place in `dead`.
    "bury": r"""
local function bury(tag, id, payload, vt, count, exc_type, message, trace)
  local now = now_us()  -- not ms: dead letters a millisecond apart still sort by age
  redis.call('HSET', tag .. ':dead:' .. id, 'p', payload, 'v', vt, 'a', count,
    'e', exc_type, 's', message, 't', trace, 'f', now)
  redis.call('ZADD', tag .. ':dead', now, id)
end
""",
    # Wake one blocked consumer (so it re-computes its sleep) when one may be blocked: they
    # block only on an empty ready list. At most one sentinel exists at a time.
    "wake": r"""
local function wake(tag)
  if redis.call('LLEN', tag .. ':ready') == 0 and redis.call('EXISTS', tag .. ':woken') == 0 then
    redis.call('SET', tag .. ':woken', 1)
    redis.call('RPUSH', tag .. ':ready', '')
  end
end
""",
    # Staged entries back to the front of ready, in order (a blocked consumer gets one).
    "unstage": r"""
local function unstage(tag)
  local staged = tag .. ':staged'
  for _ = 1, redis.call('LLEN', staged) do
    redis.call('LMOVE', staged, tag .. ':ready', 'RIGHT', 'LEFT')
  end
end
""",
    # How many entries wait in ready and staged, not counting the sentinel.
    "waiting": r"""
local function waiting(tag)
  return redis.call('LLEN', tag .. ':ready') + redis.call('LLEN', tag .. ':staged')
    - redis.call('EXISTS', tag .. ':woken')
end
""",
}
"""Lua helpers; a script gets only those it calls (less to run on every call)."""


def _with_helpers(body: str) -> str:
    needed: list[str] = []
    pending = [body]
    while pending:
        text = pending.pop()
        for name, source in _HELPERS.items():
            if name not in needed and f"{name}(" in text:
                needed.append(name)
                pending.append(source)
    # define in _HELPERS order, so a helper follows the helpers it calls
    return "".join(src for name, src in _HELPERS.items() if name in needed) + body


# Every script takes the queue's hash tag ``{prefix:queue}`` as its key (KEYS[i], one per
# queue) and derives the key names from it (see `_keys`): short commands are cheaper to
# send, and every derived key is in the declared key's slot.

SCHEDULE = r"""
-- KEYS: tag; ARGV per message: delay_ms, entry
local tag, now = KEYS[1], now_ms()
for i = 1, #ARGV, 2 do
  redis.call('ZADD', tag .. ':delayed', now + tonumber(ARGV[i]), ARGV[i + 1])
end
wake(tag)  -- a blocked consumer re-computes how long to sleep
return #ARGV / 2
"""

DEQUEUE = r"""
-- KEYS: the tags of the queues, in serving order; ARGV: limit, move_batch
-- Returns {hint_ms, then per message: queue_index, entry (as enqueued), token}.
-- hint_ms (only when nothing was taken) is how long until the next delayed message is due or
-- lease expires, -1 when there is none.
local limit = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local now = now_ms()
local out = {-1}
local taken = 0

-- Pops up to n entries of `list`, leasing each; drops the wake-up sentinel.
local function lease(q, tag, list, n)
  local entries = redis.call('LPOP', list, n)
  if not entries then return 0 end
  local leased, leases = tag .. ':leased', tag .. ':leases'
  local token = redis.call('INCRBY', tag .. ':seq', #entries) - #entries
  local got = 0
  for _, e in ipairs(entries) do
    local id, vt, count, b, c
    if e ~= '' then id, vt, count, b, c = parse(e) end
    if e == '' then
      redis.call('DEL', tag .. ':woken')
    elseif not id then
      -- Not an entry: never run it, never fail on it again; keep it as a dead letter.
      bury(tag, 'malformed-' .. redis.call('INCR', tag .. ':seq'), e, 60000, 0,
        'asynctasq.errors.MalformedMessageError',
        'not an asynctasq-redis queue entry (<task id>\\n<visibility ms>\\n'
          .. '<deliveries>\\n<payload>): something else pushed it to the list', '')
    else
      token = token + 1
      redis.call('HSET', leases, id, token .. '\n' .. string.sub(e, 1, b) .. (count + 1)
        .. string.sub(e, c))
      redis.call('ZADD', leased, now + vt, id)
      local o = #out
      out[o + 1] = q; out[o + 2] = e; out[o + 3] = token
      got = got + 1
    end
  end
  return got
end

for q = 1, #KEYS do
  local tag = KEYS[q]
  local ready, leased, leases = tag .. ':ready', tag .. ':leased', tag .. ':leases'
  -- Expired leases go back to the front (they have waited longest), keeping their count.
  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, batch)
  if #expired > 0 then
    redis.call('ZREM', leased, unpack(expired))
    for i = #expired, 1, -1 do
      local rec = redis.call('HGET', leases, expired[i])
      if rec then
        redis.call('HDEL', leases, expired[i])
        redis.call('LPUSH', ready, string.sub(rec, string.find(rec, '\n', 1, true) + 1))
      end
    end
  end
  -- Due delayed messages join the back, in due order.
  local due = redis.call('ZRANGEBYSCORE', tag .. ':delayed', '-inf', now, 'LIMIT', 0, batch)
  if #due > 0 then
    redis.call('ZREM', tag .. ':delayed', unpack(due))
    redis.call('RPUSH', ready, unpack(due))
  end
  -- Staged entries (moved by a blocked consumer's BLMOVE) are the oldest: first.
  taken = taken + lease(q, tag, tag .. ':staged', limit - taken)
  if taken < limit then taken = taken + lease(q, tag, ready, limit - taken) end
  if taken >= limit then break end
end
-- Staged entries not taken go back to the front of ready, in order; a consumer blocked on
-- ready is handed one at once.
for q = 1, #KEYS do unstage(KEYS[q]) end
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

UNSTAGE = r"""
-- KEYS: tag. Entries a consumer's standing wait moved while it was busy go back to ready.
unstage(KEYS[1])
return 1
"""

ACK = r"""
-- KEYS: tag; ARGV per delivery: task_id, token
local n = 0
for i = 1, #ARGV, 2 do
  if held(KEYS[1], ARGV[i], ARGV[i + 1]) then
    unlease(KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""

RELEASE = r"""
-- KEYS: tag; ARGV per delivery: task_id, token
-- Back to the front without counting the delivery; reversed so the first stays first.
local n = 0
for i = #ARGV - 1, 1, -2 do
  local e = held(KEYS[1], ARGV[i], ARGV[i + 1])
  if e then
    unlease(KEYS[1], ARGV[i])
    local _, _, count = parse(e)
    redis.call('LPUSH', KEYS[1] .. ':ready', with_count(e, math.max(count - 1, 0)))
    n = n + 1
  end
end
return n
"""

RETRY = r"""
-- KEYS: tag; ARGV: task_id, token, delay_ms. The delivery count is kept.
local e = held(KEYS[1], ARGV[1], ARGV[2])
if not e then return 0 end
unlease(KEYS[1], ARGV[1])
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[1] .. ':delayed', now_ms() + delay, e)
  wake(KEYS[1])
else
  redis.call('RPUSH', KEYS[1] .. ':ready', e)
end
return 1
"""

DEAD_LETTER = r"""
-- KEYS: tag; ARGV: task_id, token, exc_type, message, traceback
local e = held(KEYS[1], ARGV[1], ARGV[2])
if not e then return 0 end
unlease(KEYS[1], ARGV[1])
local id, vt, count, _, c = parse(e)
bury(KEYS[1], id, string.sub(e, c + 1), vt, count, ARGV[3], ARGV[4], ARGV[5])
return 1
"""

EXTEND = r"""
-- KEYS: tag; ARGV: visibility_ms, then per delivery: task_id, token
local expiry = now_ms() + tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV, 2 do
  if held(KEYS[1], ARGV[i], ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1] .. ':leased', 'XX', expiry, ARGV[i])
    n = n + 1
  end
end
return n
"""

_PICK_DEAD = r"""
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
    + r"""
-- KEYS: tag; ARGV: limit, [task_id ...]
-- Returns per dead letter: id, payload, attempts, exc_type, message, traceback, failed_us
local out = {}
for _, id in ipairs(pick_dead(KEYS[1] .. ':dead', tonumber(ARGV[1]))) do
  local m = redis.call('HMGET', KEYS[1] .. ':dead:' .. id, 'p', 'a', 'e', 's', 't', 'f')
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
    + r"""
-- KEYS: tag; ARGV: batch, [task_id ...]
-- Ready now with a fresh delivery count. Returns how many moved.
local dead = KEYS[1] .. ':dead'
local ids = pick_dead(dead, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  local key = KEYS[1] .. ':dead:' .. id
  local m = redis.call('HMGET', key, 'p', 'v')
  redis.call('ZREM', dead, id)
  redis.call('DEL', key)
  if m[1] then redis.call('RPUSH', KEYS[1] .. ':ready', id .. '\n' .. m[2] .. '\n0\n' .. m[1]) end
end
return #ids
"""
)

PURGE_DEAD = (
    _PICK_DEAD
    + r"""
-- KEYS: tag; ARGV: batch, [task_id ...]. Returns how many were deleted.
local dead = KEYS[1] .. ':dead'
local ids = pick_dead(dead, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', dead, id)
  redis.call('DEL', KEYS[1] .. ':dead:' .. id)
end
return #ids
"""
)

KEEP_RESULT = r"""
-- KEYS: the result key; ARGV: outcome, ttl_ms. A one-element list, so a waiter can block on
-- it (BLMOVE key key: a rotation that returns the element and leaves it in place).
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

PURGE = r"""
-- KEYS: tag. Deletes the ready and delayed messages; returns how many.
local tag = KEYS[1]
local n = waiting(tag) + redis.call('ZCARD', tag .. ':delayed')
redis.call('UNLINK', tag .. ':ready', tag .. ':staged', tag .. ':woken', tag .. ':delayed')
return n
"""

STATS = r"""
-- KEYS: tag. Returns {ready, delayed, in_flight, dead}; due delayed messages and expired
-- leases count as ready (the next dequeue hands them out).
local tag = KEYS[1]
local now = now_ms()
local due = redis.call('ZCOUNT', tag .. ':delayed', '-inf', now)
local expired = redis.call('ZCOUNT', tag .. ':leased', '-inf', now)
return {
  waiting(tag) + due + expired,
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
        self.source = _with_helpers(body)
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
        "SCHEDULE": SCHEDULE,
        "DEQUEUE": DEQUEUE,
        "UNSTAGE": UNSTAGE,
        "ACK": ACK,
        "RELEASE": RELEASE,
        "RETRY": RETRY,
        "DEAD_LETTER": DEAD_LETTER,
        "EXTEND": EXTEND,
        "LIST_DEAD": LIST_DEAD,
        "RETRY_DEAD": RETRY_DEAD,
        "PURGE_DEAD": PURGE_DEAD,
        "PURGE": PURGE,
        "KEEP_RESULT": KEEP_RESULT,
        "STATS": STATS,
    }.items()
}
"""Every script by name, for loading them all at connect time."""
