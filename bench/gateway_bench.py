"""What the gateway adds to an LLM call: latency, throughput, streaming TTFT, memory, startup.

Run: ``.venv/bin/python bench/gateway_bench.py [--quick]`` (``bench/litellm/run.sh`` runs it
with LiteLLM's proxy as a further column). The ``floor`` column is the least a Python proxy on
spendgate's own stack costs (bench/floor_proxy.py: same server, same upstream client, no
governance): the machine's limit for this stack, measured in the same run. Linux only; needs
``nginx`` (Debian package ``nginx-light``), ``wrk`` and ``taskset``. Method (see bench/README.md):

* the upstream is nginx returning a canned OpenAI chat completion (and a canned SSE stream),
  far faster than the gateway, pinned to core 1 with the load generators;
* the gateway (``spendgate serve`` on bench/gateway/spendgate.bench.yaml: 20 applicable budget
  policies, key auth, routing, reserve, settle, SQLite journal in a temp dir) runs on core 0;
* each figure is measured direct (client → nginx) and via the gateway in the same run; the
  difference is what the gateway adds.

Measures: (1) unloaded latency with ``wrk -t1 -c1``; (2) open-loop 1,000 req/s latency from the
intended send time (bench/openloop.py); (3) the highest open-loop rate the gateway sustains
on its core; (4) time to the first SSE event of ``stream: true`` requests; (5) startup time
(spawn → ``/healthz`` answers) and idle RSS; plus CPU per request and a py-spy profile of the
gateway under load. Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS = BENCH / "results"

GATEWAY_CORE = 0  # the system under test
LOAD_CORE = 1  # nginx, the load generators, this script, py-spy

GATEWAY_KEY = "sk-spendgate-bench-0000000000000000"
STREAM_KEY = "sk-spendgate-bench-stream-000000000000"
LITELLM_KEY = "sk-litellm-bench-0000000000000000000"
UPSTREAM_KEY = "sk-upstream-dummy"

CHAT_BODY = {
    "model": "gpt-4o-mini",
    "max_tokens": 256,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant for an online shop."},
        {
            "role": "user",
            "content": "Where is my order #1234? It was due yesterday and I have not "
            "received any tracking e-mail yet.",
        },
    ],
}
_CHAT_BYTES = json.dumps(CHAT_BODY).encode()
STREAM_BODY = {**CHAT_BODY, "model": "gpt-4o-mini-stream", "stream": True}
SCOPE_HEADERS = (("x-spendgate-agent-id", "bench-agent"), ("x-spendgate-session-id", "bench-s1"))

TARGETS = {  # the hot-path issue's targets
    "unloaded_added_p50_ms": 0.5,
    "unloaded_added_p99_ms": 1.5,
    "open1000_added_p50_ms": 1.0,
    "open1000_added_p99_ms": 3.0,
    "max_rps_per_core": 3000,
    "stream_added_ttft_p99_ms": 2.0,
    "idle_rss_mb": 60,
    "startup_s": 1.0,
}


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    unloaded_s: float
    open_s: float
    open_warmup_s: float
    stream_s: float
    step_s: float
    profile_s: float
    startup_trials: int
    quiet_wait_s: float
    max_p99_ms: float
    nice: int
    litellm: Path | None
    profile: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = bool(args.quick)
        return cls(
            quick=quick,
            unloaded_s=5 if quick else 15,
            open_s=5 if quick else 20,
            open_warmup_s=1 if quick else 2,
            stream_s=3 if quick else 10,
            step_s=3 if quick else 6,
            profile_s=5 if quick else 15,
            startup_trials=1 if quick else 3,
            quiet_wait_s=5 if quick else 30,
            max_p99_ms=args.max_p99_ms,
            nice=args.nice,
            litellm=Path(args.litellm).resolve() if args.litellm else None,
            profile=not args.no_profile,
        )


# -- processes -------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants."""
    total = 0.0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{member}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` alone (not the journal's writer process, say)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return 0.0


def main_thread_cpu(pid: int) -> float:
    """User + system CPU of the main thread of ``pid`` (the event loop of a uvicorn server;
    the rest of the process is its other threads, e.g. spendgate's journal writer)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB (VmRSS, 10^6 bytes)."""
    total_kib = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return round(total_kib * 1024 / 1e6, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def main_cpu(self) -> float:
        return main_thread_cpu(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def pinned(core: int, argv: Sequence[str], nice: int = 0) -> list[str]:
    prefix = ["taskset", "-c", str(core)]
    if nice:
        prefix += ["nice", "-n", str(nice)]
    return [*prefix, *argv]


def spawn(
    name: str, argv: Sequence[str], workdir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        list(argv),
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=workdir,
        start_new_session=True,
    )
    handle.close()
    return process, log


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def http_post(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_ready(
    process: subprocess.Popen[bytes],
    port: int,
    path: str,
    started: float,
    limit: float = 60.0,
    body: bytes | None = None,
) -> float:
    """Seconds from ``started`` until ``GET path`` (or ``POST body`` to it, with the
    gateway's key) answers 200, polled every 2 ms."""
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"}
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {path} answered")
        try:
            if body is None:
                status, _ = http_get(port, path, timeout=1.0)
            else:
                status, _, _ = http_post(port, path, body, headers)
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"{path} did not answer within {limit} s")
        time.sleep(0.002)


# -- the machine -----------------------------------------------------------------------------


def loadavg() -> list[float]:
    with open("/proc/loadavg") as handle:
        return [float(value) for value in handle.read().split()[:3]]


def _busy_jiffies() -> int:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU used during a phase: by each server, by the load (this script and its finished
    children) and by everything else on the machine (other people's work)."""

    servers: dict[str, Server]
    started: float = 0.0
    busy0: int = 0
    server0: dict[str, float] = field(default_factory=dict)
    main0: dict[str, float] = field(default_factory=dict)
    load0: float = 0.0
    result: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> CpuWindow:
        self.started = time.perf_counter()
        self.busy0 = _busy_jiffies()
        self.server0 = {name: server.cpu() for name, server in self.servers.items()}
        self.main0 = {name: server.main_cpu() for name, server in self.servers.items()}
        self.load0 = _children_cpu() + time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.started
        busy = (_busy_jiffies() - self.busy0) / _CLK_TCK
        servers = {name: server.cpu() - self.server0[name] for name, server in self.servers.items()}
        main = {name: server.main_cpu() - self.main0[name] for name, server in self.servers.items()}
        load = _children_cpu() + time.process_time() - self.load0
        foreign = max(busy - sum(servers.values()) - load, 0.0)
        self.result = {
            "wall_s": round(wall, 2),
            **{f"{name}_cpu_s": round(value, 3) for name, value in servers.items()},
            **{
                f"{name}_main_thread_cpu_s": round(main[name], 3)
                for name in servers
                if name != "nginx"
            },
            "load_cpu_s": round(load, 3),
            "foreign_cores": round(foreign / wall, 3) if wall else 0.0,
        }


def wait_quiet(limit_s: float, threshold_cores: float = 0.15) -> dict[str, float]:
    """Wait (up to ``limit_s``) until other processes use under ``threshold_cores`` for a
    whole second; returns how long it waited and what it saw last."""
    started = time.perf_counter()
    foreign = 0.0
    while True:
        busy0, own0 = _busy_jiffies(), _children_cpu() + time.process_time()
        time.sleep(1.0)
        busy = (_busy_jiffies() - busy0) / _CLK_TCK
        foreign = max(busy - (_children_cpu() + time.process_time() - own0), 0.0)
        waited = time.perf_counter() - started
        if foreign < threshold_cores or waited >= limit_s:
            return {"waited_s": round(waited, 1), "foreign_cores": round(foreign, 2)}


def wakeup_probe(rounds: int = 20000) -> dict[str, dict[str, float]]:
    """Round trip of one byte between two processes over a socketpair, on one core and
    across the two cores: the floor that any proxy on the other core pays per hop here."""
    results: dict[str, dict[str, float]] = {}
    for label, cores in (("same_core", (LOAD_CORE, LOAD_CORE)), ("cross_core", (LOAD_CORE, 0))):
        script = (
            "import os,socket,sys,time\n"
            "a,b=socket.socketpair()\n"
            "if os.fork()==0:\n"
            f" os.sched_setaffinity(0,{{{cores[1]}}})\n"
            " while (d:=b.recv(1))!=b'q': b.send(d)\n"
            " os._exit(0)\n"
            f"os.sched_setaffinity(0,{{{cores[0]}}})\n"
            "t=[]\n"
            f"for _ in range({rounds}):\n"
            " s=time.perf_counter_ns();a.send(b'x');a.recv(1);t.append(time.perf_counter_ns()-s)\n"
            "a.send(b'q');os.wait();t.sort();n=len(t)\n"
            "print(t[n//2]/1e3,t[int(n*.99)]/1e3,t[int(n*.999)]/1e3)\n"
        )
        output = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
        p50, p99, p999 = (round(float(value), 1) for value in output)
        results[label] = {"p50_us": p50, "p99_us": p99, "p999_us": p999}
    return results


# -- upstream and gateways -------------------------------------------------------------------


def _nginx_string(text: str) -> str:
    if "$" in text:
        raise ValueError("nginx would read '$' in a canned body as a variable")
    return text.rstrip("\n").replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def start_nginx(workdir: Path, nice: int) -> Server:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install -y nginx-light")
    home = workdir / "nginx"
    (home / "canned").mkdir(parents=True)
    shutil.copy(BENCH / "nginx" / "chat_stream.sse", home / "canned" / "chat_stream.sse")
    port = free_port()
    template = (BENCH / "nginx" / "nginx.conf.template").read_text()
    completion = (BENCH / "nginx" / "chat_completion.json").read_text()
    conf = (
        template.replace("@TMP@", str(home))
        .replace("@PORT@", str(port))
        .replace("@CHAT_COMPLETION@", _nginx_string(completion))
    )
    (home / "nginx.conf").write_text(conf)
    process, log = spawn(
        "nginx", pinned(LOAD_CORE, [nginx, "-p", str(home), "-c", "nginx.conf"], nice), workdir
    )
    wait_ready(process, port, "/health", time.perf_counter(), limit=10)
    return Server("nginx", process, port, log)


def render_gateway_config(workdir: Path, upstream_port: int, name: str) -> Path:
    template = string.Template((BENCH / "gateway" / "spendgate.bench.yaml").read_text())
    database = workdir / f"{name}.db"
    config = workdir / f"{name}.yaml"
    text = template.substitute(UPSTREAM_PORT=upstream_port, DATABASE_URL=f"sqlite:///{database}")
    # Where the journal's writer runs (A/B of config journal.writer); the default if unset.
    writer = os.environ.get("SPENDGATE_BENCH_JOURNAL_WRITER")
    config.write_text(text if writer is None else f"{text}\njournal: {{writer: {writer}}}\n")
    return config


GATEWAY_ENV = {
    "SPENDGATE_BENCH_KEY": GATEWAY_KEY,
    "SPENDGATE_BENCH_STREAM_KEY": STREAM_KEY,
    "SPENDGATE_BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
}


@dataclass(frozen=True, slots=True)
class Startup:
    """Seconds from spawn until ``/healthz`` answered, and until a chat completion came back
    through the gateway (the moment an application is served)."""

    healthz_s: float
    first_proxied_s: float


def start_gateway(workdir: Path, config: Path, nice: int, name: str) -> tuple[Server, Startup]:
    port = free_port()
    argv = [str(VENV_BIN / "spendgate"), "serve", "--config", str(config), "--port", str(port)]
    started = time.perf_counter()
    process, log = spawn(name, pinned(GATEWAY_CORE, argv, nice), workdir, GATEWAY_ENV)
    try:
        healthz = wait_ready(process, port, "/healthz", started)
        # The moment an application is served: a chat completion through the gateway.
        proxied = wait_ready(process, port, "/v1/chat/completions", started, body=_CHAT_BYTES)
    except RuntimeError as error:
        raise SystemExit(f"the gateway did not start: {error}\n{log.read_text()}") from None
    return Server(name, process, port, log), Startup(round(healthz, 3), round(proxied, 3))


def start_floor(workdir: Path, upstream_port: int, nice: int) -> tuple[Server, float]:
    port = free_port()
    argv = [sys.executable, str(BENCH / "floor_proxy.py"), str(port), str(upstream_port)]
    started = time.perf_counter()
    process, log = spawn("floor", pinned(GATEWAY_CORE, argv, nice), workdir)
    try:
        startup = wait_ready(process, port, "/healthz", started)
    except RuntimeError as error:
        raise SystemExit(f"the floor proxy did not start: {error}\n{log.read_text()}") from None
    return Server("floor", process, port, log), startup


def start_litellm(
    workdir: Path, litellm: Path, upstream_port: int, nice: int
) -> tuple[Server, float]:
    template = string.Template((BENCH / "litellm" / "config.yaml").read_text())
    config = workdir / "litellm.yaml"
    config.write_text(template.substitute(UPSTREAM_PORT=upstream_port, MASTER_KEY=LITELLM_KEY))
    port = free_port()
    argv = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price map at start
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "LITELLM_UPSTREAM_KEY": UPSTREAM_KEY,
    }
    started = time.perf_counter()
    process, log = spawn("litellm", pinned(GATEWAY_CORE, argv, nice), workdir, env)
    try:
        startup = wait_ready(process, port, "/health/liveliness", started, limit=180)
    except RuntimeError as error:
        raise SystemExit(f"LiteLLM did not start: {error}\n{log.read_text()[-4000:]}") from None
    return Server("litellm", process, port, log), startup


# -- load ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one column of the table sends its requests."""

    name: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...]
    stream_path: str
    stream_headers: tuple[tuple[str, str], ...]

    def url(self, stream: bool = False) -> str:
        return f"http://127.0.0.1:{self.port}{self.stream_path if stream else self.path}"


def endpoints(nginx: Server, gateway_port: int) -> dict[str, Endpoint]:
    return {
        "direct": Endpoint(
            "direct",
            nginx.port,
            "/v1/chat/completions",
            (("authorization", f"Bearer {UPSTREAM_KEY}"), *SCOPE_HEADERS),
            "/sse/v1/chat/completions",
            (("authorization", f"Bearer {UPSTREAM_KEY}"), *SCOPE_HEADERS),
        ),
        "spendgate": Endpoint(
            "spendgate",
            gateway_port,
            "/v1/chat/completions",
            (("authorization", f"Bearer {GATEWAY_KEY}"), *SCOPE_HEADERS),
            "/v1/chat/completions",
            (("authorization", f"Bearer {STREAM_KEY}"), *SCOPE_HEADERS),
        ),
    }


def peer_endpoint(name: str, port: int) -> Endpoint:
    """A proxy compared with spendgate: LiteLLM (its master key) or the floor (the upstream's
    key, relayed as is)."""
    key = LITELLM_KEY if name == "litellm" else UPSTREAM_KEY
    auth = (("authorization", f"Bearer {key}"), *SCOPE_HEADERS)
    return Endpoint(name, port, "/v1/chat/completions", auth, "/v1/chat/completions", auth)


class Load:
    """Runs the load generators pinned to the load core."""

    def __init__(self, workdir: Path, nice: int) -> None:
        self.workdir = workdir
        self.nice = nice
        self.body = workdir / "chat.json"
        self.body.write_bytes(json.dumps(CHAT_BODY).encode())
        self.stream_body = workdir / "chat-stream.json"
        self.stream_body.write_bytes(json.dumps(STREAM_BODY).encode())

    def wrk(self, endpoint: Endpoint, duration_s: float) -> dict[str, Any]:
        """Closed loop, one connection: latency of one request at a time (µs → ms)."""
        wrk = shutil.which("wrk")
        if wrk is None:
            raise SystemExit("wrk is not installed: apt-get install -y wrk")
        argv = [wrk, "-t1", "-c1", f"-d{duration_s:g}s", "--timeout", "5s"]
        argv += ["-s", str(BENCH / "gateway" / "wrk_post.lua"), endpoint.url()]
        env = {
            **os.environ,
            "WRK_BODY_FILE": str(self.body),
            "WRK_HEADERS": "\n".join(f"{name}: {value}" for name, value in endpoint.headers),
        }
        completed = subprocess.run(
            pinned(LOAD_CORE, argv, self.nice), capture_output=True, text=True, env=env
        )
        line = next(
            (row for row in completed.stdout.splitlines() if row.startswith('{"requests"')), None
        )
        if completed.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed: {completed.stdout}\n{completed.stderr}")
        raw = json.loads(line)
        errors = sum(raw[key] for key in raw if key.endswith("_errors") or key == "timeouts")
        return {
            "requests": raw["requests"],
            "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
            "errors": errors,
            "latency": {
                "p50_ms": raw["p50_us"] / 1000,
                "p90_ms": raw["p90_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "p999_ms": raw["p999_us"] / 1000,
                "max_ms": raw["max_us"] / 1000,
                "mean_ms": round(raw["mean_us"] / 1000, 4),
            },
        }

    def openloop(
        self,
        endpoint: Endpoint,
        *,
        rate: float | None,
        duration_s: float,
        warmup_s: float,
        stream: bool = False,
        connections: int = 64,
        grace_s: float = 5.0,
    ) -> dict[str, Any]:
        argv = [sys.executable, str(BENCH / "openloop.py"), "--url", endpoint.url(stream)]
        argv += ["--duration", f"{duration_s:g}", "--warmup", f"{warmup_s:g}"]
        argv += ["--connections", str(connections), "--grace", f"{grace_s:g}", "--json"]
        argv += ["--body-file", str(self.stream_body if stream else self.body)]
        argv += ["--closed"] if rate is None else ["--rate", f"{rate:g}"]
        for name, value in endpoint.stream_headers if stream else endpoint.headers:
            argv += ["-H", f"{name}: {value}"]
        completed = subprocess.run(
            pinned(LOAD_CORE, argv, self.nice), capture_output=True, text=True
        )
        if completed.returncode != 0:
            raise RuntimeError(f"openloop failed: {completed.stderr}")
        summary: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        return summary


# -- phases ----------------------------------------------------------------------------------


def added(base: dict[str, Any], other: dict[str, Any], key: str = "latency") -> dict[str, float]:
    a, b = base[key], other[key]
    if not a or not b:  # no request completed in one of them
        nan = float("nan")
        return {"p50_ms": nan, "p99_ms": nan, "ratio_p50": nan, "ratio_p99": nan}
    return {
        "p50_ms": round(b["p50_ms"] - a["p50_ms"], 3),
        "p99_ms": round(b["p99_ms"] - a["p99_ms"], 3),
        "ratio_p50": round(b["p50_ms"] / a["p50_ms"], 2) if a["p50_ms"] else float("nan"),
        "ratio_p99": round(b["p99_ms"] / a["p99_ms"], 2) if a["p99_ms"] else float("nan"),
    }


def sustained(step: dict[str, Any], rate: float, max_p99_ms: float) -> bool:
    latency = step.get("latency") or {}
    return bool(
        step["errors"] == 0
        and step["unfinished"] == 0
        and step["ok"] >= 0.99 * step["scheduled"]
        and step["achieved_rps"] >= 0.98 * rate
        and latency.get("p99_ms", float("inf")) <= max_p99_ms
    )


def _round_rate(rate: float) -> float:
    grain = 50 if rate >= 1000 else 10
    return float(max(round(rate / grain) * grain, grain))


def find_max_rate(
    load: Load,
    endpoint: Endpoint,
    server: Server,
    settings: Settings,
    *,
    light: float,
    start: float,
    log: Any,
) -> dict[str, Any]:
    """The highest open-loop rate the server sustains. A light-load step (``light`` req/s)
    sets the baseline p99; a rate is sustained when it has no errors, no request left
    unanswered, ≥ 98% of the rate achieved, and p99 ≤ max(--max-p99-ms, 3 × the baseline
    p99). From ``start`` the rate rises by 25% a step until one fails (or falls by 30% a step
    until one passes), then two bisection steps narrow the bracket."""
    steps: list[dict[str, Any]] = []
    threshold = float("inf")  # the light-load step below sets it

    def step(rate: float) -> bool:
        before, main_before, started = server.cpu(), server.main_cpu(), time.perf_counter()
        result = load.openloop(
            endpoint, rate=rate, duration_s=settings.step_s, warmup_s=1.0, grace_s=3.0
        )
        cpu, wall = server.cpu() - before, time.perf_counter() - started
        main = server.main_cpu() - main_before
        answered = max(result["ok"] * (1.0 + 1.0 / settings.step_s), 1.0)  # warm-up included
        ok = sustained(result, rate, threshold)
        p99 = result["latency"].get("p99_ms", float("nan"))
        steps.append(
            {
                "rate": rate,
                "sustained": ok,
                "achieved_rps": result["achieved_rps"],
                "errors": result["errors"],
                "unfinished": result["unfinished"],
                "p50_ms": result["latency"].get("p50_ms"),
                "p99_ms": result["latency"].get("p99_ms"),
                "server_cpu_cores": round(cpu / wall, 2),
                "server_cpu_us_per_request": round(cpu / answered * 1e6, 1),
                "main_thread_cpu_us_per_request": round(main / answered * 1e6, 1),
                "other_threads_cpu_us_per_request": round((cpu - main) / answered * 1e6, 1),
            }
        )
        log(
            f"  {endpoint.name} {rate:>7.0f} req/s: {'ok  ' if ok else 'FAIL'} achieved "
            f"{result['achieved_rps']:.0f}, p99 {p99} ms, errors {result['errors']}, "
            f"unfinished {result['unfinished']}, cpu {cpu / wall:.2f} cores"
        )
        time.sleep(2.0)  # let a saturated server drain its queues
        return ok

    light_ok = step(light)  # any p99 passes here: only errors and backlog count
    baseline_p99 = steps[0]["p99_ms"] or 0.0
    threshold = max(settings.max_p99_ms, 3 * baseline_p99) if light_ok else settings.max_p99_ms
    good, bad = (light if light_ok else 0.0), (0.0 if light_ok else light)
    rate = start
    if step(rate):
        good = rate
        while rate < 50_000:
            rate = _round_rate(rate * 1.25)
            if not step(rate):
                bad = rate
                break
            good = rate
    else:
        bad = rate
        while True:
            rate = _round_rate(rate * 0.7)
            if rate <= max(good, light):
                break
            if step(rate):
                good = rate
                break
            bad = rate
    for _ in range(2):
        middle = _round_rate((good + bad) / 2)
        if not bad or middle in (good, bad):
            break
        if step(middle):
            good = middle
        else:
            bad = middle
    return {
        "sustained_rps": good,
        "first_failing_rps": bad or None,
        "light_rps": light,
        "baseline_p99_ms_at_light_rps": baseline_p99,
        "p99_threshold_ms": round(threshold, 3),
        "criterion": (
            "no errors, no unfinished requests, >= 98% of the rate achieved, p99 (from the "
            f"intended send time) <= {threshold:.1f} ms = max({settings.max_p99_ms:g} ms, "
            f"3 x p99 at {light:g} req/s)"
        ),
        "steps": steps,
    }


def profile_gateway(
    load: Load,
    endpoint: Endpoint,
    server: Server,
    settings: Settings,
    workdir: Path,
    load_rps: float,
) -> dict[str, Any]:
    """py-spy (on the load core) samples the gateway while it serves ``load_rps`` (below its
    capacity, so the profile shows the work per request rather than queueing)."""
    py_spy = VENV_BIN / "py-spy"
    rate_hz = 250
    raw = workdir / "gateway-pyspy.txt"
    argv = [str(py_spy), "record", "-p", str(server.pid), "-f", "raw", "-o", str(raw)]
    # Blocking sampling (exact stacks), only threads holding the GIL: the samples then add up
    # to the Python CPU time of the process (not counting GIL waits or released-GIL C code).
    argv += ["-d", f"{settings.profile_s:g}", "-r", str(rate_hz), "--gil"]
    argv += ["--nolineno", "--full-filenames"]
    spy = subprocess.Popen(
        pinned(LOAD_CORE, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(0.5)
    before, main_before, own_before = server.cpu(), server.main_cpu(), own_cpu_seconds(server.pid)
    result = load.openloop(
        endpoint, rate=load_rps, duration_s=settings.profile_s, warmup_s=0.0, grace_s=2.0
    )
    cpu, main = server.cpu() - before, server.main_cpu() - main_before
    own = own_cpu_seconds(server.pid) - own_before
    _, error = spy.communicate(timeout=60)
    if spy.returncode != 0 or not raw.exists():
        return {"error": error.decode(errors="replace")[-2000:]}
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(raw, RESULTS / "gateway-pyspy.txt")
    requests = result["ok"]
    return {
        "sampling_hz": rate_hz,
        "load_rps": load_rps,
        "requests": requests,
        "gateway_cpu_us_per_request": round(cpu / requests * 1e6, 1) if requests else None,
        "main_thread_cpu_us_per_request": round(main / requests * 1e6, 1) if requests else None,
        # The gateway's process alone: without its journal writer process.
        "process_cpu_us_per_request": round(own / requests * 1e6, 1) if requests else None,
        **summarize_profile(raw, rate_hz, requests),
        "raw_file": "bench/results/gateway-pyspy.txt",
    }


_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*)\)$")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3" and "/" in tail else tail
    return path


def _package(path: str) -> str:
    short = _short(path)
    if short.startswith("spendgate/"):
        parts = short.split("/")
        return "/".join(parts[:2]) if len(parts) > 2 else short.removesuffix(".py")
    if short == "<string>":
        return "generated code (<string>: dataclass __init__/__eq__/__hash__, …)"
    if "/" not in short:
        return "stdlib:" + short.removesuffix(".py")
    return short.split("/", 1)[0]


def summarize_profile(raw: Path, rate_hz: int, requests: int) -> dict[str, Any]:
    """Self time by leaf function and by package, inclusive time of spendgate functions;
    each in µs of gateway CPU per request."""
    leaf: Counter[str] = Counter()
    package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match is not None:
                frames.append((match["function"], match["path"]))
        if not frames:
            continue
        if frames[0][0] == "<module>":
            threads["event loop (main thread)"] += count
        elif any(function.startswith("BatchWriter.") for function, _ in frames):
            threads["journal writer thread"] += count
        else:
            threads["other threads"] += count
        function, path = frames[-1]
        leaf[f"{function} ({_short(path)})"] += count
        package[_package(path)] += count
        seen = {
            f"{function} ({_short(path)})"
            for function, path in frames
            if "spendgate/" in path and "/bench/" not in path
        }
        for name in seen:
            inclusive[name] += count

    def per_request(samples: int) -> float:
        return round(samples / rate_hz / requests * 1e6, 1) if requests else 0.0

    def rows(counter: Counter[str], top: int) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "share": round(samples / total, 3) if total else 0.0,
                "us_per_request": per_request(samples),
            }
            for name, samples in counter.most_common(top)
        ]

    return {
        "samples": total,
        "sampled_cpu_us_per_request": per_request(total),
        "by_thread": rows(threads, 3),
        "self_by_package": rows(package, 15),
        "self_by_function": rows(leaf, 25),
        "inclusive_spendgate": rows(inclusive, 30),
    }


def metrics_requests(port: int) -> dict[str, float]:
    _, body = http_get(port, "/metrics")
    totals: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("spendgate_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            status = re.search(r'status="(\d+)"', labels)
            key = status.group(1) if status else "?"
            totals[key] = totals.get(key, 0) + float(value)
    return totals


def journal_check(database: Path) -> dict[str, Any]:
    connection = sqlite3.connect(database)
    try:
        rows, settled = connection.execute(
            "select count(*), count(settled_at) from routing_decisions"
        ).fetchone()
        detail = connection.execute(
            "select detail from routing_decisions order by created_at desc limit 1"
        ).fetchone()
    finally:
        connection.close()
    evaluations = len(json.loads(detail[0]).get("ev", [])) if detail else 0
    return {"decisions": rows, "settled": settled, "evaluations_per_decision": evaluations}


def smoke(endpoint: Endpoint, load: Load) -> dict[str, Any]:
    """One plain and one streamed request through ``endpoint``: they must succeed."""
    headers = dict(endpoint.headers) | {"content-type": "application/json"}
    status, response_headers, body = http_post(
        endpoint.port, endpoint.path, load.body.read_bytes(), headers
    )
    if status != 200:
        raise SystemExit(f"{endpoint.name}: POST {endpoint.path} answered {status}: {body[:500]!r}")
    stream_headers = dict(endpoint.stream_headers) | {"content-type": "application/json"}
    stream_status, _, stream = http_post(
        endpoint.port, endpoint.stream_path, load.stream_body.read_bytes(), stream_headers
    )
    if stream_status != 200 or b"data: [DONE]" not in stream:
        raise SystemExit(f"{endpoint.name}: stream answered {stream_status}: {stream[:500]!r}")
    return {
        name: value
        for name, value in response_headers.items()
        if name.lower().startswith("x-spendgate-")
    }


# -- the run ---------------------------------------------------------------------------------


def versions(litellm: Path | None) -> dict[str, str]:
    from importlib.metadata import version

    found = {name: version(name) for name in ("spendgate", "uvicorn", "aiohttp", "uvloop")}
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    found["nginx"] = nginx.split("/")[-1]
    found["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    found["python"] = platform.python_version()
    if litellm is not None:
        pip = litellm.parent / "pip"
        shown = subprocess.run([str(pip), "show", "litellm"], capture_output=True, text=True)
        found["litellm"] = next(
            (row.split(":", 1)[1].strip() for row in shown.stdout.splitlines() if "Version" in row),
            "?",
        )
    return found


def run(settings: Settings) -> dict[str, Any]:
    def log(message: str) -> None:
        print(message, flush=True)

    os.sched_setaffinity(0, {LOAD_CORE})
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "gateway_core": GATEWAY_CORE,
            "load_core": LOAD_CORE,
            "nice": settings.nice,
            "loadavg_start": loadavg(),
        },
        "versions": versions(settings.litellm),
        "targets": TARGETS,
    }
    log(f"load average {loadavg()}; probing the cross-core wake-up floor …")
    results["wakeup_floor"] = wakeup_probe()
    log(f"  {results['wakeup_floor']}")
    phases: dict[str, Any] = {}
    results["phases"] = phases

    with tempfile.TemporaryDirectory(prefix="spendgate-bench-") as temp:
        workdir = Path(temp)
        nginx = start_nginx(workdir, settings.nice)
        load = Load(workdir, settings.nice)
        servers: dict[str, Server] = {"nginx": nginx}
        try:
            _spendgate_phases(settings, workdir, nginx, load, servers, results, log)
            floor = start_floor(workdir, nginx.port, settings.nice)
            _peer_phases(*floor, settings, nginx, load, results, log)
            if settings.litellm is not None:
                litellm = start_litellm(workdir, settings.litellm, nginx.port, settings.nice)
                _peer_phases(*litellm, settings, nginx, load, results, log)
        finally:
            for server in list(servers.values()):
                server.stop()
    results["machine"]["loadavg_end"] = loadavg()
    results["verdict"] = verdict(results)
    return results


def _phase(
    name: str,
    settings: Settings,
    servers: dict[str, Server],
    results: dict[str, Any],
    log: Any,
) -> CpuWindow:
    quiet = wait_quiet(settings.quiet_wait_s)
    log(f"{name} (waited {quiet['waited_s']} s for quiet; others used {quiet['foreign_cores']})")
    results.setdefault("quiet", {})[name] = quiet
    return CpuWindow(dict(servers))


def _spendgate_phases(
    settings: Settings,
    workdir: Path,
    nginx: Server,
    load: Load,
    servers: dict[str, Server],
    results: dict[str, Any],
    log: Any,
) -> None:
    phases = results["phases"]
    # (5) startup: spawn → /healthz, on a fresh database each time; keep the last one. The
    # checkout's bytecode is compiled first, as pip compiles an installed package's: with
    # PYTHONDONTWRITEBYTECODE set (as on this VM) every start would otherwise recompile each
    # module changed since its .pyc was written.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    startups = []
    gateway: Server | None = None
    for trial in range(settings.startup_trials):
        config = render_gateway_config(workdir, nginx.port, f"spendgate-{trial}")
        if gateway is not None:
            gateway.stop()
        gateway, startup = start_gateway(workdir, config, settings.nice, "spendgate")
        startups.append(startup)
        log(
            f"spendgate startup: /healthz {startup.healthz_s:.3f} s, "
            f"first proxied 200 {startup.first_proxied_s:.3f} s"
        )
    assert gateway is not None
    database = workdir / f"spendgate-{settings.startup_trials - 1}.db"
    config = workdir / f"spendgate-{settings.startup_trials - 1}.yaml"
    servers["spendgate"] = gateway
    time.sleep(1.0)
    memory: dict[str, Any] = {"spendgate_rss_mb_after_start": gateway.rss_mb()}
    ends = endpoints(nginx, gateway.port)
    direct, spendgate = ends["direct"], ends["spendgate"]
    results["response_headers"] = smoke(spendgate, load)
    smoke(direct, load)

    log("warm-up …")
    for endpoint in (direct, spendgate):
        load.openloop(endpoint, rate=None, duration_s=2 if settings.quick else 5, warmup_s=0)
        load.openloop(endpoint, rate=None, duration_s=1, warmup_s=0, stream=True)

    # (1) unloaded
    with _phase("unloaded (wrk -t1 -c1)", settings, servers, results, log) as window:
        unloaded = {name: load.wrk(ends[name], settings.unloaded_s) for name in ends}
    unloaded["cpu"] = window.result
    unloaded["added"] = {"spendgate": added(unloaded["direct"], unloaded["spendgate"])}
    phases["unloaded"] = unloaded
    _print_pair("unloaded", unloaded, log)

    # (2) open loop at 1,000 req/s
    open1000: dict[str, Any] = {}
    for name in ("direct", "spendgate"):
        with _phase(f"open loop 1,000 req/s: {name}", settings, servers, results, log) as window:
            open1000[name] = load.openloop(
                ends[name], rate=1000, duration_s=settings.open_s, warmup_s=settings.open_warmup_s
            )
        open1000[name]["cpu"] = window.result
    open1000["added"] = {"spendgate": added(open1000["direct"], open1000["spendgate"])}
    # CPU per answered request would mislead when the server is overloaded (its CPU also
    # served the warm-up and the backlog): report the cores it used instead.
    for name in ("spendgate", "nginx"):
        usage = open1000["spendgate" if name == "spendgate" else "direct"]["cpu"]
        open1000[f"{name}_cpu_cores"] = round(usage[f"{name}_cpu_s"] / usage["wall_s"], 3)
    phases["open_1000"] = open1000
    _print_pair("open 1,000 req/s", open1000, log)

    # (4) streaming: time to the first SSE event, one request at a time
    streaming: dict[str, Any] = {}
    for name in ("direct", "spendgate"):
        with _phase(f"streaming TTFT: {name}", settings, servers, results, log):
            streaming[name] = load.openloop(
                ends[name],
                rate=None,
                duration_s=settings.stream_s,
                warmup_s=0.5,
                stream=True,
                connections=1,
            )
    streaming["added"] = {"spendgate": added(streaming["direct"], streaming["spendgate"], "ttfb")}
    phases["streaming_ttft"] = streaming
    _print_pair("streaming TTFT", streaming, log, key="ttfb")

    # (3) max sustained throughput of the gateway on its core
    with _phase("max throughput: spendgate", settings, servers, results, log):
        phases["max_throughput"] = {
            "spendgate": find_max_rate(
                load, spendgate, gateway, settings, light=50, start=1000, log=log
            )
        }
    # Added latency at half the sustained rate (a load the gateway can carry, unlike
    # 1,000 req/s when its capacity is below that).
    half = _round_rate(phases["max_throughput"]["spendgate"]["sustained_rps"] / 2)
    open_half: dict[str, Any] = {"rate": half}
    for name in ("direct", "spendgate"):
        title = f"open loop {half:.0f} req/s: {name}"
        with _phase(title, settings, servers, results, log) as window:
            open_half[name] = load.openloop(
                ends[name], rate=half, duration_s=settings.open_s, warmup_s=settings.open_warmup_s
            )
        open_half[name]["cpu"] = window.result
    answered = open_half["spendgate"]["ok"] * (1 + settings.open_warmup_s / settings.open_s)
    cpu = open_half["spendgate"]["cpu"]
    open_half["spendgate_cpu_us_per_request"] = round(
        cpu["spendgate_cpu_s"] / max(answered, 1) * 1e6, 1
    )
    open_half["spendgate_main_thread_cpu_us_per_request"] = round(
        cpu["spendgate_main_thread_cpu_s"] / max(answered, 1) * 1e6, 1
    )
    open_half["added"] = {"spendgate": added(open_half["direct"], open_half["spendgate"])}
    phases["open_half_max"] = open_half
    _print_pair(f"open {half:.0f} req/s", open_half, log)

    # Streaming under load: time to the first SSE event at the same fixed rate.
    stream_loaded: dict[str, Any] = {"rate": half}
    for name in ("direct", "spendgate"):
        with _phase(f"streaming TTFT at {half:.0f} req/s: {name}", settings, servers, results, log):
            stream_loaded[name] = load.openloop(
                ends[name],
                rate=half,
                duration_s=settings.open_s,
                warmup_s=settings.open_warmup_s,
                stream=True,
            )
    stream_loaded["added"] = {
        "spendgate": added(stream_loaded["direct"], stream_loaded["spendgate"], "ttfb")
    }
    phases["streaming_ttft_loaded"] = stream_loaded
    _print_pair(f"streaming TTFT at {half:.0f} req/s", stream_loaded, log, key="ttfb")

    # ... and a check that the generator (with nginx on the same core) is not the limit.
    gen_rate = max(3000.0, phases["max_throughput"]["spendgate"]["sustained_rps"] * 1.5)
    title = f"generator check: direct at {gen_rate:.0f} req/s"
    with _phase(title, settings, servers, results, log):
        check = load.openloop(direct, rate=gen_rate, duration_s=settings.step_s, warmup_s=1.0)
    check["sustained"] = sustained(check, gen_rate, settings.max_p99_ms)
    phases["generator_check"] = check
    log(
        f"  direct at {gen_rate:.0f} req/s: achieved {check['achieved_rps']}, p99 "
        f"{check['latency'].get('p99_ms')} ms, send lag p99 {check['send_lag'].get('p99_ms')} ms"
    )

    # profile, at 1,000 req/s or 60% of the sustained rate if that is lower
    if settings.profile:
        sustained_rps = phases["max_throughput"]["spendgate"]["sustained_rps"]
        rate = max(min(1000.0, round(sustained_rps * 0.6 / 10) * 10), 50.0)
        with _phase(f"py-spy profile at {rate:.0f} req/s", settings, servers, results, log):
            phases["profile"] = profile_gateway(load, spendgate, gateway, settings, workdir, rate)

    time.sleep(3.0)
    memory["spendgate_rss_mb_idle_after_load"] = gateway.rss_mb()
    served = metrics_requests(gateway.port)
    code = gateway.stop()
    servers.pop("spendgate")
    journal = journal_check(database)
    journal["metrics_requests_by_status"] = served
    journal["gateway_exit_code"] = code
    results["governance_check"] = journal
    log(f"journal: {journal}")

    # startup again, now rebuilding the ledger from the journal the run wrote
    restarted, restart = start_gateway(workdir, config, settings.nice, "spendgate-restart")
    time.sleep(1.0)
    memory["spendgate_rss_mb_after_restart"] = restarted.rss_mb()
    restarted.stop()
    results["startup"] = {
        "spendgate_fresh_s": [startup.healthz_s for startup in startups],
        "spendgate_with_journal_s": restart.healthz_s,
        "spendgate_first_proxied_fresh_s": [startup.first_proxied_s for startup in startups],
        "spendgate_first_proxied_with_journal_s": restart.first_proxied_s,
        "journal_decisions": journal["decisions"],
    }
    results["memory"] = memory
    log(f"startup {results['startup']}; memory {memory}")


def _peer_phases(
    peer: Server,
    startup_s: float,
    settings: Settings,
    nginx: Server,
    load: Load,
    results: dict[str, Any],
    log: Any,
) -> None:
    """The phases of spendgate's column for another proxy, each beside a fresh direct run."""
    phases, name = results["phases"], peer.name
    try:
        servers = {"nginx": nginx, name: peer}
        log(f"{name} startup {startup_s:.3f} s")
        time.sleep(2.0)
        results["startup"][f"{name}_s"] = round(startup_s, 3)
        results["memory"][f"{name}_rss_mb_after_start"] = peer.rss_mb()
        direct, end = endpoints(nginx, 0)["direct"], peer_endpoint(name, peer.port)
        smoke(end, load)
        log(f"{name} warm-up …")
        load.openloop(end, rate=None, duration_s=5, warmup_s=0)
        load.openloop(end, rate=None, duration_s=2, warmup_s=0, stream=True)

        before = f"direct_before_{name}"
        with _phase(f"unloaded: direct again, {name}", settings, servers, results, log) as window:
            unloaded = phases["unloaded"]
            unloaded[before] = load.wrk(direct, settings.unloaded_s)
            unloaded[name] = load.wrk(end, settings.unloaded_s)
        unloaded[f"cpu_{name}"] = window.result
        unloaded["added"][name] = added(unloaded[before], unloaded[name])

        open1000 = phases["open_1000"]
        for key, target in ((before, direct), (name, end)):
            with _phase(f"open loop 1,000 req/s: {key}", settings, servers, results, log) as window:
                open1000[key] = load.openloop(
                    target,
                    rate=1000,
                    duration_s=settings.open_s,
                    warmup_s=settings.open_warmup_s,
                    grace_s=10.0,
                )
            open1000[key]["cpu"] = window.result
        open1000["added"][name] = added(open1000[before], open1000[name])
        usage = open1000[name]["cpu"]
        open1000[f"{name}_cpu_cores"] = round(usage[f"{name}_cpu_s"] / usage["wall_s"], 3)

        with _phase(f"streaming TTFT: {name}", settings, servers, results, log):
            streaming = phases["streaming_ttft"]
            streaming[name] = load.openloop(
                end, rate=None, duration_s=settings.stream_s, warmup_s=0.5, stream=True,
                connections=1,
            )  # fmt: skip
        streaming["added"][name] = added(streaming["direct"], streaming[name], "ttfb")

        with _phase(f"max throughput: {name}", settings, servers, results, log):
            light, start = (50, 1000) if name == "floor" else (10, 50)
            phases["max_throughput"][name] = find_max_rate(
                load, end, peer, settings, light=light, start=start, log=log
            )
        time.sleep(3.0)
        results["memory"][f"{name}_rss_mb_idle_after_load"] = peer.rss_mb()
    finally:
        peer.stop()


def _print_pair(title: str, phase: dict[str, Any], log: Any, key: str = "latency") -> None:
    for name, value in phase.items():
        if isinstance(value, dict) and key in value and value[key]:
            dist = value[key]
            log(
                f"  {title:<18} {name:<10} p50 {dist['p50_ms']:.3f} ms  p99 {dist['p99_ms']:.3f} ms"
            )


# -- report ----------------------------------------------------------------------------------


def verdict(results: dict[str, Any]) -> list[dict[str, Any]]:
    phases = results["phases"]
    rows = []

    def row(name: str, measured: float | None, target: float, lower_is_better: bool = True) -> None:
        met = None
        if measured is not None:
            met = measured <= target if lower_is_better else measured >= target
        rows.append({"measure": name, "measured": measured, "target": target, "met": met})

    un = phases["unloaded"]["added"]["spendgate"]
    row("unloaded added p50 (ms)", un["p50_ms"], TARGETS["unloaded_added_p50_ms"])
    row("unloaded added p99 (ms)", un["p99_ms"], TARGETS["unloaded_added_p99_ms"])
    op = phases["open_1000"]["added"]["spendgate"]
    row("1,000 req/s added p50 (ms)", op["p50_ms"], TARGETS["open1000_added_p50_ms"])
    row("1,000 req/s added p99 (ms)", op["p99_ms"], TARGETS["open1000_added_p99_ms"])
    mx = phases["max_throughput"]["spendgate"]["sustained_rps"]
    row("max sustained req/s (1 core)", mx, TARGETS["max_rps_per_core"], lower_is_better=False)
    st = phases["streaming_ttft"]["added"]["spendgate"]
    row("streaming added TTFT p99 (ms)", st["p99_ms"], TARGETS["stream_added_ttft_p99_ms"])
    loaded = phases["streaming_ttft_loaded"]
    row(
        f"  … at {loaded['rate']:.0f} req/s (ms)",
        loaded["added"]["spendgate"]["p99_ms"],
        TARGETS["stream_added_ttft_p99_ms"],
    )
    memory = results["memory"]
    row("idle RSS after start (MB)", memory["spendgate_rss_mb_after_start"], TARGETS["idle_rss_mb"])
    row(
        "idle RSS after load (MB)",
        memory["spendgate_rss_mb_idle_after_load"],
        TARGETS["idle_rss_mb"],
    )
    row("startup, fresh (s)", max(results["startup"]["spendgate_fresh_s"]), TARGETS["startup_s"])
    row(
        "first proxied 200, fresh (s)",
        max(results["startup"]["spendgate_first_proxied_fresh_s"]),
        TARGETS["startup_s"],
    )
    row(
        "startup, with journal (s)",
        results["startup"]["spendgate_with_journal_s"],
        TARGETS["startup_s"],
    )
    return rows


def print_table(results: dict[str, Any]) -> None:
    phases = results["phases"]
    columns = [
        name for name in ("direct", "spendgate", "floor", "litellm") if name in phases["unloaded"]
    ]
    peers = columns[2:]
    print()
    machine = results["machine"]
    print(f"load average {machine['loadavg_start']} → {machine['loadavg_end']}")
    floor = results["wakeup_floor"]
    print(
        f"wake-up floor (1-byte round trip): same core p50/p99 {floor['same_core']['p50_us']}/"
        f"{floor['same_core']['p99_us']} µs, cross core {floor['cross_core']['p50_us']}/"
        f"{floor['cross_core']['p99_us']} µs"
    )
    header = f"{'measure':<34}" + "".join(f"{name:>22}" for name in columns)
    print(header)
    print("-" * len(header))

    def line(label: str, values: Sequence[str]) -> None:
        print(f"{label:<34}" + "".join(f"{value:>22}" for value in values))

    def pct(phase: dict[str, Any], key: str = "latency") -> list[str]:
        cells = []
        for name in columns:
            dist = (phase.get(name) or {}).get(key) or {}
            if not dist:
                cells.append("none answered" if name in phase else "—")
                continue
            cells.append(f"{dist['p50_ms']:.3f} / {dist['p99_ms']:.3f}")
        return cells

    def add(phase: dict[str, Any]) -> list[str]:
        cells = ["—"]
        for name in columns[1:]:
            a = phase["added"].get(name)
            if not a or a["p50_ms"] != a["p50_ms"]:  # absent or NaN
                cells.append("—")
            else:
                cells.append(f"+{a['p50_ms']:.3f} / +{a['p99_ms']:.3f}")
        return cells

    line("unloaded p50 / p99 (ms)", pct(phases["unloaded"]))
    line("  added (ms)", add(phases["unloaded"]))
    line("1,000 req/s p50 / p99 (ms)", pct(phases["open_1000"]))
    line("  added (ms)", add(phases["open_1000"]))
    half = phases["open_half_max"]
    line(f"{half['rate']:.0f} req/s p50 / p99 (ms)", pct(half)[:2] + ["—"] * (len(columns) - 2))
    line("  added (ms)", add(half)[:2] + ["—"] * (len(columns) - 2))
    line("stream TTFT p50 / p99 (ms)", pct(phases["streaming_ttft"], "ttfb"))
    line("  added (ms)", add(phases["streaming_ttft"]))
    loaded = phases["streaming_ttft_loaded"]
    line(
        f"stream TTFT {loaded['rate']:.0f} req/s (ms)",
        pct(loaded, "ttfb")[:2] + ["—"] * (len(columns) - 2),
    )
    line("  added (ms)", add(loaded)[:2] + ["—"] * (len(columns) - 2))
    maxima = phases["max_throughput"]
    line(
        "max sustained req/s (1 core)",
        [
            "—",
            *(
                f"{maxima[name]['sustained_rps']:.0f}" if name in maxima else "—"
                for name in columns[1:]
            ),
        ],
    )
    memory, startup = results["memory"], results["startup"]
    line(
        "RSS after start / idle (MB)",
        [
            "—",
            f"{memory['spendgate_rss_mb_after_start']} / "
            f"{memory['spendgate_rss_mb_idle_after_load']}",
            *(
                f"{memory.get(f'{name}_rss_mb_after_start')} / "
                f"{memory.get(f'{name}_rss_mb_idle_after_load')}"
                for name in peers
            ),
        ],
    )
    line(
        "startup to /healthz (s)",
        [
            "—",
            f"{max(startup['spendgate_fresh_s']):.3f}",
            *(f"{startup.get(f'{name}_s', float('nan')):.3f}" for name in peers),
        ],
    )
    line(
        "startup to first proxied 200 (s)",
        ["—", f"{max(startup['spendgate_first_proxied_fresh_s']):.3f}"]
        + ["—"] * (len(columns) - 2),
    )
    print()
    for row in results["verdict"]:
        mark = {True: "met", False: "MISSED", None: "?"}[row["met"]]
        print(f"  {row['measure']:<34} {row['measured']!s:>10}  target {row['target']:<8} {mark}")
    profile = phases.get("profile") or {}
    if profile.get("inclusive_spendgate"):
        print()
        print(
            f"gateway CPU per request at {profile['load_rps']:g} req/s: "
            f"{profile['gateway_cpu_us_per_request']} µs (/proc; event-loop thread "
            f"{profile['main_thread_cpu_us_per_request']} µs), "
            f"{profile['sampled_cpu_us_per_request']} µs sampled holding the GIL"
        )
        print("top inclusive spendgate costs (µs per request):")
        for item in profile["inclusive_spendgate"][:12]:
            print(f"  {item['us_per_request']:>7}  {item['name']}")
        print("top self time by package (µs per request):")
        for item in profile["self_by_package"][:10]:
            print(f"  {item['us_per_request']:>7}  {item['name']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (about 2 minutes)")
    parser.add_argument(
        "--litellm", metavar="PATH", help="LiteLLM's `litellm` executable (bench/litellm/run.sh)"
    )
    parser.add_argument(
        "--max-p99-ms",
        type=float,
        default=10.0,
        help="p99 above which a rate counts as not sustained (default 10 ms)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="niceness of the measured processes, to shield them from other work on a shared "
        "machine (default -10 as root, else 0)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "latest.json", help="where to write JSON"
    )
    args = parser.parse_args(argv)
    if sys.platform != "linux":
        raise SystemExit("this benchmark pins processes to cores: Linux only")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("this benchmark needs two cores")
    results = run(Settings.from_args(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
