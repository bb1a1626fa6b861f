"""The ledger on Redis: one set of counters for every worker and replica.

What it guarantees (on one Redis node, 7.0 or later; **Redis Cluster is not supported**: a
script frees holds on the member hashes it finds in the reservation's record, keys it was not
given, and a request's hashes do not share a hash slot):

* **Atomic reserve.** One Lua script checks every line of a request (the sum of its window
  buckets' settled and reserved amounts, plus this request, within the limit) and only if all
  pass records the holds: all or nothing, never interleaved with another process's. An id
  that is open, or was settled within ``settled_ttl``, is refused (``ValueError``): an id
  names one request.
* **Scripts write all or nothing.** Redis does not undo the writes of a script that fails
  halfway, so every script computes its sums (where one can fail) before its first write.
* **Idempotent settle.** A settlement replaces the reservation's holds by the actual amounts
  and leaves a marker under the reservation id (kept ``settled_ttl``, a day): settled again,
  it counts nothing. Usage is counted even when the reservation had already expired.
* **Holds that free themselves.** Every reservation has an expiry (exact microseconds) in a
  sorted set, the record of which reservations are open; ``expire`` (any process may call it,
  concurrently) frees each expired one exactly once, in time proportional to the expired
  ones, so a crashed process's holds come back one TTL after its last keep-alive. A call whose
  outcome is unknown (a timeout) is reported as unavailable; a hold it may have placed is
  freed the same way.
* **No reset job.** A counter is a field named by its window's key (the window start) in its
  policy member's hash, so a new window starts at zero; the fields of windows left behind
  (but the newest of them, which a request planned just before the boundary still reads) are
  dropped when the member's first hold lands in a new bucket, and a member's hash expires
  ``counter_ttl`` after its newest bucket began (longer than any window): ``prune`` has
  nothing to do.
* **Seeded, never twice.** ``seed`` raises a counter's settled amount to at least the
  journal's, never adds it: processes starting together, one starting beside running ones,
  or one reconnecting to a Redis that restarted empty, never count history twice, and never
  lose what Redis counted ahead of the journal.
* **Exact amounts.** Lua numbers are doubles, exact only below 2⁵³, and 64-bit atto-dollars
  overflow at $9.2, so an amount travels and is stored as three integers — the whole part
  (below 2⁵³), then two groups of nine of the journal's 18 decimal places — added and
  compared with carries inside the scripts. A sum whose whole part would reach 2⁵³ is refused
  (``ValueError``) before anything is written.
* **Outages are loud.** A server that cannot be reached, or cannot write (read-only replica,
  out of memory, busy, loading), raises ``LedgerUnavailableError``; what to do then is the
  caller's policy (``ledger_failure``).

Besides idempotent settlement (and the ids it spends) and windows left behind, the answers,
counters and members are those of ``MemoryLedger`` for any sequence of operations
(tests/test_ledger_redis.py checks it).
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.rate_limits import RateLine, RateRefund, epoch_ms, rate_verdict
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.base import (
    DEFAULT_RESERVATION_TTL,
    LedgerUnavailableError,
    LedgerUnseededError,
    ReserveOutcome,
)
from spendgate.store.money import ATTO, from_atto, to_atto

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DEFAULT_COUNTER_TTL",
    "DEFAULT_SETTLED_TTL",
    "WHOLE_LIMIT",
    "LedgerUnavailableError",
    "RedisLedger",
    "decode_amount",
    "encode_amount",
    "encode_atto",
]

_GROUP: Final = 10**9
WHOLE_LIMIT: Final = 2**53
DEFAULT_COUNTER_TTL: Final = timedelta(days=62)
DEFAULT_SETTLED_TTL: Final = timedelta(days=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# How the scripts' own errors start (an amount refused, not an outage).
_SCRIPT_ERROR: Final = "spendgate:"
_EXPIRE_BATCH: Final = 500
# How long one process may take to seed before another may (it died meanwhile).
_SEEDING_MS: Final = 30_000
_LINE_MEMO: Final = 10_000


def encode_amount(amount: Decimal) -> tuple[int, int, int]:
    """(whole, first nine decimals, next nine) of a non-negative amount.

    Places past the 18th are rounded half-even, as the journal's counters store them: a cost
    is a price (up to 18 places) times tokens over a million, so it can have more, and
    refusing it would fail the request while the journal counts it. Raises ValueError for
    negative, non-finite or too large amounts (whole part ≥ 2⁵³, beyond Lua's exact range)."""
    return encode_atto(to_atto(amount))  # ValueError for NaN and infinities


def encode_atto(atto: int) -> tuple[int, int, int]:
    """``encode_amount`` of an amount in attos (what the hot path counts in)."""
    if atto < 0:
        raise ValueError(f"ledger amounts are not negative: {from_atto(atto)}")
    whole, fraction = divmod(atto, ATTO)
    if whole >= WHOLE_LIMIT:
        raise ValueError(
            f"amount {from_atto(atto)} is too large for the Redis ledger (its whole part must "
            f"be below 2**53, what Lua numbers hold exactly)"
        )
    return whole, fraction // _GROUP, fraction % _GROUP


def decode_amount(whole: int, high: int, low: int) -> Decimal:
    return from_atto(_atto_of(whole, high, low))


def _atto_of(whole: int, high: int, low: int) -> int:
    return (whole * _GROUP + high) * _GROUP + low


# Shared Lua. An amount is three numbers (whole, high, low), passed as multiple values, never
# as tables: allocating per addition made a reserve several times slower (measured). Sums of
# parts stay far below 2^53, so carries can wait for ``norm``.
#
# The counters of one policy member live in one hash, two fields per window bucket:
# ``s|<window>`` (settled) and ``r|<window>`` (reserved), each "whole:high:low". A line's
# buckets (a rolling window has ~30) are then read with one HMGET, not one call each. A member
# index set per policy window lists the members.
_LIB: Final = """
local G = 1000000000
local W = 9007199254740992
local floor = math.floor
local function norm(w, h, l)
  local c = floor(l / G)
  l = l - c * G
  h = h + c
  c = floor(h / G)
  h = h - c * G
  w = w + c
  if w < 0 then return 0, 0, 0 end
  -- Every stored whole is below 2^53, so a sum's rounding cannot hide that it reached it.
  if w >= W then
    error(redis.error_reply('spendgate: a sum reached 2^53, beyond what the ledger holds'))
  end
  return w, h, l
end
local function greater(w1, h1, l1, w2, h2, l2)
  if w1 ~= w2 then return w1 > w2 end
  if h1 ~= h2 then return h1 > h2 end
  return l1 > l2
end
-- Carries without the range check: for a comparison with a limit (below 2^53) only.
local function loose(w, h, l)
  local c = floor(l / G)
  l = l - c * G
  h = h + c
  c = floor(h / G)
  return w + c, h - c * G, l
end
-- A whole amount (tokens, requests: most counters) is stored as its digits alone: a rolling
-- window's check parses every bucket, and tonumber is five times faster than the pattern.
local function parse(s)
  if not s then return 0, 0, 0 end
  local whole = tonumber(s)
  if whole then return whole, 0, 0 end
  local w, h, l = string.match(s, '^(%d+):(%d+):(%d+)$')
  return tonumber(w), tonumber(h), tonumber(l)
end
-- Numbers become text through %d: Lua's own conversion (%.14g) would round 2^53.
local function show(w, h, l)
  if h == 0 and l == 0 then return string.format('%d', w) end
  return string.format('%d:%d:%d', w, h, l)
end
-- Every member hash also holds S and R: its settled and its reserved fields summed, whatever
-- their bucket. A window's sum is at most S + R, so a request within its limit by them is
-- within it by the window's buckets too: the check reads two fields, not two per bucket (a
-- rolling window has ~30), and only a request near its limit sums its buckets. ``sums``
-- reads them once per script, as {sw, sh, sl, rw, rh, rl}; a hash without them (new, or
-- written before they existed) gets them from its fields. Every script that writes bucket
-- fields writes them too (``sums_fields``).
local function sums(cache, key, stored_s, stored_r)
  local t = cache[key]
  if t then return t end
  if stored_s == nil then
    local v = redis.call('HMGET', key, 'S', 'R')
    stored_s, stored_r = v[1], v[2]
  end
  if stored_s and stored_r then
    local sw, sh, sl = parse(stored_s)
    local rw, rh, rl = parse(stored_r)
    t = {sw, sh, sl, rw, rh, rl}
  else
    t = {0, 0, 0, 0, 0, 0}
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local kind = string.sub(all[i], 1, 2)
      if kind == 's|' or kind == 'r|' then
        local w, h, l = parse(all[i + 1])
        local at = kind == 's|' and 1 or 4
        t[at], t[at + 1], t[at + 2] = norm(t[at] + w, t[at + 1] + h, t[at + 2] + l)
      end
    end
  end
  cache[key] = t
  return t
end
local function sums_fields(t, into)
  into[#into + 1] = 'S'
  into[#into + 1] = show(t[1], t[2], t[3])
  into[#into + 1] = 'R'
  into[#into + 1] = show(t[4], t[5], t[6])
  return into
end
local function touch(key, ttl, index, member)
  redis.call('PEXPIRE', key, ttl)
  redis.call('SADD', index, member)
  redis.call('PEXPIRE', index, ttl)
end
-- A hold: "w:h:l:<n>:" then the n-byte member index key and the member, what freeing it
-- needs to unindex the counter.
local function hold(w, h, l, index, member)
  return string.format('%d:%d:%d:', w, h, l) .. #index .. ':' .. index .. member
end
-- Changes to counters, gathered per member hash so that applying them reads each hash once
-- (one HMGET) and writes it once (one HSET, one HDEL): a call from a script costs about as
-- much as the arithmetic around it, so settling 20 counters one call per field was most of
-- its time (measured). ``change`` finds (or starts) a counter's entry: amounts to take off
-- its reserved field (r) and to add to its settled one (s, when ``settles``).
local function change(changes, key, window, index, member)
  local hash = changes.by_key[key]
  if hash == nil then
    hash = {by_window = {}, list = {}}
    changes.by_key[key] = hash
    changes.order[#changes.order + 1] = key
  end
  local counter = hash.by_window[window]
  if counter == nil then
    counter = {window = window, index = index, member = member,
               rw = 0, rh = 0, rl = 0, sw = 0, sh = 0, sl = 0, settles = false}
    hash.by_window[window] = counter
    hash.list[#hash.list + 1] = counter
  end
  return counter
end
local function new_changes() return {by_key = {}, order = {}, freed = {}} end
-- Take a reservation's holds off (fields "<hash key>\\n<window>" of its record), and free it
-- when the changes are applied; true when it is open (the expiry set is the record of open
-- reservations, an empty one included). Reads only.
local function unhold(changes, res, expiries, rid)
  if not redis.call('ZSCORE', expiries, rid) then return false end
  local held = redis.call('HGETALL', res)
  for i = 1, #held, 2 do
    local key, window = string.match(held[i], '^(.*)\\n(.*)$')
    local value = held[i + 1]
    local aw, ah, al = parse(string.match(value, '^%d+:%d+:%d+'))
    local n, at = string.match(value, '^%d+:%d+:%d+:(%d+):()')
    local index, member = nil, nil
    if n then
      index = string.sub(value, at, at + n - 1)
      member = string.sub(value, at + n)
    end
    local counter = change(changes, key, window, index, member)
    counter.rw, counter.rh, counter.rl = counter.rw + aw, counter.rh + ah, counter.rl + al
  end
  changes.freed[#changes.freed + 1] = {expiries, rid, res}
  return true
end
-- Apply the changes: compute every new value first (a settled sum may reach 2^53 and raise;
-- Redis does not undo the writes of a script that fails halfway), then write. A reserved
-- field with nothing left held goes; one already gone (a window left behind, or evicted) is
-- not recreated. A counter that gains its first field indexes its member and refreshes the
-- expiries (``ttl``); one left with neither field leaves the window's member index, as
-- MemoryLedger forgets it (so members() agree).
local function apply(changes, ttl)
  local plans, cache = {}, {}
  for _, key in ipairs(changes.order) do
    local hash = changes.by_key[key]
    local fields = {}
    for _, counter in ipairs(hash.list) do
      fields[#fields + 1] = 'r|' .. counter.window
      fields[#fields + 1] = 's|' .. counter.window
    end
    fields[#fields + 1] = 'S'
    fields[#fields + 1] = 'R'
    local values = redis.call('HMGET', key, unpack(fields))
    local t = sums(cache, key, values[#values - 1], values[#values])
    local sets, dels, touches, gone = {}, {}, {}, {}
    for i, counter in ipairs(hash.list) do
      local reserved, settled = values[2 * i - 1], values[2 * i]
      local had = reserved ~= false or settled ~= false
      local has_reserved = false
      if reserved then
        local ow, oh, ol = parse(reserved)
        local w, h, l = norm(ow - counter.rw, oh - counter.rh, ol - counter.rl)
        t[4], t[5], t[6] = norm(t[4] - ow + w, t[5] - oh + h, t[6] - ol + l)
        if w == 0 and h == 0 and l == 0 then
          dels[#dels + 1] = fields[2 * i - 1]
        else
          has_reserved = true
          if counter.rw ~= 0 or counter.rh ~= 0 or counter.rl ~= 0 then
            sets[#sets + 1] = fields[2 * i - 1]
            sets[#sets + 1] = show(w, h, l)
          end
        end
      end
      if counter.settles then
        local w, h, l = parse(settled)
        sets[#sets + 1] = fields[2 * i]
        sets[#sets + 1] = show(norm(w + counter.sw, h + counter.sh, l + counter.sl))
        t[1], t[2], t[3] = norm(t[1] + counter.sw, t[2] + counter.sh, t[3] + counter.sl)
      end
      local has = has_reserved or settled ~= false or counter.settles
      if has and not had then touches[#touches + 1] = counter end
      if had and not has and counter.index then gone[#gone + 1] = counter end
    end
    -- A hash nothing is written to keeps its sums as they are (and one gone stays gone).
    if #sets > 0 or #dels > 0 then sums_fields(t, sets) end
    plans[#plans + 1] = {key, sets, dels, touches, gone}
  end
  for _, freed in ipairs(changes.freed) do
    redis.call('ZREM', freed[1], freed[2])
    redis.call('DEL', freed[3])
  end
  for _, plan in ipairs(plans) do
    local key, sets, dels, touches, gone = unpack(plan)
    if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
    if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
    for _, counter in ipairs(touches) do touch(key, ttl, counter.index, counter.member) end
    for _, counter in ipairs(gone) do redis.call('SREM', counter.index, counter.member) end
  end
end
"""

# A request's lines travel as two strings, not as an argument each: packing hundreds of
# arguments cost a reserve with 20 lines most of its time, in the client and in the server
# (measured: bench/README.md). ``specs`` is what the lines' windows make the same for every
# request (memoised by the client), per line "<length>\n<policy>\t<index key>\t<bucket
# count>\t<window>\t...\t<member>" (windows oldest first; the member last, so it may hold any
# character; ids hold no whitespace); ``amounts`` is per line "<w:h:l>;<limit>," (the limit
# '-' for none, else w:h:l).
_LINES_LIB: Final = r"""
local function lines_of(specs, amounts, first_key)
  local lines, pos, n = {}, 1, 0
  for aw, ah, al, limit in string.gmatch(amounts, '(%d+):(%d+):(%d+);([^,]*),') do
    n = n + 1
    local nl = string.find(specs, '\n', pos, true)
    local stop = nl + tonumber(string.sub(specs, pos, nl - 1))
    local fields, at = {}, nl + 1
    for f = 1, 3 do
      local tab = string.find(specs, '\t', at, true)
      fields[f] = string.sub(specs, at, tab - 1)
      at = tab + 1
    end
    local windows = {}
    for w = 1, tonumber(fields[3]) do
      local tab = string.find(specs, '\t', at, true)
      windows[w] = string.sub(specs, at, tab - 1)
      at = tab + 1
    end
    lines[n] = {policy = fields[1], index = fields[2], windows = windows,
                member = string.sub(specs, at, stop), key = KEYS[first_key + n - 1],
                limit = limit, w = tonumber(aw), h = tonumber(ah), l = tonumber(al)}
    pos = stop + 1
  end
  return lines
end
"""

# Rate limits' buckets (``domain.rate_limits``: the same integer arithmetic): a bucket is the
# string "<level>:<at ms>", its level drained by <per minute> each millisecond since.
_RATE_LIB: Final = """
-- The time in ms: the caller's, or ('') the server's, one clock for every replica.
local function rate_clock(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A bucket's level at ``now`` and the time to store with it (never moving backwards).
local function rate_level(key, per, now)
  local stored = redis.call('GET', key)
  if not stored then return 0, now end
  local l, a = string.match(stored, '^(%d+):(%d+)$')
  local level, at = tonumber(l), tonumber(a)
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  level = level - elapsed * per
  if level < 0 then level = 0 end
  if at < now then at = now end
  return level, at
end
-- Kept until it is empty again, and a minute more (calls may pass their own clock, which may
-- trail the server's): no bucket outlives its use for long.
local function rate_store(key, level, at, per)
  redis.call('SET', key, string.format('%d:%d', level, at), 'PX', math.ceil(level / per) + 60000)
end
"""

# KEYS: reservation hash, expiries zset, settled marker, then the member hash of every line,
# then the bucket of every rate line, then (guarded) the seed marker.
# ARGV: rid, expires_at µs, counter_ttl_ms, the lines' specs, their amounts (above), '1' when
# guarded (else ''), the rate lines ("<per minute>:<amount>:<limit id>\n" each, see
# ``domain.rate_limits``), the time in ms ('': the server's, one clock for every replica).
# Returns {1, levels...} admitted (each rate bucket's level after), {0, policy, consumed
# w:h:l} refused, {-1} open id, {-2} settled id, {-3} not seeded (guarded: a Redis that lost
# its data must not admit against zero), {-4, index, levels...} refused by rate line
# ``index`` (levels: those before it after admission, then its own as it is).
_RESERVE: Final = (
    _LIB
    + _LINES_LIB
    + _RATE_LIB
    + """
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[#KEYS]) == 0 then return {-3} end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {-1} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {-2} end
local lines = lines_of(ARGV[4], ARGV[5], 4)
local seen, cache = {}, {}
-- A line's member hash: its sums, and the fields of the bucket it would hold in (read once,
-- in one call, for the check and the write).
local function look(line)
  local window = line.windows[#line.windows]
  local name = line.key .. '\\n' .. window
  if seen[name] == nil then
    local v = redis.call('HMGET', line.key, 'S', 'R', 'r|' .. window, 's|' .. window)
    sums(cache, line.key, v[1], v[2])
    seen[name] = {v[3], v[4]}
  end
  return cache[line.key], name
end
for _, line in ipairs(lines) do
  if line.limit ~= '-' then
    local lw, lh, ll = parse(line.limit)
    local t = look(line)
    local uw, uh, ul = loose(t[1] + t[4] + line.w, t[2] + t[5] + line.h, t[3] + t[6] + line.l)
    if greater(uw, uh, ul, lw, lh, ll) then  -- near the limit: the window's buckets exactly
      local fields = {}
      for _, window in ipairs(line.windows) do
        fields[#fields + 1] = 's|' .. window
        fields[#fields + 1] = 'r|' .. window
      end
      local w, h, l = 0, 0, 0
      local values = redis.call('HMGET', line.key, unpack(fields))
      for _, value in ipairs(values) do
        local vw, vh, vl = parse(value)
        w, h, l = w + vw, h + vh, l + vl
      end
      local tw, th, tl = norm(w + line.w, h + line.h, l + line.l)
      if greater(tw, th, tl, lw, lh, ll) then
        return {0, line.policy, show(norm(w, h, l))}
      end
    end
  end
end
-- Rate limits: checked after the budgets (a budget's refusal is final, theirs is not), before
-- any write.
local rates, levels = {}, {}
if ARGV[7] ~= '' then
  local now = rate_clock(ARGV[8])
  local k = 4 + #lines
  for per, amount in string.gmatch(ARGV[7], '(%d+):(%d+):[^\\n]*\\n') do
    per, amount = tonumber(per), tonumber(amount)
    local key = KEYS[k]
    k = k + 1
    local level, at = rate_level(key, per, now)
    local after = level + amount * 60000
    if after > per * 60000 then
      levels[#levels + 1] = string.format('%d', level)
      return {-4, #rates + 1, unpack(levels)}
    end
    levels[#levels + 1] = string.format('%d', after)
    rates[#rates + 1] = {key, after, at, per}
  end
end
-- All pass. Sum the holds per counter (a member hash and window), in first-seen order.
local order, holds = {}, {}
for _, line in ipairs(lines) do
  local window = line.windows[#line.windows]
  local _, name = look(line)
  local held = holds[name]
  if held == nil then
    holds[name] = {line.key, window, line.w, line.h, line.l, line.index, line.member,
                   line.windows[1]}
    order[#order + 1] = name
  else
    held[3], held[4], held[5] = norm(held[3] + line.w, held[4] + line.h, held[5] + line.l)
  end
end
-- Compute every new total (norm may raise), then write. A bucket is new when it has neither
-- a settled nor a reserved field (a counter's reserved field goes when nothing is held).
for _, name in ipairs(order) do
  local held = holds[name]
  local found = seen[name]
  local w, h, l = parse(found[1])
  held[9] = show(norm(w + held[3], h + held[4], l + held[5]))
  held[10] = found[1] ~= false or found[2] ~= false
  local t = cache[held[1]]
  t[4], t[5], t[6] = norm(t[4] + held[3], t[5] + held[4], t[6] + held[5])
end
for _, rate in ipairs(rates) do rate_store(unpack(rate)) end
local ttl = ARGV[3]
local record = {}
for _, name in ipairs(order) do
  local key, window, aw, ah, al, index, member, oldest, total, existed = unpack(holds[name])
  local t = cache[key]
  if not existed then
    -- The first hold in a new bucket: drop the fields of buckets the window left behind
    -- (keys are UTC ISO times: they compare as times), but the newest of them: a request
    -- planned just before a boundary, reserving just after another one's first hold in the
    -- new bucket, still reads the window it was planned in, whole (else it would pass a
    -- limit already used up there). Their amounts leave the sums. Then refresh the expiry
    -- and index the member.
    local names = redis.call('HKEYS', key)
    local newest = nil
    for _, field in ipairs(names) do
      local bucket = string.sub(field, 3)
      if string.sub(field, 2, 2) == '|' and bucket < oldest
         and (newest == nil or bucket > newest) then
        newest = bucket
      end
    end
    if newest ~= nil then
      local stale = {}
      for _, field in ipairs(names) do
        if string.sub(field, 2, 2) == '|' and string.sub(field, 3) < newest then
          stale[#stale + 1] = field
        end
      end
      if #stale > 0 then
        local values = redis.call('HMGET', key, unpack(stale))
        for i, field in ipairs(stale) do
          local w, h, l = parse(values[i])
          local at = string.sub(field, 1, 1) == 's' and 1 or 4
          t[at], t[at + 1], t[at + 2] = norm(t[at] - w, t[at + 1] - h, t[at + 2] - l)
        end
        redis.call('HDEL', key, unpack(stale))
      end
    end
    touch(key, ttl, index, member)
  end
  redis.call('HSET', key, unpack(sums_fields(t, {'r|' .. window, total})))
  record[#record + 1] = name
  record[#record + 1] = hold(aw, ah, al, index, member)
end
if #record > 0 then redis.call('HSET', KEYS[1], unpack(record)) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {1, unpack(levels)}
"""
)

# Settlements, several per call (a process sends what queued up meanwhile: the counters they
# share are read and written once). KEYS: expiries zset, then per settlement its reservation
# hash and settled marker, then the member hash of every counter of every settlement, in
# order, then (guarded) the seed marker. ARGV: marker ttl ms, counter ttl ms, (guarded) when
# each settlement was settled, "<µs>," each (else ''), then per settlement: rid, counter count,
# the counters' specs and amounts: per counter "<length>\n<window>\t<member index
# key>\t<member>" and "<w:h:l>,". A settlement whose marker exists (a retry) counts nothing;
# guarded, nor does one settled before the seed marker's instant (the seed counted it: see
# ``reseed``). Returns how many counted, or -1 when guarded and not seeded.
_SETTLE: Final = (
    _LIB
    + """
local changes = new_changes()
local count = (#ARGV - 3) / 4
local at, first_key = 4, 1 + 2 * count
local marked, done = {}, {}
local since, times = nil, {}
if ARGV[3] ~= '' then
  since = redis.call('GET', KEYS[#KEYS])
  if not since then return -1 end
  since = tonumber(since)
  for t in string.gmatch(ARGV[3], '(%d+),') do times[#times + 1] = tonumber(t) end
end
for n = 1, count do
  local rid, counters, specs = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2]
  local res, marker = KEYS[2 * n], KEYS[2 * n + 1]
  if since and times[n] < since then done[rid] = true end
  if not done[rid] and redis.call('EXISTS', marker) == 0 then
    done[rid] = true
    marked[#marked + 1] = marker
    unhold(changes, res, KEYS[1], rid)
    local pos, i = 1, first_key
    for aw, ah, al in string.gmatch(ARGV[at + 3], '(%d+):(%d+):(%d+),') do
      i = i + 1
      local nl = string.find(specs, '\\n', pos, true)
      local stop = nl + tonumber(string.sub(specs, pos, nl - 1))
      local tab1 = string.find(specs, '\\t', nl + 1, true)
      local tab2 = string.find(specs, '\\t', tab1 + 1, true)
      local counter = change(changes, KEYS[i], string.sub(specs, nl + 1, tab1 - 1),
                             string.sub(specs, tab1 + 1, tab2 - 1),
                             string.sub(specs, tab2 + 1, stop))
      counter.sw, counter.sh, counter.sl = norm(counter.sw + tonumber(aw),
                                                counter.sh + tonumber(ah),
                                                counter.sl + tonumber(al))
      counter.settles = true
      pos = stop + 1
    end
  end
  first_key = first_key + counters
  at = at + 4
end
apply(changes, ARGV[2])
for _, marker in ipairs(marked) do redis.call('SET', marker, '1', 'PX', ARGV[1]) end
return #marked
"""
)

# KEYS: reservation hash, expiries zset. ARGV: rid.
_RELEASE: Final = (
    _LIB
    + """
local changes = new_changes()
if not unhold(changes, KEYS[1], KEYS[2], ARGV[1]) then return 0 end
apply(changes, 0)
return 1
"""
)

# KEYS: rate buckets. ARGV: the time in ms ('': the server's), then per bucket
# "<per minute>:<amount>". Gives tokens back (a bucket never goes below empty: then it goes).
_REFUND: Final = (
    _RATE_LIB
    + """
local now = rate_clock(ARGV[1])
for i = 1, #KEYS do
  local per, amount = string.match(ARGV[i + 1], '^(%d+):(%d+)$')
  per, amount = tonumber(per), tonumber(amount)
  local level, at = rate_level(KEYS[i], per, now)
  level = level - amount * 60000
  if level > 0 then rate_store(KEYS[i], level, at, per) else redis.call('DEL', KEYS[i]) end
end
return 0
"""
)

# KEYS: expiries zset. ARGV: until µs, then reservation ids. Never shortens an expiry.
_EXTEND: Final = """
local extended = 0
local until_us = tonumber(ARGV[1])
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score then
    extended = extended + 1
    if tonumber(score) < until_us then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
  end
end
return extended
"""

# KEYS: expiries zset. ARGV: now µs, batch size, reservation key prefix. Each due id is freed
# here or was freed by a concurrent caller's script before this one ran: never twice.
_EXPIRE: Final = (
    _LIB
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local freed = 0
local changes = new_changes()
for _, rid in ipairs(due) do
  if unhold(changes, ARGV[3] .. rid, KEYS[1], rid) then freed = freed + 1 end
end
apply(changes, 0)
return {freed, #due}
"""
)

# KEYS: the member hashes. ARGV: counter ttl ms, then per counter: window, amount w:h:l,
# member index key, member. Raises a counter's settled amount to at least the given one (the
# journal's): never lower, so nothing Redis counted is lost, and never added, so history is
# never counted twice.
_SEED: Final = (
    _LIB
    + """
-- Compute every raise and its key's new sums first (norm may raise), then write.
local raises, cache = {}, {}
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  local field = 's|' .. ARGV[at]
  local w, h, l = parse(redis.call('HGET', KEYS[i], field))
  local jw, jh, jl = parse(ARGV[at + 1])
  if greater(jw, jh, jl, w, h, l) then
    local t = sums(cache, KEYS[i])
    t[1], t[2], t[3] = norm(t[1] + jw - w, t[2] + jh - h, t[3] + jl - l)
    raises[#raises + 1] = {KEYS[i], field, show(jw, jh, jl), ARGV[at + 2], ARGV[at + 3]}
  end
end
for _, raise in ipairs(raises) do
  local key, field, value, index, member = unpack(raise)
  redis.call('HSET', key, unpack(sums_fields(cache[key], {field, value})))
  touch(key, ARGV[1], index, member)
end
return #raises
"""
)


def _show(amount: Decimal) -> str:
    """An amount as the scripts take it: "whole:high:low" (they store a whole one as its
    digits alone, which ``_parse`` reads too)."""
    whole, high, low = encode_amount(amount)
    return f"{whole}:{high}:{low}"


@functools.lru_cache(maxsize=4096)
def _shown(atto: int) -> str:
    """``_show`` of an amount in attos, memoised: the same limits come with every request,
    and the same estimates with every request of one shape."""
    whole, high, low = encode_atto(atto)
    return f"{whole}:{high}:{low}"


def _micros(at: datetime) -> int:
    """Exact microseconds since the epoch (a naive time is taken as UTC): expiries compare as
    ``MemoryLedger``'s datetimes do, and stay exact as sorted-set scores until 2255."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // _MICROSECOND


def _milliseconds(span: timedelta) -> int:
    return max(1, span // timedelta(milliseconds=1))


class RedisLedger:
    """Counters and reservations in Redis, for every process that shares them (asyncio).

    ``client`` is a ``redis.asyncio.Redis`` (bytes or decoded responses); ``prefix`` starts
    every key, so several deployments (or tests) can share a server. Outages raise
    ``LedgerUnavailableError``; what to do then is the caller's policy (``ledger_failure``)."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "spendgate",
        counter_ttl: timedelta = DEFAULT_COUNTER_TTL,
        settled_ttl: timedelta = DEFAULT_SETTLED_TTL,
        guarded: bool = False,
        server_clock: bool = True,
    ) -> None:
        self._client = client
        # Rate limits' buckets drain by Redis's clock (TIME), so replicas whose clocks differ
        # agree; without it, by the ``now`` each call passes (to compare with MemoryLedger).
        self.server_clock = server_clock
        self.prefix = prefix
        # Guarded (the gateway's): reserve and settle refuse until ``reseed`` has run on this
        # server (``LedgerUnseededError``), so a Redis that restarted empty never admits
        # against zero, and a settlement the seed already counted is not counted again.
        self.guarded = guarded
        self._seed_key = f"{prefix}:seeded"
        self._seeding_key = f"{prefix}:seeding"
        self._counter_ttl_ms = _milliseconds(counter_ttl)
        self._settled_ttl_ms = _milliseconds(settled_ttl)
        self._expiries = f"{prefix}:expiries"
        # register_script: EVALSHA, loading the script again if the server lost it.
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)
        self._expire = client.register_script(_EXPIRE)
        self._seed = client.register_script(_SEED)
        self._refund = client.register_script(_REFUND)
        self._line_specs: dict[tuple[int, str], tuple[tuple[CounterKey, ...], str, str]] = {}
        self._counter_specs: dict[CounterKey, tuple[str, str]] = {}

    # -- keys ------------------------------------------------------------------------------

    def member_key(self, policy_id: str, member: str) -> str:
        """The hash holding every window bucket of one policy member. Lengths go into the key,
        so ids holding the separator cannot collide."""
        return f"{self.prefix}:c:{len(policy_id)}:{policy_id}:{len(member)}:{member}"

    def _line_spec(self, line: ReservationLine) -> tuple[str, str]:
        """A line's member hash and its spec (see ``_LINES_LIB``), memoised by the identity
        of its bucket tuple (``counters_for`` hands out the same one while a window lasts):
        the same buckets come back with every request of the window (a rolling one has ~30)."""
        memo_key = (id(line.keys), line.policy_id)
        found = self._line_specs.get(memo_key)
        if found is not None and found[0] is line.keys:
            return found[1], found[2]
        if len(self._line_specs) >= _LINE_MEMO:
            self._line_specs.clear()
        record = line.keys[-1]
        windows = "".join(f"{key.window}\t" for key in line.keys)
        body = (
            f"{line.policy_id}\t{self._index_key(record.policy_id, record.window)}\t"
            f"{len(line.keys)}\t{windows}{record.member}"
        )
        spec = f"{len(body.encode())}\n{body}"  # Lua counts bytes
        member_key = self.member_key(record.policy_id, record.member)
        self._line_specs[memo_key] = (line.keys, member_key, spec)
        return member_key, spec

    def _counter_spec(self, key: CounterKey) -> tuple[str, str]:
        """A counter's member hash and its settle spec, memoised."""
        found = self._counter_specs.get(key)
        if found is None:
            if len(self._counter_specs) >= _LINE_MEMO:
                self._counter_specs.clear()
            body = f"{key.window}\t{self._index_key(key.policy_id, key.window)}\t{key.member}"
            found = self._counter_specs[key] = (
                self.member_key(key.policy_id, key.member),
                f"{len(body.encode())}\n{body}",
            )
        return found

    def _index_key(self, policy_id: str, window: str) -> str:
        return f"{self.prefix}:m:{len(policy_id)}:{policy_id}:{window}"

    def _reservation_key(self, reservation_id: str) -> str:
        return f"{self.prefix}:r:{reservation_id}"

    def _settled_key(self, reservation_id: str) -> str:
        return f"{self.prefix}:settled:{reservation_id}"

    def _bucket_key(self, bucket: str) -> str:
        return f"{self.prefix}:rl:{bucket}"

    def _clock(self, now: datetime) -> str:
        return "" if self.server_clock else str(epoch_ms(now))

    # -- operations ----------------------------------------------------------------------------

    async def reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome:
        keys = [
            self._reservation_key(reservation_id),
            self._expiries,
            self._settled_key(reservation_id),
        ]
        specs, amounts = [], []
        for line in lines:
            member_key, spec = self._line_spec(line)
            keys.append(member_key)
            specs.append(spec)
            limit = "-" if line.limit_atto is None else _shown(line.limit_atto)
            amounts.append(f"{_shown(line.amount_atto)};{limit},")
        args = [
            reservation_id,
            _micros(now + ttl),
            self._counter_ttl_ms,
            "".join(specs),
            "".join(amounts),
            "1" if self.guarded else "",
            "".join(f"{r.per_minute}:{r.amount}:{r.limit_id}\n" for r in rates),
            self._clock(now),
        ]
        keys += [self._bucket_key(rate.bucket) for rate in rates]
        if self.guarded:
            keys.append(self._seed_key)
        result = await self._call(self._reserve, keys, args)
        status = int(result[0])
        if status == 1:
            if not rates:
                return ReserveOutcome(True)
            return ReserveOutcome(True, rate=rate_verdict(rates, [int(v) for v in result[1:]]))
        if status == -4:
            index = int(result[1]) - 1
            verdict = rate_verdict(rates, [int(v) for v in result[2:]], index)
            return ReserveOutcome(False, rates[index].limit_id, rate=verdict)
        if status == -3:
            raise LedgerUnseededError("the Redis ledger has not been seeded from the journal")
        if status == -1:
            raise ValueError(f"reservation {reservation_id} already exists")
        if status == -2:
            raise ValueError(f"reservation {reservation_id} was already settled")
        return ReserveOutcome(False, _text(result[1]), from_atto(_parse(result[2])))

    async def settle(
        self,
        reservation_id: str,
        actual: Mapping[CounterKey, int],
        settled_at: datetime | None = None,
    ) -> None:
        """Replace the reservation's holds (if still held) by ``actual`` (attos); a second
        settlement of the same id (a retry) counts nothing. Guarded, ``settled_at`` (when the
        gateway settled it, hence journaled it: now if not given) tells whether the seed
        counted it already: settled before the seed's ``since``, it did."""
        await self.settle_many(
            [(reservation_id, actual)], None if settled_at is None else [settled_at]
        )

    async def settle_many(
        self,
        settlements: Sequence[tuple[str, Mapping[CounterKey, int]]],
        settled_at: Sequence[datetime] | None = None,
    ) -> int:
        """``settle`` each of ``settlements`` in one script (all or nothing); returns how many
        counted (the others were settled before, or guarded, counted by the seed). Guarded,
        ``settled_at`` says when each was settled (now if not given); raises
        ``LedgerUnseededError`` while the server is not seeded."""
        keys = [self._expiries]
        counters: list[str] = []
        times = ""
        if self.guarded:
            now = datetime.now(UTC)
            at = settled_at or [now] * len(settlements)
            times = "".join(f"{_micros(when)}," for when in at)
        args: list[Any] = [self._settled_ttl_ms, self._counter_ttl_ms, times]
        for reservation_id, actual in settlements:
            keys += [self._reservation_key(reservation_id), self._settled_key(reservation_id)]
            specs, amounts = [], []
            for key, amount in actual.items():
                member_key, spec = self._counter_spec(key)
                counters.append(member_key)
                specs.append(spec)
                amounts.append(f"{_shown(amount)},")
            args += [reservation_id, len(actual), "".join(specs), "".join(amounts)]
        if self.guarded:
            counters.append(self._seed_key)
        counted = int(await self._call(self._settle, keys + counters, args))
        if counted < 0:
            raise LedgerUnseededError("the Redis ledger has not been seeded from the journal")
        return counted

    async def refund(self, refunds: Sequence[RateRefund], now: datetime) -> None:
        keys = [self._bucket_key(refund.bucket) for refund in refunds]
        args = [self._clock(now), *(f"{r.per_minute}:{r.amount}" for r in refunds)]
        await self._call(self._refund, keys, args)

    async def release(self, reservation_id: str) -> None:
        keys = [self._reservation_key(reservation_id), self._expiries]
        await self._call(self._release, keys, [reservation_id])

    async def extend(self, reservation_ids: Collection[str], until: datetime) -> int:
        """Keep the open ones of ``reservation_ids`` until at least ``until`` (one script);
        returns how many are open."""
        if not reservation_ids:
            return 0
        args = [_micros(until), *reservation_ids]
        return int(await self._call(self._extend, [self._expiries], args))

    async def expire(self, now: datetime) -> int:
        """Free every reservation whose expiry is at or before ``now`` (in batches, each one
        script); returns how many this call freed."""
        freed = 0
        while True:
            result = await self._call(
                self._expire,
                [self._expiries],
                [_micros(now), _EXPIRE_BATCH, f"{self.prefix}:r:"],
            )
            freed += int(result[0])
            if int(result[1]) < _EXPIRE_BATCH:
                return freed

    async def open_reservations(self) -> int:
        """How many reservations are held (by every process)."""
        try:
            return int(await self._client.zcard(self._expiries))
        except Exception as error:
            await self._failed(error)
            raise

    async def read(self, key: CounterKey) -> CounterState:
        return (await self.read_many([key]))[key]

    async def read_total(self, keys: Sequence[CounterKey]) -> CounterState:
        """Settled and reserved summed over ``keys`` (each as often as listed, as
        ``MemoryLedger`` sums them), in one round trip; in atto units, so exactly."""
        states = await self.read_many(keys)
        settled = sum(states[key].settled_atto for key in keys)
        reserved = sum(states[key].reserved_atto for key in keys)
        return CounterState(settled, reserved)

    async def read_many(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """Every counter of ``keys`` (zero when Redis has none), in one round trip."""
        unique = list(dict.fromkeys(keys))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in unique:
                    pipe.hmget(
                        self.member_key(key.policy_id, key.member),
                        f"s|{key.window}",
                        f"r|{key.window}",
                    )
                rows = await pipe.execute()
        except Exception as error:
            await self._failed(error)
            raise
        return {
            key: CounterState(_parse(settled), _parse(reserved))
            for key, (settled, reserved) in zip(unique, rows, strict=True)
        }

    async def members(self, policy_id: str, window_keys: Collection[str]) -> set[str]:
        """The members with a settled or reserved counter of ``policy_id`` in any of
        ``window_keys`` (one SUNION of the per-window index sets)."""
        if not window_keys:
            return set()
        try:
            found = await self._client.sunion(
                [self._index_key(policy_id, window) for window in window_keys]
            )
        except Exception as error:
            await self._failed(error)
            raise
        return {_text(member) for member in found}

    async def members_many(self, windows: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
        """``members`` of every counter id of ``windows`` (with its window keys), in one round
        trip."""
        asked = [(policy_id, keys) for policy_id, keys in windows.items() if keys]
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for policy_id, keys in asked:
                    pipe.sunion([self._index_key(policy_id, window) for window in keys])
                found = await pipe.execute()
        except Exception as error:
            await self._failed(error)
            raise
        result: dict[str, set[str]] = {policy_id: set() for policy_id in windows}
        for (policy_id, _), members in zip(asked, found, strict=True):
            result[policy_id] = {_text(member) for member in members}
        return result

    async def seed(self, settled: Mapping[CounterKey, Decimal]) -> int:
        """Raise each counter's settled amount to at least ``settled``'s (the journal's):
        a cold or restarted Redis gets the history, a running one keeps what it counted
        (the journal trails it by a writer batch). Returns how many were raised (in batches
        of a thousand counters, each one script)."""
        items = list(settled.items())
        written = 0
        for start in range(0, len(items), 1000):
            keys: list[str] = []
            args: list[Any] = [self._counter_ttl_ms]
            self._add_counters(items[start : start + 1000], keys, args)
            written += int(await self._call(self._seed, keys, args))
        return written

    async def is_seeded(self) -> bool:
        """Whether ``reseed`` has run on this server since it last started empty."""
        try:
            return bool(await self._client.exists(self._seed_key))
        except Exception as error:
            await self._failed(error)
            raise

    async def seed_mark(self) -> str | None:
        """The seed marker (its instant, see ``reseed``): None until seeded, another value
        after each seed, so a process learns that the server lost its data since it looked."""
        try:
            mark = await self._client.get(self._seed_key)
        except Exception as error:
            await self._failed(error)
            raise
        return None if mark is None else _text(mark)

    async def reseed(
        self, settled: Mapping[CounterKey, Decimal], recent: Collection[str], since: datetime
    ) -> bool:
        """Seed a server that has no seed marker (started empty, or never seeded); False when
        it has one (nothing to do). ``settled``: the journal's counters; ``recent``: the ids
        of the settlements it journaled from ``since`` on, read in the same snapshot.

        While the marker is missing, guarded reserves and settlements write nothing, so the
        seed starts from a server holding nothing of them: it raises the counters to the
        journal's, writes a settled marker for every recent id (a settlement still queued in
        some process, if the journal has it, is then not counted twice; if not, it counts
        when it arrives), then sets the marker to ``since`` (a settlement from before it is
        in the journal's counters). One process seeds at a time (a lock that expires if it
        dies): another finding it taken gets ``LedgerUnseededError`` and tries again later."""
        client = self._client
        token = secrets.token_hex(8)
        try:
            if await client.exists(self._seed_key):
                return False
            if not await client.set(self._seeding_key, token, nx=True, px=_SEEDING_MS):
                raise LedgerUnseededError("another process is seeding the Redis ledger")
            if await client.exists(self._seed_key):  # seeded before the lock was free
                await client.delete(self._seeding_key)
                return False
            ids = list(recent)
            for start in range(0, len(ids), 1000):
                async with client.pipeline(transaction=False) as pipe:
                    for rid in ids[start : start + 1000]:
                        pipe.set(self._settled_key(rid), "1", px=self._settled_ttl_ms)
                    await pipe.execute()
            await self.seed(settled)
            await client.set(self._seed_key, str(_micros(since)))
            if _text(await client.get(self._seeding_key) or b"") == token:
                await client.delete(self._seeding_key)
        except LedgerUnseededError:
            raise
        except Exception as error:
            await self._failed(error)
            raise
        return True

    async def prune(self, live: Mapping[str, str]) -> int:
        """Nothing to do, returns 0: member hashes and indexes expire by themselves
        ``counter_ttl`` after their newest bucket began, and a new bucket's first hold drops
        the fields of windows left behind."""
        return 0

    def _add_counters(
        self, amounts: Iterable[tuple[CounterKey, Decimal]], keys: list[str], args: list[Any]
    ) -> None:
        """The scripts' per-counter arguments: its member hash in ``keys``; its window, the
        amount, the member index and the member in ``args``."""
        for key, amount in amounts:
            keys.append(self.member_key(key.policy_id, key.member))
            args += [
                key.window,
                _show(amount),
                self._index_key(key.policy_id, key.window),
                key.member,
            ]

    async def _failed(self, error: Exception) -> None:
        """Raise ``error`` translated (``_raise_translated``); on an outage, first close the
        pool's idle connections: after a restart of the server each of them would fail its
        next command once (its socket is dead), which would read as a new outage when the
        server is back."""
        try:
            _raise_translated(error)
        except LedgerUnavailableError:
            with contextlib.suppress(Exception):
                await self._client.connection_pool.disconnect(inuse_connections=False)
            raise

    async def _call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except Exception as error:
            await self._failed(error)
            raise


def _raise_translated(error: Exception) -> None:
    """Raise ``LedgerUnavailableError`` for an outage, ``ValueError`` for an amount a script
    refused; return for anything else (a bug: the caller re-raises it as it is)."""
    from redis.exceptions import (
        ConnectionError,
        MasterDownError,
        OutOfMemoryError,
        ReadOnlyError,
        ResponseError,
        TimeoutError,
    )

    # ConnectionError covers refused, reset, authentication and LOADING; OSError what the
    # socket raises unwrapped. A server that cannot write is as unusable to the caller.
    outage = (
        ConnectionError,
        TimeoutError,
        OSError,
        ReadOnlyError,
        OutOfMemoryError,
        MasterDownError,
    )
    message = str(error)
    if isinstance(error, outage) or (
        isinstance(error, ResponseError) and message.startswith("BUSY")
    ):
        detail = message or type(error).__name__
        raise LedgerUnavailableError(f"Redis ledger unavailable: {detail}") from error
    if isinstance(error, ResponseError) and message.startswith(_SCRIPT_ERROR):
        raise ValueError(message.split(" script:", 1)[0]) from error


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(text: bytes | str | None) -> int:
    """A stored amount, in attos."""
    if text is None:
        return 0
    parts = _text(text).split(":")
    if len(parts) == 1:
        return int(parts[0]) * ATTO
    whole, high, low = (int(part) for part in parts)
    return _atto_of(whole, high, low)
