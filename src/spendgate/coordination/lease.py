"""Leases: background work that must run on one replica at a time.

Expiry sweeps, alert detection and webhook delivery would each run N times with N replicas
(N deliveries of every webhook, N detectors racing on the same alerts). Each replica runs a
``LeaseKeeper`` per job family; only the holder of the lease runs the jobs. A lease is a Redis
key holding its holder's id, with an expiry: the holder renews it well within the expiry, and
when a replica dies its lease lapses and another takes it over one expiry later.

Holding is checked before each run (``held``), never assumed: a holder that could not renew in
time (a long GC pause, a partition) stops running jobs as soon as it sees it lost the lease.
A job must still be safe to run twice in a row across a handover (every job here is: the
sweeps are idempotent and deliveries are recorded in the database before they are retried).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_LEASE_SECONDS", "Lease", "holder_id"]

log = logging.getLogger("spendgate.lease")

DEFAULT_LEASE_SECONDS: Final = 15.0

# Take the lease if nobody holds it, or keep it if we do: one atomic step.
_ACQUIRE: Final = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Give it up only if it is still ours (never delete a successor's lease).
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def holder_id() -> str:
    """This process's identity in leases: host, pid and a random part (a restarted process
    with the same pid is another holder)."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """One named lease on Redis, for one holder.

    ``refresh()`` (call it every ``seconds / 3``) acquires or renews it and returns whether
    this holder has it; ``held`` says whether the last successful refresh is still within
    its expiry, by this process's monotonic clock (so a holder whose renewals fail stops
    believing it holds the lease before the key expires in Redis).
    """

    def __init__(
        self,
        client: Redis,
        name: str,
        *,
        holder: str | None = None,
        seconds: float = DEFAULT_LEASE_SECONDS,
        prefix: str = "spendgate",
    ) -> None:
        if seconds <= 0:
            raise ValueError("a lease lasts a positive number of seconds")
        self._client = client
        self.key = f"{prefix}:lease:{name}"
        self.name = name
        self.holder = holder or holder_id()
        self.seconds = seconds
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._valid_until = 0.0  # monotonic

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    async def refresh(self) -> bool:
        """Acquire or renew the lease; False when another holder has it (or Redis cannot be
        reached: a holder that cannot renew must assume it lost the lease)."""
        from redis.exceptions import RedisError

        started = time.monotonic()
        was_held = self.held
        try:
            got = await self._acquire(keys=[self.key], args=[self.holder, int(self.seconds * 1000)])
        except (RedisError, OSError) as error:
            if was_held:
                log.warning("lease %s: could not renew (%s); pausing its jobs", self.name, error)
            self._valid_until = 0.0
            return False
        if got:
            # Counted from before the call: the key may have been set up to a round trip
            # earlier than we learn it, never later.
            self._valid_until = started + self.seconds
            if not was_held:
                log.info("lease %s: taken by %s", self.name, self.holder)
            return True
        if was_held:
            log.warning("lease %s: lost to another replica", self.name)
        self._valid_until = 0.0
        return False

    async def release(self) -> None:
        """Give the lease up (on shutdown), so another replica takes it at once."""
        from redis.exceptions import RedisError

        self._valid_until = 0.0
        with contextlib.suppress(RedisError, OSError):  # it lapses by itself
            await self._release(keys=[self.key], args=[self.holder])
