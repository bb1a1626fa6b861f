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
* **No reset job.** A counter's key carries its window's key (the window start), so a new
  window starts at zero; counter keys expire ``counter_ttl`` after their last write (longer
  than any window).
* **Seeded once.** ``seed`` writes a counter's settled amount from the journal only if Redis
  has none for it: processes starting together, or one starting beside running ones, never
  add the history twice.

Amounts are exact: Lua numbers are doubles, exact only below 2⁵³, so an amount travels and is
stored as three integers — the whole part, then two groups of nine decimal places (the
journal's 18) — added and compared with carries inside the scripts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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


# Shared Lua: amounts as {whole, high, low}; counters as hashes with fields s0 s1 s2 (settled)
# and r0 r1 r2 (reserved); a member index set per policy and window.
_LIB: Final = """
local G = 1000000000
local function add(a, b)
  local low = a[3] + b[3]
  local carry = 0
  if low >= G then low = low - G; carry = 1 end
  local high = a[2] + b[2] + carry
  carry = 0
  if high >= G then high = high - G; carry = 1 end
  return {a[1] + b[1] + carry, high, low}
end
local function sub(a, b)
  local low = a[3] - b[3]
  local borrow = 0
  if low < 0 then low = low + G; borrow = 1 end
  local high = a[2] - b[2] - borrow
  borrow = 0
  if high < 0 then high = high + G; borrow = 1 end
  local whole = a[1] - b[1] - borrow
  if whole < 0 then return {0, 0, 0} end
  return {whole, high, low}
end
local function greater(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[3] > b[3]
end
local function num(v) return tonumber(v) or 0 end
local function get(key, f)
  local v = redis.call('HMGET', key, f .. '0', f .. '1', f .. '2')
  return {num(v[1]), num(v[2]), num(v[3])}
end
-- Numbers become strings through %d: Lua's own conversion (%.14g) would round 2^53.
local function put(key, f, a)
  redis.call('HSET', key, f .. '0', string.format('%d', a[1]), f .. '1',
             string.format('%d', a[2]), f .. '2', string.format('%d', a[3]))
end
local function touch(key, ttl, index, member)
  redis.call('PEXPIRE', key, ttl)
  redis.call('SADD', index, member)
  redis.call('PEXPIRE', index, ttl)
end
local function parse(s)
  local w, h, l = string.match(s, '^(%d+):(%d+):(%d+)$')
  return {tonumber(w), tonumber(h), tonumber(l)}
end
local function show(a) return string.format('%d:%d:%d', a[1], a[2], a[3]) end
-- Free a reservation's holds; true when it existed.
local function unhold(res, expiries, rid)
  local held = redis.call('HGETALL', res)
  if #held == 0 then return false end
  for i = 1, #held, 2 do
    local key = held[i]
    put(key, 'r', sub(get(key, 'r'), parse(held[i + 1])))
  end
  redis.call('DEL', res)
  redis.call('ZREM', expiries, rid)
  return true
end
"""

# KEYS: reservation hash, expiries zset, then every counter key of the request.
# ARGV: rid, expires_at_ms, counter_ttl_ms, line count, then per line: policy id, limit
# ('-' for none, else w:h:l), amount w:h:l, record key's KEYS index, member index key,
# member, key count, the KEYS indexes of its window buckets.
_RESERVE: Final = (
    _LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
local lines = {}
local at = 5
for n = 1, tonumber(ARGV[4]) do
  local line = {policy = ARGV[at], limit = ARGV[at + 1], amount = parse(ARGV[at + 2]),
                record = tonumber(ARGV[at + 3]), index = ARGV[at + 4], member = ARGV[at + 5]}
  local count = tonumber(ARGV[at + 6])
  line.keys = {}
  for k = 1, count do line.keys[k] = tonumber(ARGV[at + 6 + k]) end
  at = at + 7 + count
  lines[n] = line
end
for _, line in ipairs(lines) do
  if line.limit ~= '-' then
    local consumed = {0, 0, 0}
    for _, k in ipairs(line.keys) do
      consumed = add(consumed, add(get(KEYS[k], 's'), get(KEYS[k], 'r')))
    end
    if greater(add(consumed, line.amount), parse(line.limit)) then
      return {0, line.policy, show(consumed)}
    end
  end
end
local ttl = ARGV[3]
local holds = {}
for _, line in ipairs(lines) do
  local key = KEYS[line.record]
  put(key, 'r', add(get(key, 'r'), line.amount))
  touch(key, ttl, line.index, line.member)
  holds[key] = add(holds[key] or {0, 0, 0}, line.amount)
end
for key, amount in pairs(holds) do redis.call('HSET', KEYS[1], key, show(amount)) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {1}
"""
)

# KEYS: reservation hash, expiries zset, settled marker, then the counters settled.
# ARGV: rid, marker ttl ms, counter ttl ms, then per counter: amount w:h:l, member index key,
# member.
_SETTLE: Final = (
    _LIB
    + """
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) == false then return 0 end
unhold(KEYS[1], KEYS[2], ARGV[1])
for i = 4, #KEYS do
  local at = 4 + (i - 4) * 3
  local key = KEYS[i]
  put(key, 's', add(get(key, 's'), parse(ARGV[at])))
  touch(key, ARGV[3], ARGV[at + 1], ARGV[at + 2])
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

# KEYS: the counters. ARGV: counter ttl ms, then per counter: amount w:h:l, member index key,
# member. Writes a counter's settled amount only where Redis has none.
_SEED: Final = (
    _LIB
    + """
local written = 0
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 3
  if redis.call('HEXISTS', KEYS[i], 's0') == 0 then
    put(KEYS[i], 's', parse(ARGV[at]))
    touch(KEYS[i], ARGV[1], ARGV[at + 1], ARGV[at + 2])
    written = written + 1
  end
end
return written
"""
)


def _show(amount: Decimal) -> str:
    whole, high, low = encode_amount(amount)
    return f"{whole}:{high}:{low}"


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

    # -- keys ------------------------------------------------------------------------------

    def counter_key(self, key: CounterKey) -> str:
        # ids may hold any character but these separators never split them ambiguously:
        # the lengths are part of the key.
        return (
            f"{self.prefix}:c:{len(key.policy_id)}:{key.policy_id}:{len(key.member)}:"
            f"{key.member}:{key.window}"
        )

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
        position: dict[CounterKey, int] = {}

        def index(key: CounterKey) -> int:
            found = position.get(key)
            if found is None:
                keys.append(self.counter_key(key))
                found = position[key] = len(keys)  # Lua's KEYS are 1-based
            return found

        args: list[Any] = [reservation_id, _ms(now + ttl), self._counter_ttl_ms, len(lines)]
        for line in lines:
            record = line.keys[-1]
            buckets = [index(key) for key in line.keys]
            args += [
                line.policy_id,
                "-" if line.limit is None else _show(line.limit),
                _show(line.amount),
                index(record),
                self._index_key(record.policy_id, record.window),
                record.member,
                len(buckets),
                *buckets,
            ]
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
        for key, amount in actual.items():
            keys.append(self.counter_key(key))
            args += [_show(amount), self._index_key(key.policy_id, key.window), key.member]
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
                    pipe.hmget(self.counter_key(key), "s0", "s1", "s2", "r0", "r1", "r2")
                rows = await pipe.execute()
        except _UNAVAILABLE as error:
            raise LedgerUnavailableError(str(error)) from error
        return {key: _state(row) for key, row in zip(unique, rows, strict=True)}

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
        """Write each counter's settled amount where Redis has none; returns how many were
        written (in batches of a thousand counters, each one script)."""
        items = list(settled.items())
        written = 0
        for start in range(0, len(items), 1000):
            keys: list[str] = []
            args: list[Any] = [self._counter_ttl_ms]
            for key, amount in items[start : start + 1000]:
                keys.append(self.counter_key(key))
                args += [_show(amount), self._index_key(key.policy_id, key.window), key.member]
            written += int(await self._call(self._seed, keys, args))
        return written

    async def prune(self, live: Mapping[str, str]) -> int:
        """Nothing to do: counter keys expire by themselves ``counter_ttl`` after their last
        write."""
        return 0

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except _UNAVAILABLE as error:
            raise LedgerUnavailableError(str(error)) from error


def _parse(text: bytes | str) -> Decimal:
    raw = text.decode() if isinstance(text, bytes) else text
    whole, high, low = (int(part) for part in raw.split(":"))
    return decode_amount(whole, high, low)


def _state(row: Sequence[bytes | None]) -> CounterState:
    numbers = [int(value) if value is not None else 0 for value in row]
    return CounterState(decode_amount(*numbers[:3]), decode_amount(*numbers[3:]))


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


_UNAVAILABLE: Final = _unavailable_errors()
