"""The Lua scripts: every state change of a message is one of these, so it is atomic.

All times come from the Redis server clock (``TIME``), so workers on machines with skewed
clocks agree on due times and lease expiries. Key layout: see `asynctasq_redis._keys`.

A message travels as one *entry* string, ``<task id>\\n<visibility ms>\\n<deliveries>\\n<payload>``:
enqueueing is one plain ``RPUSH`` of that string to ``ready`` (no script, no per-message key:
as cheap as the rawest Redis queue). It sits in ``ready`` (list) or ``delayed`` (sorted set)
until a dequeue leases it under a fresh *token*: the field ``\\n<token>\\n<task id>`` then
goes to ``leased`` (sorted set by expiry) and ``leases`` (hash field -> ``<token>\\n<entry>``,
the entry with its delivery count raised). A lease is *held* by a receipt while ``leases``
has the field of its token and task id, so settling needs no read first: a worker whose
lease expired (put back to ready, or handed to someone else under another token) names a
field that is gone and cannot touch the message any more. The task id is part of the field
because the token counter can go back (Redis restarted without its last writes, a restore,
a failover, the key evicted): a token handed out twice then still names one message each.
No task id holds a newline, so these fields never meet a record keyed by task id, as
earlier releases kept them; an expired lease of either kind is put back the same way, by
the member ``leased`` names. Dead letters are a hash each
(``dead:<id>``) plus the ``dead`` sorted set.

An idle consumer blocks in ``BLMOVE ready staged``: Redis itself hands a newly pushed entry
to a blocked consumer, moving it (never out of Redis) to ``staged``, and the dequeue script
that follows leases staged entries before ready ones and puts back what it does not take, so
``staged`` is only ever the front of ``ready`` for the microseconds between the two. A new
*delayed* message cannot wake a consumer that way, so the scripts that add one push a
*wake-up sentinel* (an empty entry, flagged by the ``woken`` key so counts can leave it out)
onto an empty ``ready``; the dequeue script drops it and re-computes how long to sleep.

A message of priority ``p`` above 0 waits in ``ready:<p>`` instead of ``ready`` (the default
priority's path is unchanged), and ``levels`` (a sorted set) names the levels that may have
entries, so a dequeue looks at the ranked lists with one call when there are none. Its lease
token is ``<n>/<p>`` (plain ``<n>`` at priority 0), so a retry, a release, an expired lease and
a dead letter know where it goes back; a delayed one is kept in ``delayed`` as
``\\n<p>\\n<entry>`` (no entry starts with a newline).

Scripts run by EVALSHA; `LuaScript` loads the source on NOSCRIPT (after a server restart or
``SCRIPT FLUSH``) and tries again once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from asynctasq.core.options import MAX_SECONDS
from asynctasq.drivers.base import MALFORMED_LEASE

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
    # The field a lease's record is kept under in ``leases``, and its member in ``leased``
    # (see the module docstring).
    "lease_field": r"""
local function lease_field(id, token)
  return '\n' .. token .. '\n' .. id
end
""",
    # The entry of the lease `id` holds with `token`, or nil when that lease is gone.
    "held": r"""
local function held(tag, id, token)
  local rec = redis.call('HGET', tag .. ':leases', lease_field(id, token))
  if rec and string.byte(rec, #token + 1) == 10 and string.find(rec, token, 1, true) == 1 then
    return string.sub(rec, #token + 2)
  end
  return nil
end
""",
    # One command over many arguments instead of one per item: each redis.call costs more
    # than what most of these commands do. In slices, as unpack has a limit (~8000); with
    # `flags` (a list) put before each slice's items. Returns the sum of the replies.
    "bulk": r"""
local function bulk(cmd, key, items, flags)
  local n = 0
  for i = 1, #items, 4000 do
    local last = math.min(i + 3999, #items)
    if flags then
      local args = {unpack(flags)}
      for k = i, last do args[#args + 1] = items[k] end
      n = n + redis.call(cmd, key, unpack(args))
    else
      n = n + redis.call(cmd, key, unpack(items, i, last))
    end
  end
  return n
end
""",
    # The lease fields of ids[i] held with tokens[i].
    "fields_of": r"""
local function fields_of(ids, tokens)
  local fields = {}
  for i, id in ipairs(ids) do fields[i] = lease_field(id, tokens[i]) end
  return fields
end
""",
    # Acknowledge: end the leases still held, for good. Returns how many. A receipt whose
    # lease expired (and was handed out again under another token) names no field.
    "ack_held": r"""
local function ack_held(tag, ids, tokens)
  local fields = fields_of(ids, tokens)
  bulk('ZREM', tag .. ':leased', fields)
  return bulk('HDEL', tag .. ':leases', fields)
end
""",
    # ARGV from index `first` as (task id, token) pairs: the ids, and the tokens.
    "pairs_from": r"""
local function pairs_from(first)
  local ids, tokens = {}, {}
  for i = first, #ARGV - 1, 2 do
    ids[#ids + 1] = ARGV[i]
    tokens[#tokens + 1] = ARGV[i + 1]
  end
  return ids, tokens
end
""",
    "unlease": r"""
local function unlease(tag, id, token)
  local field = lease_field(id, token)
  redis.call('HDEL', tag .. ':leases', field)
  redis.call('ZREM', tag .. ':leased', field)
end
""",
    # Whether `s` is UTF-8 as Python's strict decoder reads it (no overlong forms, no
    # surrogates, nothing past U+10FFFF).
    "is_utf8": r"""
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    if c < 128 then
      i = i + 1
    else
      local len, lo, hi
      if c >= 194 and c <= 223 then len, lo, hi = 2, 128, 191
      elseif c == 224 then len, lo, hi = 3, 160, 191
      elseif c == 237 then len, lo, hi = 3, 128, 159
      elseif c >= 225 and c <= 239 then len, lo, hi = 3, 128, 191
      elseif c == 240 then len, lo, hi = 4, 144, 191
      elseif c >= 241 and c <= 243 then len, lo, hi = 4, 128, 191
      elseif c == 244 then len, lo, hi = 4, 128, 143
      else return false end
      local d = string.byte(s, i + 1)
      if not d or d < lo or d > hi then return false end
      for j = i + 2, i + len - 1 do
        d = string.byte(s, j)
        if not d or d < 128 or d > 191 then return false end
      end
      i = i + len
    end
  end
  return true
end
""",
    # id, visibility ms and deliveries (the digits as written: converting costs more than
    # the rest of a parse, and few callers need the numbers), and the positions of the 2nd
    # and 3rd newline; nil for a string this driver did not write (something else pushed to
    # the list). One match reads an entry whose id is ASCII. As strict as
    # the client that reads the entry back: an entry leased here and then unreadable there
    # would fail the whole dequeue and return after every lease expiry. So the numbers are
    # plain digits (tonumber also takes '1.5', '0x1f', ' 7', 'inf' and 'nan'; int() does
    # not), of at most 15 and 12 digits (exact as Lua numbers, and a count plus one still
    # prints without an exponent), and the id is UTF-8 (the client decodes it, and settles
    # the lease by those exact bytes).
    "parse": r"""
local function parse(e)
  local id, vt, n, c = string.match(e, '^([^\n\128-\255]+)\n(%d+)\n(%d+)()\n')
  if not c then  -- an id past ASCII, or no entry at all
    id, vt, n, c = string.match(e, '^([^\n]+)\n(%d+)\n(%d+)()\n')
    if not c or not is_utf8(id) then return nil end
  end
  if #vt > 15 or #n > 12 then return nil end
  return id, vt, n, c - #n - 1, c
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
local function bury(tag, id, payload, vt, count, exc_type, message, trace, priority)
  local now = now_us()  -- not ms: dead letters a millisecond apart still sort by age
  local key = tag .. ':dead:' .. id
  redis.call('HSET', key, 'p', payload, 'v', vt, 'a', count,
    'e', exc_type, 's', message, 't', trace, 'f', now)
  if priority and priority > 0 then redis.call('HSET', key, 'r', priority) end
  redis.call('ZADD', tag .. ':dead', now, id)
end
""",
    # Keep a string that is not an entry of this driver (something else wrote it) as a dead
    # letter under a fresh id: never run it, never fail on it again.
    "bury_malformed": r"""
local function bury_malformed(tag, e)
  bury(tag, 'malformed-' .. redis.call('INCR', tag .. ':seq'), e, 60000, 0,
    'asynctasq.errors.MalformedMessageError',
    'not an asynctasq-redis queue entry (<task id>\\n<visibility ms>\\n<deliveries>\\n'
      .. '<payload>, the id UTF-8, the numbers digits only): something else wrote it', '')
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
    # How many entries wait in ready, staged and the ranked lists, not counting the sentinel.
    "waiting": r"""
local function waiting(tag)
  local n = redis.call('LLEN', tag .. ':ready') + redis.call('LLEN', tag .. ':staged')
    - redis.call('EXISTS', tag .. ':woken')
  for _, p in ipairs(redis.call('ZRANGE', tag .. ':levels', 0, -1)) do
    if string.find(p, '^[1-9]$') then n = n + redis.call('LLEN', tag .. ':ready:' .. p) end
  end
  return n
end
""",
    # The priority a lease token carries ('<n>/<p>'), 0 when it carries none.
    "token_priority": r"""
local function token_priority(token)
  local p = string.match(token, '/([1-9])$')
  return p and tonumber(p) or 0
end
""",
    # Put entry `e` of priority `p` in its ready list: at the back, or the front when
    # `front` (it waited longest). A ranked list is named in `levels` while it may have some.
    "push_ready": r"""
local function push_ready(tag, p, e, front)
  local cmd = front and 'LPUSH' or 'RPUSH'
  if p > 0 then
    redis.call(cmd, tag .. ':ready:' .. p, e)
    redis.call('ZADD', tag .. ':levels', p, p)
  else
    redis.call(cmd, tag .. ':ready', e)
  end
end
""",
    # Forget status records that expired: their index entries, kinds and expiry entries (the
    # records themselves expired with their keys' PX). At most `batch` per call.
    "sweep_statuses": r"""
local function sweep_statuses(tag, now, batch)
  local expiry, meta = tag .. ':expiry', tag .. ':meta'
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', '(' .. now, 'LIMIT', 0, batch)
  if #gone == 0 then return end
  for _, id in ipairs(gone) do
    local kind = redis.call('HGET', meta, id)
    if kind then redis.call('ZREM', tag .. ':by:' .. kind, id) end
  end
  redis.call('ZREM', expiry, unpack(gone))
  redis.call('HDEL', meta, unpack(gone))
end
""",
    # Forget worker records whose heartbeat expired (at most 1000 per call).
    "sweep_workers": r"""
local function sweep_workers(tag, now)
  local dead = redis.call('ZRANGEBYSCORE', tag .. ':alive', '-inf', now, 'LIMIT', 0, 1000)
  if #dead > 0 then
    redis.call('ZREM', tag .. ':alive', unpack(dead))
    redis.call('HDEL', tag .. ':info', unpack(dead))
  end
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

ENQUEUE_RANKED = r"""
-- KEYS: tag; ARGV per message: priority (1-9), entry. Ready now, in the order given.
for i = 1, #ARGV, 2 do
  push_ready(KEYS[1], tonumber(ARGV[i]), ARGV[i + 1], false)
end
wake(KEYS[1])  -- consumers block on ready, which this did not touch
return #ARGV / 2
"""

DEQUEUE = r"""
-- KEYS: the tags of the queues, in serving order; ARGV: limit, move_batch, and optionally
-- the acks that come with this call, packed in one string (one argument costs the client
-- far less to send than three per ack): per finished delivery
-- ``<queue index>\n<task id>\n<token>\n`` (ids and tokens hold no newline).
-- Returns {hint_ms, then per message: queue_index, entry (as enqueued), token}.
-- hint_ms (only when nothing was taken) is how long until the next delayed message is due or
-- lease expires, -1 when there is none.
local limit = tonumber(ARGV[1])
local batch = ARGV[2]
local now = now_ms()
-- numbers passed to redis.call as strings: Lua prints a number slowly, at every call
local now_s = string.format('%d', now)
local out = {-1}
local taken = 0
local expiry = {}  -- visibility ms -> lease expiry, as ZADD reads it
local drained = {}  -- queue index -> its staged list came up short (no unstage needed)

-- The acks first, as ACK would: one round-trip settles a batch and takes the next.
if ARGV[3] then
  local packed, groups, at, index = ARGV[3], {}, 1, {}
  for q = 1, #KEYS do index[tostring(q)] = q end  -- no number parsing per ack
  while true do
    local _, last, q, id, token = string.find(packed, '^(%d+)\n([^\n]*)\n([^\n]*)\n', at)
    q = q and index[q]
    if not q then break end
    local group = groups[q]
    if not group then
      group = {{}, {}}
      groups[q] = group
    end
    group[1][#group[1] + 1] = id
    group[2][#group[2] + 1] = token
    at = last + 1
  end
  for q, group in pairs(groups) do ack_held(KEYS[q], group[1], group[2]) end
end

-- Pops up to n entries of `list` (of priority p), leasing each; drops the wake-up sentinel.
-- Returns how many it leased and how many it popped.
local function lease(q, tag, list, n, p)
  local entries = redis.call('LPOP', list, n)
  if not entries then return 0, 0 end
  local token = redis.call('INCRBY', tag .. ':seq', #entries) - #entries
  local records, expiries, got = {}, {}, 0
  for _, e in ipairs(entries) do
    local id, vt, count, b, c
    if e ~= '' then id, vt, count, b, c = parse(e) end
    if e == '' then
      redis.call('DEL', tag .. ':woken')
    elseif not id then
      bury_malformed(tag, e)
    else
      -- Numbers printed and read as few times as can be: Lua's own number conversions
      -- cost more than the rest of a lease. The expiry once per visibility, and the first
      -- delivery's count without a conversion.
      token = token + 1
      local t = string.format('%d', token)
      if p > 0 then t = t .. '/' .. p end
      local due = expiry[vt]
      if not due then
        -- A visibility no dispatch could set (an entry written behind the driver's back)
        -- gets a short lease, in which the worker dead-letters the message; at 0 it would
        -- be handed out again while the first worker holds it.
        local ms = tonumber(vt)
        if ms <= 0 or ms > MAX_LEASE_MS then ms = MALFORMED_LEASE_MS end
        due = string.format('%d', now + ms)
        expiry[vt] = due
      end
      local next_count = count == '0' and '1' or tonumber(count) + 1
      local field = lease_field(id, t)
      got = got + 1
      local k = 2 * got
      records[k - 1] = field
      records[k] = t .. '\n' .. id .. '\n' .. vt .. '\n' .. next_count .. string.sub(e, c)
      expiries[k - 1] = due; expiries[k] = field
      local o = #out
      out[o + 1] = q; out[o + 2] = e; out[o + 3] = p > 0 and t or token
    end
  end
  bulk('HSET', tag .. ':leases', records)
  bulk('ZADD', tag .. ':leased', expiries)
  return got, #entries
end

for q = 1, #KEYS do
  local tag = KEYS[q]
  local ready, leased, leases = tag .. ':ready', tag .. ':leased', tag .. ':leases'
  -- Expired leases go back to the front (they have waited longest), keeping their count.
  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now_s, 'LIMIT', '0', batch)
  if #expired > 0 then
    redis.call('ZREM', leased, unpack(expired))
    for i = #expired, 1, -1 do
      local rec = redis.call('HGET', leases, expired[i])
      if rec then
        redis.call('HDEL', leases, expired[i])
        -- <token>\n<entry>; a record without the newline was not written here
        local nl = string.find(rec, '\n', 1, true)
        if nl then
          push_ready(tag, token_priority(string.sub(rec, 1, nl - 1)), string.sub(rec, nl + 1), true)
        else
          bury_malformed(tag, rec)
        end
      end
    end
  end
  -- Due delayed messages join the back of their lists, in due order.
  local due = redis.call('ZRANGEBYSCORE', tag .. ':delayed', '-inf', now_s, 'LIMIT', '0', batch)
  if #due > 0 then
    redis.call('ZREM', tag .. ':delayed', unpack(due))
    local plain = {}
    for _, m in ipairs(due) do
      if string.byte(m, 1) == 10 and string.find(m, '^\n[1-9]\n') then
        push_ready(tag, tonumber(string.sub(m, 2, 2)), string.sub(m, 4), false)
      else  -- an entry (or something malformed, which the lease below buries)
        plain[#plain + 1] = m
      end
    end
    if #plain > 0 then redis.call('RPUSH', ready, unpack(plain)) end
  end
  -- Higher priorities first; a level found empty is no longer named.
  for _, p in ipairs(redis.call('ZREVRANGE', tag .. ':levels', '0', '-1')) do
    if taken >= limit then break end
    local want = limit - taken
    local got, popped = 0, 0
    if string.find(p, '^[1-9]$') then
      got, popped = lease(q, tag, ready .. ':' .. p, want, tonumber(p))
    end
    taken = taken + got
    if popped < want then redis.call('ZREM', tag .. ':levels', p) end
  end
  -- Staged entries (moved by a blocked consumer's BLMOVE) are the oldest: first.
  if taken < limit then
    local want = limit - taken
    local got, popped = lease(q, tag, tag .. ':staged', want, 0)
    taken = taken + got
    drained[q] = popped < want
  end
  if taken < limit then taken = taken + lease(q, tag, ready, limit - taken, 0) end
  if taken >= limit then break end
end
-- Staged entries not taken go back to the front of ready, in order; a consumer blocked on
-- ready is handed one at once.
for q = 1, #KEYS do
  if not drained[q] then unstage(KEYS[q]) end
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

DEQUEUE = DEQUEUE.replace("MAX_LEASE_MS", f"{MAX_SECONDS * 1000:.0f}").replace(
    "MALFORMED_LEASE_MS", f"{MALFORMED_LEASE * 1000:.0f}"
)

UNSTAGE = r"""
-- KEYS: tag. Entries a consumer's standing wait moved while it was busy go back to ready.
unstage(KEYS[1])
return 1
"""

ACK = r"""
-- KEYS: tag; ARGV per delivery: task_id, token
return ack_held(KEYS[1], pairs_from(1))
"""

RELEASE = r"""
-- KEYS: tag; ARGV per delivery: task_id, token
-- Back to the front without counting the delivery; reversed so the first stays first.
local n = 0
for i = #ARGV - 1, 1, -2 do
  local e = held(KEYS[1], ARGV[i], ARGV[i + 1])
  if e then
    unlease(KEYS[1], ARGV[i], ARGV[i + 1])
    local _, _, count = parse(e)
    if count then
      local p = token_priority(ARGV[i + 1])
      push_ready(KEYS[1], p, with_count(e, math.max(tonumber(count) - 1, 0)), true)
      if p > 0 then wake(KEYS[1]) end
    else  -- the lease record was overwritten behind the driver's back
      bury_malformed(KEYS[1], e)
    end
    n = n + 1
  end
end
return n
"""

RETRY = r"""
-- KEYS: tag; ARGV: task_id, token, delay_ms. The delivery count and priority are kept.
local e = held(KEYS[1], ARGV[1], ARGV[2])
if not e then return 0 end
unlease(KEYS[1], ARGV[1], ARGV[2])
local delay = tonumber(ARGV[3])
local p = token_priority(ARGV[2])
if delay > 0 then
  if p > 0 then e = '\n' .. p .. '\n' .. e end
  redis.call('ZADD', KEYS[1] .. ':delayed', now_ms() + delay, e)
  wake(KEYS[1])
else
  push_ready(KEYS[1], p, e, false)
  if p > 0 then wake(KEYS[1]) end
end
return 1
"""

DEAD_LETTER = r"""
-- KEYS: tag; ARGV: task_id, token, exc_type, message, traceback
local e = held(KEYS[1], ARGV[1], ARGV[2])
if not e then return 0 end
unlease(KEYS[1], ARGV[1], ARGV[2])
local id, _, _, b, c = parse(e)
if id then
  -- the numbers as written, not as Lua would print them back (an exponent past 14 digits)
  local vt, count = string.sub(e, #id + 2, b - 1), string.sub(e, b + 1, c - 1)
  bury(KEYS[1], id, string.sub(e, c + 1), vt, count, ARGV[3], ARGV[4], ARGV[5],
    token_priority(ARGV[2]))
else  -- the lease record was overwritten behind the driver's back
  bury_malformed(KEYS[1], e)
end
return 1
"""

EXTEND = r"""
-- KEYS: tag; ARGV: visibility_ms, then per delivery: task_id, token
-- Only leases still held have their field in `leased`: XX leaves the others out. Returns
-- how many were extended.
-- '%.0f', not '%d': a timeout past 2^63 ms must not wrap to a negative, expired score
local expiry = string.format('%.0f', now_ms() + tonumber(ARGV[1]))
local scored = {}
for i, field in ipairs(fields_of(pairs_from(2))) do
  scored[2 * i - 1] = expiry; scored[2 * i] = field
end
return bulk('ZADD', KEYS[1] .. ':leased', scored, {'XX', 'CH'})
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
  -- pcall: a key of another type written behind the driver's back is passed over, not an
  -- error that fails the whole listing
  local m = redis.pcall('HMGET', KEYS[1] .. ':dead:' .. id, 'p', 'a', 'e', 's', 't', 'f')
  if not m.err and m[1] then
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
-- Ready now with a fresh delivery count, at their priority. Returns how many moved.
local dead = KEYS[1] .. ':dead'
local ids = pick_dead(dead, tonumber(ARGV[1]))
local ranked = false
for _, id in ipairs(ids) do
  local key = KEYS[1] .. ':dead:' .. id
  local m = redis.call('HMGET', key, 'p', 'v', 'r')
  redis.call('ZREM', dead, id)
  redis.call('DEL', key)
  -- A hash written behind the driver's back may lack 'v': the entry is then malformed, and
  -- the next dequeue keeps it as a dead letter again instead of this call failing.
  if m[1] then
    -- a priority field not written here (not one digit 1-9) counts as none
    local p = (m[3] and string.find(m[3], '^[1-9]$')) and tonumber(m[3]) or 0
    push_ready(KEYS[1], p, id .. '\n' .. (m[2] or '') .. '\n0\n' .. m[1], false)
    ranked = ranked or p > 0
  end
end
if ranked then wake(KEYS[1]) end
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
redis.call('UNLINK', tag .. ':ready', tag .. ':staged', tag .. ':woken', tag .. ':delayed',
  tag .. ':levels')
for p = 1, 9 do redis.call('UNLINK', tag .. ':ready:' .. p) end
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


# -- lifecycle: task status, logs, worker records (key layout: see `_keys`) ------------------

WRITE_STATUSES = r"""
-- KEYS: the status tag; ARGV[1]: the writes, each "<id len>,<queue len>,<state len>,<ttl ms>,
-- <record len>;" followed by those fields' bytes. One framed argument instead of five per
-- write: the client packs one value, and any bytes may appear in a field.
-- In the order given, so of two writes for one id the later wins. A record is indexed under
-- its kind (state and queue) only; a write that changes the kind moves the id between
-- indexes here, atomically. More expired records are swept than written, so the indexes
-- never outgrow the live records.
local tag, now, blob = KEYS[1], now_ms(), ARGV[1]
local meta, expiry = tag .. ':meta', tag .. ':expiry'
local writes, pos = {}, 1
while pos <= #blob do
  local _, head, li, lq, ls, ttl, lr = string.find(
    blob, '^(%d+),(%d+),(%d+),(%d+),(%d+);', pos)
  if not head then return redis.error_reply('malformed status batch at ' .. pos) end
  local at = head + 1
  li, lq, ls, lr = tonumber(li), tonumber(lq), tonumber(ls), tonumber(lr)
  local id = string.sub(blob, at, at + li - 1)
  local queue = string.sub(blob, at + li, at + li + lq - 1)
  local state = string.sub(blob, at + li + lq, at + li + lq + ls - 1)
  local record = string.sub(blob, at + li + lq + ls, at + li + lq + ls + lr - 1)
  writes[#writes + 1] = {id, queue, state, tonumber(ttl), record}
  pos = at + li + lq + ls + lr
end
local n = #writes
sweep_statuses(tag, now, 2 * n + 100)
local seq = redis.call('INCRBY', tag .. ':seq', n) - n
for _, w in ipairs(writes) do
  local id, ttl = w[1], w[4]
  local kind = w[3] .. ':' .. w[2]
  local old = redis.call('HGET', meta, id)
  if old ~= kind then
    if old then redis.call('ZREM', tag .. ':by:' .. old, id) end
    redis.call('HSET', meta, id, kind)
    redis.call('SADD', tag .. ':kinds', kind)
  end
  seq = seq + 1
  redis.call('SET', tag .. ':task:' .. id, w[5], 'PX', ttl)
  redis.call('ZADD', expiry, now + ttl, id)
  redis.call('ZADD', tag .. ':by:' .. kind, seq, id)
end
return n
"""

LIST_STATUSES = r"""
-- KEYS: the status tag; ARGV: limit, queue filter, state filter (each '' for any, else the
-- value after '=', so that an empty name still filters).
-- Returns the live records of the matching kinds, most recently written first: the newest
-- `limit` of each matching index, merged by write sequence.
local tag, limit = KEYS[1], tonumber(ARGV[1])
local want_q, want_s = ARGV[2], ARGV[3]
local meta, expiry, kinds_key = tag .. ':meta', tag .. ':expiry', tag .. ':kinds'
sweep_statuses(tag, now_ms(), 1000)
local kinds = {}
if want_q ~= '' and want_s ~= '' then
  kinds[1] = string.sub(want_s, 2) .. ':' .. string.sub(want_q, 2)
else
  for _, kind in ipairs(redis.call('SMEMBERS', kinds_key)) do
    local c = string.find(kind, ':', 1, true)
    -- a kind without ':' was not written here: no filter can match it, and it must not fail
    -- the listing
    if not c then
      if want_s == '' and want_q == '' then kinds[#kinds + 1] = kind end
    elseif (want_s == '' or '=' .. string.sub(kind, 1, c - 1) == want_s)
        and (want_q == '' or '=' .. string.sub(kind, c + 1) == want_q) then
      kinds[#kinds + 1] = kind
    end
  end
end
while true do
  local found = {}
  for _, kind in ipairs(kinds) do
    local top = redis.call('ZREVRANGE', tag .. ':by:' .. kind, 0, limit - 1, 'WITHSCORES')
    if #top == 0 then redis.call('SREM', kinds_key, kind) end
    for j = 1, #top, 2 do found[#found + 1] = {tonumber(top[j + 1]), top[j], kind} end
  end
  table.sort(found, function(a, b) return a[1] > b[1] end)
  local out, stale = {}, 0
  for _, f in ipairs(found) do
    if #out >= limit then break end
    local rec = redis.call('GET', tag .. ':task:' .. f[2])
    if rec then
      out[#out + 1] = rec
    else
      -- Expired an instant ago, not swept yet: forget it, and merge again without it (the
      -- indexes only held the newest `limit` each).
      redis.call('ZREM', tag .. ':by:' .. f[3], f[2])
      redis.call('HDEL', meta, f[2])
      redis.call('ZREM', expiry, f[2])
      stale = stale + 1
    end
  end
  if stale == 0 or #out >= limit then return out end
end
"""

APPEND_LOG = r"""
-- KEYS: the log's tag; ARGV: retention_ms, entries...
-- Each entry carries its own expiry (field x; readers pass over expired ones). The stream is
-- trimmed of what is older than the longest retention a live entry may have (the keep key),
-- so an entry kept for a week is not cut short by a later one kept for a minute.
local tag, now = KEYS[1], now_ms()
local stream, keep = tag .. ':entries', tag .. ':keep'
local retention = tonumber(ARGV[1])
-- a keep value not written here (not a finite number) counts as none: appends never fail
local kept = tonumber(redis.call('GET', keep))
if not kept or kept ~= kept or kept == math.huge then kept = 0 end
local longest = math.max(kept, retention)
redis.call('SET', keep, longest, 'PX', math.max(redis.call('PTTL', keep), retention))
redis.call('XTRIM', stream, 'MINID', '~', math.max(now - longest, 0))
local expires = now + retention
for i = 2, #ARGV do
  redis.call('XADD', stream, '*', 'x', expires, 'd', ARGV[i])
end
return #ARGV - 1
"""

READ_LOG = r"""
-- KEYS: the log's tag; ARGV: cursor (a stream id), limit, largest entry in bytes (-1: any)
-- Returns {cursor, entry...}: up to `limit` live entries after the cursor, oldest first, and
-- the id of the last entry looked at. Expired entries are passed over (at most 1000 more
-- than `limit` per call, so a long run of them cannot hold the server); entries over the
-- largest size are passed over too, counted toward `limit`.
local stream, now = KEYS[1] .. ':entries', now_ms()
local after, limit, largest = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out, got, budget = {after}, 0, limit + 1000
while got < limit and budget > 0 do
  local batch = redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT',
    math.min(limit - got, budget))
  if #batch == 0 then break end
  budget = budget - #batch
  for _, e in ipairs(batch) do
    after = e[1]
    local f, x, d = e[2], nil, nil
    for j = 1, #f, 2 do
      if f[j] == 'x' then x = tonumber(f[j + 1]) elseif f[j] == 'd' then d = f[j + 1] end
    end
    if d and (not x or x > now) then
      got = got + 1
      if largest < 0 or #d <= largest then out[#out + 1] = d end
    end
  end
end
out[1] = after
return out
"""

HEARTBEAT_WORKER = r"""
-- KEYS: the workers tag; ARGV: worker id, ttl_ms, record
local tag, now = KEYS[1], now_ms()
sweep_workers(tag, now)
redis.call('HSET', tag .. ':info', ARGV[1], ARGV[3])
redis.call('ZADD', tag .. ':alive', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

REMOVE_WORKER = r"""
-- KEYS: the workers tag; ARGV: worker id
redis.call('ZREM', KEYS[1] .. ':alive', ARGV[1])
return redis.call('HDEL', KEYS[1] .. ':info', ARGV[1])
"""

LIST_WORKERS = r"""
-- KEYS: the workers tag. ARGV: the most records returned.
-- Returns the records whose heartbeat has not expired.
local tag, now = KEYS[1], now_ms()
sweep_workers(tag, now)
local out = {}
local ids = redis.call('ZRANGEBYSCORE', tag .. ':alive', '(' .. now, '+inf', 'LIMIT', 0, ARGV[1])
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', tag .. ':info', id)
  if rec then out[#out + 1] = rec end
end
return out
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
        "ENQUEUE_RANKED": ENQUEUE_RANKED,
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
        "WRITE_STATUSES": WRITE_STATUSES,
        "LIST_STATUSES": LIST_STATUSES,
        "APPEND_LOG": APPEND_LOG,
        "READ_LOG": READ_LOG,
        "HEARTBEAT_WORKER": HEARTBEAT_WORKER,
        "REMOVE_WORKER": REMOVE_WORKER,
        "LIST_WORKERS": LIST_WORKERS,
    }.items()
}
"""Every script by name, for loading them all at connect time."""
