"""Open-loop HTTP/1.1 load generator (wrk2-style), in Python with uvloop and httptools.

Requests are issued on a fixed schedule (request *i* is due at ``start + i / rate``) whatever
the server does, over a pool of keep-alive connections. Latency is measured from the
*intended* send time, so a server that stalls is charged for every request that queued
behind the stall (no coordinated omission). A request that finds no idle connection waits
in a backlog, its clock already running. Also measured: time to the first body byte (TTFB,
for SSE streams: the first event), and the generator's own send lag (actual − intended send
time), which shows whether the generator kept its schedule.

``--closed`` switches to a closed loop (each connection sends its next request as soon as the
previous one completes; latency from the actual send), for unloaded TTFB measurements.

    python bench/openloop.py --url http://127.0.0.1:8787/v1/chat/completions \\
        --rate 1000 --duration 10 --body-file req.json -H 'authorization: Bearer sk-…'

Prints a summary (``--json``: one JSON object). The event loop's own timers have millisecond
resolution, so the schedule is driven by a periodic Linux timerfd (one tick per request
interval, microsecond precision, no busy polling): Linux only. The send lag is reported and
counts in the latency, as in wrk2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import math
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency of the gateway
    uvloop = None  # type: ignore[assignment]

__all__ = ["HttpTarget", "RunResult", "percentile", "run", "summarize"]

_now = time.perf_counter  # CLOCK_MONOTONIC on Linux, the clock of the timerfd below
_MIN_TICK_S = 50e-6


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _Timer:
    """A periodic Linux timerfd (hrtimer precision) that the event loop watches: asyncio's
    own timers have millisecond resolution, and polling would keep the core busy."""

    _CLOCK_MONOTONIC = 1
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    @classmethod
    def create(cls) -> int:
        fd = int(cls._libc.timerfd_create(cls._CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        return fd

    @classmethod
    def arm(cls, fd: int, interval_s: float) -> None:
        seconds = int(interval_s)
        nanoseconds = int((interval_s - seconds) * 1e9)
        spec = _Itimerspec(_Timespec(seconds, nanoseconds), _Timespec(seconds, nanoseconds))
        if cls._libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """One POST (or GET) request, sent byte for byte again and again."""

    host: str
    port: int
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "POST"

    @classmethod
    def from_url(
        cls,
        url: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        method: str = "POST",
    ) -> HttpTarget:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported: {url}")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(parts.hostname, parts.port or 80, path, body, tuple(headers), method)

    def raw(self) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            "connection: keep-alive",
        ]
        names = {name.lower() for name, _ in self.headers}
        if self.body or self.method == "POST":
            lines.append(f"content-length: {len(self.body)}")
            if "content-type" not in names:
                lines.append("content-type: application/json")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(slots=True)
class RunResult:
    """Raw samples of one run, in microseconds; ``summarize`` turns them into figures."""

    mode: str
    rate: float | None
    connections: int
    warmup_s: float
    duration_s: float
    scheduled: int = 0  # requests due in the measured part of the run
    ok: int = 0  # measured requests answered 2xx
    errors: int = 0  # measured requests answered non-2xx or whose connection broke
    unfinished: int = 0  # measured requests still queued or in flight at the deadline
    statuses: dict[int, int] = field(default_factory=dict)
    latency_us: list[float] = field(default_factory=list)
    ttfb_us: list[float] = field(default_factory=list)
    send_lag_us: list[float] = field(default_factory=list)
    measured_wall_s: float = 0.0
    max_backlog: int = 0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in [0, 100])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _dist(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "p50_ms": round(percentile(ordered, 50) / 1000, 4),
        "p90_ms": round(percentile(ordered, 90) / 1000, 4),
        "p99_ms": round(percentile(ordered, 99) / 1000, 4),
        "p999_ms": round(percentile(ordered, 99.9) / 1000, 4),
        "max_ms": round(ordered[-1] / 1000, 4),
        "mean_ms": round(sum(ordered) / len(ordered) / 1000, 4),
    }


def summarize(result: RunResult) -> dict[str, Any]:
    achieved = result.ok / result.measured_wall_s if result.measured_wall_s > 0 else 0.0
    return {
        "mode": result.mode,
        "rate": result.rate,
        "connections": result.connections,
        "duration_s": result.duration_s,
        "scheduled": result.scheduled,
        "ok": result.ok,
        "errors": result.errors,
        "unfinished": result.unfinished,
        "statuses": {str(code): count for code, count in sorted(result.statuses.items())},
        "achieved_rps": round(achieved, 1),
        "max_backlog": result.max_backlog,
        "latency": _dist(result.latency_us),
        "ttfb": _dist(result.ttfb_us),
        "send_lag": _dist(result.send_lag_us),
    }


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.intended = 0.0
        self.sent = 0.0
        self.first_body = 0.0
        self.busy = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.load.broken(self)
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.load.broken(self)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if not self.first_body:
            self.first_body = _now()

    def on_message_complete(self) -> None:
        self.load.completed(self, self.parser.get_status_code(), _now())

    # sending
    def send(self, intended: float, request: bytes) -> None:
        self.intended = intended
        self.first_body = 0.0
        self.busy = True
        self.sent = _now()
        assert self.transport is not None
        self.transport.write(request)


class _Load:
    def __init__(
        self,
        target: HttpTarget,
        *,
        rate: float | None,
        duration_s: float,
        warmup_s: float,
        connections: int,
        grace_s: float,
    ) -> None:
        self.target = target
        self.request = target.raw()
        self.rate = rate
        self.closed_loop = rate is None
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.grace_s = grace_s
        self.result = RunResult(
            mode="closed" if rate is None else "open",
            rate=rate,
            connections=connections,
            warmup_s=warmup_s,
            duration_s=duration_s,
        )
        self.n_connections = connections
        self.conns: list[_Connection] = []
        self.idle: list[_Connection] = []
        self.backlog: deque[float] = deque()
        self.total = 0
        self.issued = 0
        self.outstanding = 0
        self.start = 0.0
        self.measure_from = 0.0
        self.stop_at = 0.0
        self.stopping = False
        self.timer_fd = -1
        self.loop = asyncio.get_running_loop()
        self.all_done: asyncio.Future[None] = self.loop.create_future()

    async def connect(self) -> None:
        for _ in range(self.n_connections):
            _transport, conn = await self.loop.create_connection(
                lambda: _Connection(self), self.target.host, self.target.port
            )
            await conn.ready
            self.conns.append(conn)
        self.idle = list(self.conns)

    # -- bookkeeping ----------------------------------------------------------------------

    def _measured(self, intended: float) -> bool:
        return self.measure_from <= intended < self.stop_at

    def completed(self, conn: _Connection, status: int, done: float) -> None:
        if self.stopping:
            return
        conn.busy = False
        self.outstanding -= 1
        intended = conn.intended
        if self._measured(intended):
            result = self.result
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.errors += 1
            origin = conn.sent if self.closed_loop else intended
            result.latency_us.append((done - origin) * 1e6)
            first = conn.first_body or done
            result.ttfb_us.append((first - origin) * 1e6)
            result.send_lag_us.append((conn.sent - intended) * 1e6)
        self._next(conn, done)

    def broken(self, conn: _Connection) -> None:
        if self.stopping:  # closed by run() at the end: already counted as unfinished
            return
        if conn in self.conns:
            self.conns.remove(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.busy:
            conn.busy = False
            self.outstanding -= 1
            if self._measured(conn.intended):
                self.result.errors += 1
        if not self.conns:
            self._finish()

    def _next(self, conn: _Connection, now: float) -> None:
        if self.closed_loop:
            if now < self.stop_at and not self.stopping:
                self.outstanding += 1
                conn.send(now, self.request)
            elif self.outstanding == 0:
                self._finish()
            return
        if self.backlog:  # already counted as outstanding when it was issued
            conn.send(self.backlog.popleft(), self.request)
            return
        self.idle.append(conn)
        if self.issued >= self.total and self.outstanding == 0:
            self._finish()

    def _finish(self) -> None:
        if not self.all_done.done():
            self.all_done.set_result(None)

    # -- schedule -------------------------------------------------------------------------

    def _tick(self) -> None:
        rate = self.rate
        assert rate is not None
        now = _now()
        due = min(self.total, int((now - self.start) * rate) + 1)
        request = self.request
        while self.issued < due:
            intended = self.start + self.issued / rate
            self.issued += 1
            self.outstanding += 1
            if self.idle:
                self.idle.pop().send(intended, request)
            else:
                self.backlog.append(intended)
        if len(self.backlog) > self.result.max_backlog:
            self.result.max_backlog = len(self.backlog)
        if self.issued >= self.total or self.stopping:
            self._stop_timer()

    def _on_timer(self) -> None:
        try:
            os.read(self.timer_fd, 8)  # the expiration count; _tick works from the clock
        except BlockingIOError:
            return
        self._tick()

    def _start_timer(self) -> None:
        assert self.rate is not None
        self.timer_fd = _Timer.create()
        _Timer.arm(self.timer_fd, max(1.0 / self.rate, _MIN_TICK_S))
        self.loop.add_reader(self.timer_fd, self._on_timer)

    def _stop_timer(self) -> None:
        if self.timer_fd >= 0:
            self.loop.remove_reader(self.timer_fd)
            os.close(self.timer_fd)
            self.timer_fd = -1

    async def run(self) -> RunResult:
        await self.connect()
        self.start = _now()
        self.measure_from = self.start + self.warmup_s
        self.stop_at = self.measure_from + self.duration_s
        if self.closed_loop:
            for conn in list(self.idle):
                self.outstanding += 1
                conn.send(self.start, self.request)
            self.idle.clear()
        else:
            assert self.rate is not None
            self.total = int((self.warmup_s + self.duration_s) * self.rate)
            self._start_timer()
            self._tick()
        end = self.stop_at + self.grace_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.all_done), timeout=max(end - _now(), 0.1))
        self.stopping = True
        self._stop_timer()
        finished = _now()
        result = self.result
        # Requests of the measured part still queued or in flight never got an answer.
        measured_waiting = sum(1 for intended in self.backlog if self._measured(intended))
        measured_in_flight = sum(1 for c in self.conns if c.busy and self._measured(c.intended))
        result.unfinished = measured_waiting + measured_in_flight
        if self.closed_loop:
            result.scheduled = result.ok + result.errors + result.unfinished
            result.measured_wall_s = self.duration_s
        else:
            assert self.rate is not None
            result.scheduled = int(self.duration_s * self.rate)
            # The measured window ends when its last request could have been answered.
            result.measured_wall_s = max(min(finished, end) - self.measure_from, 1e-9)
            result.measured_wall_s = max(self.duration_s, result.measured_wall_s)
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()
        return result


async def run(
    target: HttpTarget,
    *,
    rate: float | None,
    duration_s: float,
    warmup_s: float = 1.0,
    connections: int = 64,
    grace_s: float = 5.0,
) -> RunResult:
    """One run: ``rate`` requests/s open loop (``None``: closed loop) for ``warmup_s`` (not
    measured) then ``duration_s`` (measured); waits up to ``grace_s`` for stragglers."""
    load = _Load(
        target,
        rate=rate,
        duration_s=duration_s,
        warmup_s=warmup_s,
        connections=connections,
        grace_s=grace_s,
    )
    return await load.run()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Open-loop HTTP/1.1 load generator (latency from the intended send time)."
    )
    parser.add_argument("--url", required=True, help="http://host:port/path")
    parser.add_argument("--rate", type=float, help="requests per second (open loop)")
    parser.add_argument("--closed", action="store_true", help="closed loop instead of --rate")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait at the end")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--body-file", help="request body (POST)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], help="'name: value' (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.closed == (args.rate is not None):
        parser.error("give exactly one of --rate and --closed")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    body = b""
    if args.body_file:
        with open(args.body_file, "rb") as handle:
            body = handle.read()
    headers = []
    for header in args.header:
        name, _, value = header.partition(":")
        headers.append((name.strip(), value.strip()))
    target = HttpTarget.from_url(args.url, body, headers, args.method)
    coroutine = run(
        target,
        rate=None if args.closed else args.rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        grace_s=args.grace,
    )
    result = uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)
    summary = summarize(result)
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        return 0
    lat, ttfb, lag = summary["latency"], summary["ttfb"], summary["send_lag"]
    print(
        f"{summary['mode']} loop, rate {summary['rate']}, {summary['connections']} connections:"
        f" {summary['ok']} ok, {summary['errors']} errors, {summary['unfinished']} unfinished,"
        f" {summary['achieved_rps']} req/s"
    )
    for name, dist in (("latency", lat), ("ttfb", ttfb), ("send lag", lag)):
        if dist:
            print(
                f"  {name:<9} p50 {dist['p50_ms']:.3f} ms  p90 {dist['p90_ms']:.3f}"
                f"  p99 {dist['p99_ms']:.3f}  p99.9 {dist['p999_ms']:.3f}  max {dist['max_ms']:.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
