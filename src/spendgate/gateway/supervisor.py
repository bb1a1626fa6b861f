"""``serve --workers N``: N worker processes, each listening on the port with a socket of
its own (``SO_REUSEPORT``), so that the kernel spreads new connections evenly across them.

uvicorn's own supervisor shares one listening socket, and the worker that woke first
accepted most of a burst of connections: with keep-alive clients two workers served hardly
more than one (measured: bench/scaleout_bench.py). Each worker builds its gateway from the
config (``gateway.worker``); budgets hold across them through the shared ledger. A worker
that dies is replaced; SIGTERM or SIGINT stops them all, each finishing its requests.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

__all__ = ["SERVING", "WorkerFailedError", "serve_workers"]

log = logging.getLogger("spendgate.serve")

# How uvicorn serves the gateway, one process or a worker of several.
SERVING: Final[dict[str, Any]] = {
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "access_log": False,  # uvicorn's; the gateway writes its own (spendgate.access)
}
_CHECK_EVERY_S = 0.5
_STOP_WITHIN_S = 30.0
_START_WITHIN_S = 15.0  # a worker failing sooner after its start is not replaced: all stop


class WorkerFailedError(RuntimeError):
    """A worker exited before the workers were up."""


def serve_workers(host: str, port: int, workers: int, log_config: dict[str, Any]) -> None:
    """Run ``workers`` processes serving ``host:port`` until SIGTERM or SIGINT."""
    context = multiprocessing.get_context("spawn")
    # Bound (not listening) for as long as the workers run: a port another program holds
    # fails here, at once, rather than in every worker.
    holder = _socket(host, port)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def spawn() -> BaseProcess:
        process = context.Process(
            target=_run_worker, args=(host, port, log_config), name="spendgate-worker"
        )
        process.start()
        return process

    running = [spawn() for _ in range(workers)]
    started = [time.monotonic()] * workers
    try:
        while not stopping:
            time.sleep(_CHECK_EVERY_S)
            for index, process in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                code = process.exitcode or 0
                if code > 0 and time.monotonic() - started[index] < _START_WITHIN_S:
                    # It gave up while starting (its log says why: a config or database
                    # problem, say): started again, it would fail again, forever. One killed
                    # (a signal: the OOM killer, kill -9) is replaced.
                    raise WorkerFailedError(
                        f"a worker exited while starting (code {process.exitcode})"
                    )
                log.warning(
                    "worker %s exited (code %s): starting another", process.pid,
                    process.exitcode,
                )  # fmt: skip
                running[index], started[index] = spawn(), time.monotonic()
    finally:
        for process in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + _STOP_WITHIN_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _run_worker(host: str, port: int, log_config: dict[str, Any]) -> None:
    """One worker process: its own socket on the shared port, and uvicorn serving on it."""
    import uvicorn

    sock = _socket(host, port)  # uvicorn listens on it
    config = uvicorn.Config(
        "spendgate.gateway.worker:create_worker_gateway",
        factory=True,
        log_config=log_config,
        **SERVING,
    )
    uvicorn.Server(config).run(sockets=[sock])
