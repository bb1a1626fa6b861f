"""The ledger on Redis: one set of counters for every worker and replica.

What it guarantees (on one Redis node; Redis Cluster is not supported, since scripts touch
keys they learn while running):

* **Atomic reserve.** One Lua script checks every line of a request (the sum of its window
  buckets' settled and reserved amounts, plus this request, within the limit) and only if all
  pass records the holds: all or nothing, never interleaved with another process's.
* **Idempotent settle.** A settlement replaces the reservation's holds by the actual amounts
  and leaves a marker under the reservation id (kept a day): settled again, it counts nothing.
  Usage is counted even when the reservation had already expired.
* **Holds that free themselves.** Every reservation has an expiry in a sorted set; ``expire``
  (any process may call it, concurrently) frees each expired one exactly once, so a crashed
  process's holds come back one TTL after its last keep-alive.
* **No reset job.** A counter is a field named by its window's key (the window start) in its
  policy member's hash, so a new window starts at zero; the fields of windows left behind are
  dropped when the member's first hold lands in a new bucket, and a member's hash expires
  ``counter_ttl`` after its newest bucket began (longer than any window).
* **Seeded, never twice.** ``seed`` raises a counter's settled amount to at least the
  journal's, never adds it: processes starting together, one starting beside running ones,
  or one reconnecting to a Redis that restarted empty, never count history twice, and never
  lose what Redis counted ahead of the journal.

Amounts are exact: Lua numbers are doubles, exact only below 2⁵³, so an amount travels and is
stored as three integers — the whole part, then two groups of nine decimal places (the
journal's 18) — added and compared with carries inside the scripts.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.base import DEFAULT_RESERVATION_TTL, LedgerUnavailableError, ReserveOutcome
from spendgate.store.money import ATTO, from_atto, to_atto

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisLedger", "decode_amount", "encode_amount"]

_GROUP: Final = 10**9
_WHOLE_LIMIT: Final = 2**53
DEFAULT_COUNTER_TTL: Final = timedelta(days=62)
_SETTLED_MARK_TTL: Final = timedelta(days=1)
_EXPIRE_BATCH: Final = 500
_LINE_MEMO: Final = 10_000


def encode_amount(amount: Decimal) -> tuple[int, int, int]:
    """(whole, first nine decimals, next nine) of a non-negative amount, rounded half-even at
    the 18th place as the journal stores it. Raises ValueError outside what doubles hold."""
    atto = to_atto(amount)
    if atto < 0:
        raise ValueError(f"ledger amounts are not negative: {amount}")
    whole, fraction = divmod(atto, ATTO)
    if whole >= _WHOLE_LIMIT:
        raise ValueError(f"amount {amount} is too large for the Redis ledger (at most 2**53)")
    return whole, fraction // _GROUP, fraction % _GROUP


def decode_amount(whole: int, high: int, low: int) -> Decimal:
    return from_atto((whole * _GROUP + high) * _GROUP + low)


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
local floor = math.floor
local function norm(w, h, l)
  local c = floor(l / G)
  l = l - c * G
  h = h + c
  c = floor(h / G)
  h = h - c * G
  w = w + c
  if w < 0 then return 0, 0, 0 end
  return w, h, l
end
local function greater(w1, h1, l1, w2, h2, l2)
  if w1 ~= w2 then return w1 > w2 end
  if h1 ~= h2 then return h1 > h2 end
  return l1 > l2
end
local function parse(s)
  if not s then return 0, 0, 0 end
  local w, h, l = string.match(s, '^(%d+):(%d+):(%d+)$')
  return tonumber(w), tonumber(h), tonumber(l)
end
-- Numbers become text through %d: Lua's own conversion (%.14g) would round 2^53.
local function show(w, h, l) return string.format('%d:%d:%d', w, h, l) end
-- Add to a field; false when the field is new (the caller then refreshes the expiry and
-- the member index, once per bucket rather than on every write).
local function field_add(key, field, aw, ah, al)
  local stored = redis.call('HGET', key, field)
  local w, h, l = parse(stored)
  redis.call('HSET', key, field, show(norm(w + aw, h + ah, l + al)))
  return stored ~= false
end
local function touch(key, ttl, index, member)
  redis.call('PEXPIRE', key, ttl)
  redis.call('SADD', index, member)
  redis.call('PEXPIRE', index, ttl)
end
-- Free a reservation's holds (fields "<hash key>\\n<window>"); true when it existed.
local function unhold(res, expiries, rid)
  local held = redis.call('HGETALL', res)
  if #held == 0 then return false end
  for i = 1, #held, 2 do
    local key, window = string.match(held[i], '^(.*)\\n(.*)$')
    local aw, ah, al = parse(held[i + 1])
    field_add(key, 'r|' .. window, -aw, -ah, -al)
  end
  redis.call('DEL', res)
  redis.call('ZREM', expiries, rid)
  return true
end
"""

# KEYS: reservation hash, expiries zset, then the member hash of every line.
# ARGV: rid, expires_at_ms, counter_ttl_ms, line count, then per line: policy id, limit
# ('-' for none, else w:h:l), amount w:h:l, member index key, member, bucket count, the
# buckets' window keys (oldest first; the reservation is recorded on the last).
_RESERVE: Final = (
    _LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
local lines = {}
local at = 5
for n = 1, tonumber(ARGV[4]) do
  local count = tonumber(ARGV[at + 5])
  local aw, ah, al = parse(ARGV[at + 2])
  lines[n] = {ARGV[at], ARGV[at + 1], aw, ah, al, KEYS[n + 2], ARGV[at + 3], ARGV[at + 4],
              at + 6, count}
  at = at + 6 + count
end
for _, line in ipairs(lines) do
  if line[2] ~= '-' then
    local fields = {}
    for k = line[9], line[9] + line[10] - 1 do
      fields[#fields + 1] = 's|' .. ARGV[k]
      fields[#fields + 1] = 'r|' .. ARGV[k]
    end
    local w, h, l = 0, 0, 0
    for _, value in ipairs(redis.call('HMGET', line[6], unpack(fields))) do
      local vw, vh, vl = parse(value)
      w, h, l = w + vw, h + vh, l + vl
    end
    local tw, th, tl = norm(w + line[3], h + line[4], l + line[5])
    local lw, lh, ll = parse(line[2])
    if greater(tw, th, tl, lw, lh, ll) then
      return {0, line[1], show(norm(w, h, l))}
    end
  end
end
local ttl = ARGV[3]
local holds = {}
for _, line in ipairs(lines) do
  local window = ARGV[line[9] + line[10] - 1]
  local oldest = ARGV[line[9]]
  local field = 'r|' .. window
  local key = line[6]
  if not field_add(key, field, line[3], line[4], line[5]) then
    -- The first hold in a new bucket: drop the fields of buckets the window left behind
    -- (keys are UTC ISO times: they compare as times), refresh the expiry, index the member.
    local stale = {}
    for _, name in ipairs(redis.call('HKEYS', key)) do
      if string.sub(name, 3) < oldest then stale[#stale + 1] = name end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    touch(key, ttl, line[7], line[8])
  end
  local name = key .. '\\n' .. window
  local held = holds[name]
  if held == nil then
    holds[name] = {line[3], line[4], line[5]}
  else
    held[1], held[2], held[3] = norm(held[1] + line[3], held[2] + line[4], held[3] + line[5])
  end
end
for name, held in pairs(holds) do
  redis.call('HSET', KEYS[1], name, show(held[1], held[2], held[3]))
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {1}
"""
)

# KEYS: reservation hash, expiries zset, settled marker, then the member hash of each counter.
# ARGV: rid, marker ttl ms, counter ttl ms, then per counter: window, amount w:h:l, member
# index key, member.
_SETTLE: Final = (
    _LIB
    + """
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) == false then return 0 end
unhold(KEYS[1], KEYS[2], ARGV[1])
for i = 4, #KEYS do
  local at = 4 + (i - 4) * 4
  local aw, ah, al = parse(ARGV[at + 1])
  if not field_add(KEYS[i], 's|' .. ARGV[at], aw, ah, al) then
    touch(KEYS[i], ARGV[3], ARGV[at + 2], ARGV[at + 3])
  end
end
return 1
"""
)

# KEYS: reservation hash, expiries zset. ARGV: rid.
_RELEASE: Final = (
    _LIB
    + """
if unhold(KEYS[1], KEYS[2], ARGV[1]) then return 1 end
return 0
"""
)

# KEYS: expiries zset. ARGV: until ms, then reservation ids.
_EXTEND: Final = """
local extended = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score then
    extended = extended + 1
    if tonumber(score) < tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
  end
end
return extended
"""

# KEYS: expiries zset. ARGV: now ms, batch size, reservation key prefix.
_EXPIRE: Final = (
    _LIB
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local freed = 0
for _, rid in ipairs(due) do
  if unhold(ARGV[3] .. rid, KEYS[1], rid) then freed = freed + 1 end
  redis.call('ZREM', KEYS[1], rid)
end
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
local raised = 0
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  local field = 's|' .. ARGV[at]
  local w, h, l = parse(redis.call('HGET', KEYS[i], field))
  local jw, jh, jl = parse(ARGV[at + 1])
  if greater(jw, jh, jl, w, h, l) then
    redis.call('HSET', KEYS[i], field, ARGV[at + 1])
    touch(KEYS[i], ARGV[1], ARGV[at + 2], ARGV[at + 3])
    raised = raised + 1
  end
end
return raised
"""
)


def _show(amount: Decimal) -> str:
    whole, high, low = encode_amount(amount)
    return f"{whole}:{high}:{low}"


@functools.lru_cache(maxsize=4096)
def _shown(limit: Decimal) -> str:
    """``_show`` of a limit: the same few limits come with every request."""
    return _show(limit)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class RedisLedger:
    """Counters and reservations in Redis, for every process that shares them (asyncio).

    Connection failures raise ``LedgerUnavailableError``; what to do then is the caller's
    policy (``ledger_failure``)."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "spendgate",
        counter_ttl: timedelta = DEFAULT_COUNTER_TTL,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self._counter_ttl_ms = int(counter_ttl.total_seconds() * 1000)
        self._expiries = f"{prefix}:expiries"
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)
        self._expire = client.register_script(_EXPIRE)
        self._seed = client.register_script(_SEED)
        self._lines: dict[tuple[CounterKey, ...], tuple[str, list[str | int]]] = {}

    # -- keys ------------------------------------------------------------------------------

    def member_key(self, policy_id: str, member: str) -> str:
        """The hash holding every window bucket of one policy member. Lengths go into the key,
        so ids holding the separator cannot collide."""
        return f"{self.prefix}:c:{len(policy_id)}:{policy_id}:{len(member)}:{member}"

    def _where(self, buckets: tuple[CounterKey, ...]) -> tuple[str, list[str | int]]:
        """A line's member hash and the arguments naming its buckets, memoised: the same
        buckets come back with every request of the window (a rolling one has ~30)."""
        found = self._lines.get(buckets)
        if found is None:
            if len(self._lines) >= _LINE_MEMO:
                self._lines.clear()
            record = buckets[-1]
            found = self._lines[buckets] = (
                self.member_key(record.policy_id, record.member),
                [
                    self._index_key(record.policy_id, record.window),
                    record.member,
                    len(buckets),
                    *(key.window for key in buckets),
                ],
            )
        return found

    def _index_key(self, policy_id: str, window: str) -> str:
        return f"{self.prefix}:m:{len(policy_id)}:{policy_id}:{window}"

    def _reservation_key(self, reservation_id: str) -> str:
        return f"{self.prefix}:r:{reservation_id}"

    # -- operations ----------------------------------------------------------------------------

    async def reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
    ) -> ReserveOutcome:
        keys = [self._reservation_key(reservation_id), self._expiries]
        args: list[Any] = [reservation_id, _ms(now + ttl), self._counter_ttl_ms, len(lines)]
        for line in lines:
            member_key, where = self._where(line.keys)
            keys.append(member_key)
            limit = "-" if line.limit is None else _shown(line.limit)
            args += [line.policy_id, limit, _show(line.amount), *where]
        result = await self._call(self._reserve, keys, args)
        if result[0] == -1:
            raise ValueError(f"reservation {reservation_id} already exists")
        if result[0] == 1:
            return ReserveOutcome(True)
        policy = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        return ReserveOutcome(False, policy, _parse(result[2]))

    async def settle(self, reservation_id: str, actual: Mapping[CounterKey, Decimal]) -> None:
        keys = [
            self._reservation_key(reservation_id),
            self._expiries,
            f"{self.prefix}:settled:{reservation_id}",
        ]
        args: list[Any] = [
            reservation_id,
            int(_SETTLED_MARK_TTL.total_seconds() * 1000),
            self._counter_ttl_ms,
        ]
        self._add_counters(actual.items(), keys, args)
        await self._call(self._settle, keys, args)

    async def release(self, reservation_id: str) -> None:
        keys = [self._reservation_key(reservation_id), self._expiries]
        await self._call(self._release, keys, [reservation_id])

    async def extend(self, reservation_ids: Collection[str], until: datetime) -> int:
        if not reservation_ids:
            return 0
        extended = await self._call(self._extend, [self._expiries], [_ms(until), *reservation_ids])
        return int(extended)

    async def expire(self, now: datetime) -> int:
        """Free every reservation whose expiry passed (in batches, each one script)."""
        freed = 0
        while True:
            result = await self._call(
                self._expire,
                [self._expiries],
                [_ms(now), _EXPIRE_BATCH, f"{self.prefix}:r:"],
            )
            freed += int(result[0])
            if int(result[1]) < _EXPIRE_BATCH:
                return freed

    async def read_total(self, keys: Sequence[CounterKey]) -> CounterState:
        total = CounterState()
        for state in (await self.read_many(keys)).values():
            total = total + state
        return total

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
        except _UNAVAILABLE as error:
            raise LedgerUnavailableError(str(error)) from error
        return {
            key: CounterState(_parse(settled), _parse(reserved))
            for key, (settled, reserved) in zip(unique, rows, strict=True)
        }

    async def members(self, policy_id: str, window_keys: Collection[str]) -> set[str]:
        if not window_keys:
            return set()
        try:
            found = await self._client.sunion(
                [self._index_key(policy_id, window) for window in window_keys]
            )
        except _UNAVAILABLE as error:
            raise LedgerUnavailableError(str(error)) from error
        return {m.decode() if isinstance(m, bytes) else str(m) for m in found}

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

    async def prune(self, live: Mapping[str, str]) -> int:
        """Nothing to do: counter keys expire by themselves ``counter_ttl`` after their last
        write."""
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

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except _UNAVAILABLE as error:
            raise LedgerUnavailableError(str(error)) from error


def _parse(text: bytes | str | None) -> Decimal:
    if text is None:
        return Decimal(0)
    raw = text.decode() if isinstance(text, bytes) else text
    whole, high, low = (int(part) for part in raw.split(":"))
    return decode_amount(whole, high, low)


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


_UNAVAILABLE: Final = _unavailable_errors()
