"""The one pooled HTTP client session of a worker process.

Every upstream of a worker shares one ``aiohttp.ClientSession`` (one connection pool,
keep-alive, DNS cache): creating a session per request costs a new TCP (and TLS) handshake
per call and was measured as the main cost of naive proxies. Per-provider concurrency is
enforced by each upstream's semaphore, so the connector's total limit is just the sum.
"""

from __future__ import annotations

import aiohttp

__all__ = ["SessionPool"]


class SessionPool:
    """Creates the session lazily, inside the running event loop (aiohttp binds a session
    to the loop that created it: create the pool in the worker, after any fork)."""

    __slots__ = ("_session", "keepalive_timeout_s", "limit", "sessions_created")

    def __init__(self, *, limit: int = 100, keepalive_timeout_s: float = 30.0) -> None:
        self.limit = limit
        self.keepalive_timeout_s = keepalive_timeout_s
        self.sessions_created = 0
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=0,  # per provider, not per host: see the upstream semaphores
                keepalive_timeout=self.keepalive_timeout_s,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # Bodies are encoded/decoded with orjson by the upstreams; timeouts are set
                # per request from each provider's timeout_s.
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                # A provider's cookies must not carry over from one client's call to
                # another's; not parsing them is also cheaper.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
            self.sessions_created += 1
        return session

    @property
    def open(self) -> bool:
        return self._session is not None and not self._session.closed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
