"""Serving-layer A/B: the same trivial endpoint (read the body, answer 60 bytes of JSON) under
each HTTP server, pinned to core 0 with one worker, load on core 1. For each server, in
interleaved rounds: wrk -c1 (unloaded latency), wrk -c16 (saturation: req/s) and
bench/openloop.py at a fixed ``--rate`` (latency from the intended send time), and the
server's CPU per request (all its processes and threads, from /proc). Medians of the rounds.

    .venv/bin/pip install granian   # not a dependency of spendgate: measured, not adopted
    .venv/bin/python bench/serving_bench.py --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = {
    "uvicorn-httptools": lambda port: [
        str(VENV_BIN / "uvicorn"), "trivial_apps:asgi", "--port", str(port), "--loop",
        "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ],
    "uvicorn-no-server-header": lambda port: [
        str(VENV_BIN / "uvicorn"), "trivial_apps:asgi", "--port", str(port), "--loop",
        "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--no-server-header",
    ],
    "granian-asgi": lambda port: [
        str(VENV_BIN / "granian"), "trivial_apps:asgi", "--interface", "asgi", "--port",
        str(port), "--workers", "1", "--runtime-threads", "1", "--runtime-mode", "st",
        "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
    ],
    "granian-rsgi": lambda port: [
        str(VENV_BIN / "granian"), "trivial_apps:rsgi", "--interface", "rsgi", "--port",
        str(port), "--workers", "1", "--runtime-threads", "1", "--runtime-mode", "st",
        "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
    ],
    "granian-rsgi-rust-tasks": lambda port: [
        str(VENV_BIN / "granian"), "trivial_apps:rsgi", "--interface", "rsgi", "--port",
        str(port), "--workers", "1", "--runtime-threads", "1", "--runtime-mode", "st",
        "--loop", "uvloop", "--task-impl", "rust", "--http", "1", "--no-ws",
        "--log-level", "warning",
    ],
    "httptools-direct": lambda port: [sys.executable, "raw.py", str(port)],
    "httptools-asgi-minimal": lambda port: [sys.executable, "raw_asgi.py", str(port)],
}  # fmt: skip


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and its descendants (Granian serves from a child process)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def wrk(port: int, connections: int, seconds: float, body: Path) -> dict[str, float]:
    argv = ["taskset", "-c", "1", shutil.which("wrk") or "wrk", "-t1", f"-c{connections}"]
    argv += [f"-d{seconds:g}s", "-s", str(BENCH / "gateway" / "wrk_post.lua")]
    argv.append(f"http://127.0.0.1:{port}/v1/chat/completions")
    env = {**os.environ, "WRK_BODY_FILE": str(body)}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(pid: int, port: int, connections: int, seconds: float, body: Path) -> dict[str, float]:
    before = tree_cpu_s(pid)
    result = wrk(port, connections, seconds, body)
    used = tree_cpu_s(pid) - before
    requests = result["requests"]
    return {
        "req_per_s": requests / (result["duration_us"] / 1e6),
        "cpu_us_per_req": used / requests * 1e6,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["status_errors"] + result["read_errors"] + result["timeouts"],
    }


def measure_openloop(
    pid: int, port: int, rate: float, seconds: float, body: Path
) -> dict[str, float]:
    argv = ["taskset", "-c", "1", sys.executable, str(BENCH / "openloop.py"), "--json"]
    argv += ["--url", f"http://127.0.0.1:{port}/v1/chat/completions", "--rate", f"{rate:g}"]
    argv += ["--duration", f"{seconds:g}", "--warmup", "0", "--body-file", str(body)]
    before = tree_cpu_s(pid)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    used = tree_cpu_s(pid) - before
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "req_per_s": result["achieved_rps"],
        "cpu_us_per_req": used / result["ok"] * 1e6,
        "p50_ms": result["latency"]["p50_ms"],
        "p99_ms": result["latency"]["p99_ms"],
        "errors": result["errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="open-loop phase")
    parser.add_argument("--servers", nargs="*", default=list(SERVERS))
    args = parser.parse_args()
    missing = [name for name in args.servers if not Path(SERVERS[name](0)[0]).exists()]
    if missing:
        raise SystemExit(f"not installed for {', '.join(missing)}: pip install granian")
    rows: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in args.servers}
    with tempfile.TemporaryDirectory() as temp:
        body = Path(temp) / "body.json"
        body.write_bytes(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}')
        for _ in range(args.rounds):
            for name in args.servers:
                port = free_port()
                process = subprocess.Popen(
                    ["taskset", "-c", "0", *SERVERS[name](port)], cwd=BENCH / "serving"
                )
                try:
                    wait_listening(port)
                    wrk(port, 16, 1.0, body)  # warm-up
                    rows[name].append(
                        {
                            "c1": measure(process.pid, port, 1, args.seconds, body),
                            "c16": measure(process.pid, port, 16, args.seconds, body),
                            "rate": measure_openloop(
                                process.pid, port, args.rate, args.seconds, body
                            ),
                        }
                    )
                finally:
                    process.terminate()
                    process.wait(10)
    summary = {
        name: {
            load: {
                key: round(statistics.median(r[load][key] for r in runs), 3)
                for key in runs[0][load]
            }
            for load in ("c1", "c16", "rate")
        }
        for name, runs in rows.items()
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
