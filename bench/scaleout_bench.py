"""What sharing the budget costs and what a second worker buys, beside the in-memory default.

Run: ``.venv/bin/python bench/scaleout_bench.py [--quick]``. Linux, as root (it caps CPU with
cgroups and pins PostgreSQL); needs ``nginx``, ``wrk``, ``redis-server`` and a local
PostgreSQL (127.0.0.1:5432, trust). Same method as bench/gateway_bench.py, whose helpers it
uses: the gateway on core 0, nginx (the canned upstream), the load generators, a private
``redis-server`` and the PostgreSQL server on core 1; 20 applicable budget policies.

Modes, each measured against a direct call to nginx in the same run:

* ``memory``: the in-memory ledger and a SQLite journal (the one-process default);
* ``redis``: the Redis ledger and a SQLite journal;
* ``redis+postgresql``: the Redis ledger and a PostgreSQL journal (how replicas run).

Per mode: unloaded latency (``wrk -t1 -c1``) and latency at a fixed open-loop rate, as added
milliseconds over direct. Then scaling: the ``redis+postgresql`` gateway with one worker, and
with ``--workers 2``, each worker on a core of its own and capped by a CPU cgroup to the same
share of it (default 35%: the box has two cores, and the load generator, nginx, Redis and
PostgreSQL need the rest); the highest rate each sustains. Two workers with no shared
bottleneck sustain twice one worker's rate. Writes bench/results/scaleout.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_bench import (  # the bench folder is on sys.path (not a package)
    GATEWAY_CORE,
    GATEWAY_ENV,
    LOAD_CORE,
    RESULTS,
    VENV_BIN,
    Load,
    Server,
    Settings,
    added,
    endpoints,
    find_max_rate,
    free_port,
    loadavg,
    pinned,
    render_gateway_config,
    spawn,
    start_nginx,
    wait_quiet,
    wait_ready,
)

MODES = ("memory", "redis", "redis+postgresql")
TARGETS = {  # issue 13's targets
    "redis_added_over_memory_p50_ms": 0.3,
    "two_workers_over_one": 1.8,
}
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_PERIOD_US = 10_000  # short, so a capped worker waits at most a few ms when throttled
SATURATION_RPS = 1500.0  # far above what capped workers answer


# -- backing services ------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A ``redis-server`` of the bench's own on the load core, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process, _ = spawn("redis", pinned(LOAD_CORE, [*argv, "no", "--dir", str(workdir)]), workdir)
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the bench's redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def postgres_on_load_core() -> Iterator[None]:
    """PostgreSQL's processes pinned to the load core for the run (new backends inherit the
    postmaster's affinity), as a database on its own machine would be; restored after."""
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    pids = found.stdout.split()
    everything = ",".join(str(core) for core in sorted(os.sched_getaffinity(0) | {0, 1}))
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", str(LOAD_CORE), pid], capture_output=True)
    try:
        yield
    finally:
        again = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
        for pid in again.stdout.split():
            subprocess.run(["taskset", "-a", "-p", "-c", everything, pid], capture_output=True)


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"spendgate_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        raise SystemExit(f"PostgreSQL at {POSTGRES_ADMIN} is not usable: {error}") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- gateways --------------------------------------------------------------------------------


def gateway_config(
    workdir: Path,
    upstream_port: int,
    name: str,
    ledger_url: str | None,
    database_url: str | None,
    policies: int = 20,
) -> Path:
    path = render_gateway_config(workdir, upstream_port, name)
    text = _first_budgets(path.read_text(), policies)
    if database_url is not None:
        text = "\n".join(
            f"database_url: {database_url}" if line.startswith("database_url:") else line
            for line in text.splitlines()
        )
    if ledger_url is not None:
        text += f"\nledger_url: {ledger_url}\nledger_prefix: {name}\n"
    path.write_text(text)
    if database_url is not None:
        upgrade = [str(VENV_BIN / "spendgate"), "db", "upgrade", "--config", str(path)]
        subprocess.run(upgrade, check=True, capture_output=True, env={**os.environ, **GATEWAY_ENV})
    return path


def _first_budgets(text: str, count: int) -> str:
    """The bench config with only its first ``count`` budgets (it has 20, the last section)."""
    head, budgets = text.split("\nbudgets:\n", 1)
    entries = budgets.split("\n  - ")
    return head + "\nbudgets:\n" + "\n  - ".join(entries[:count]).rstrip("\n") + "\n"


def start(workdir: Path, config: Path, name: str, workers: int = 1) -> Server:
    port = free_port()
    argv = [str(VENV_BIN / "spendgate"), "serve", "--config", str(config), "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    process, log = spawn(name, pinned(GATEWAY_CORE, argv), workdir, GATEWAY_ENV)
    try:
        wait_ready(process, port, "/healthz", time.perf_counter(), limit=60)
    except RuntimeError as error:
        raise SystemExit(f"{name} did not start: {error}\n{log.read_text()}") from None
    return Server(name, process, port, log)


def worker_pids(server: Server, workers: int) -> list[int]:
    """The processes serving requests: the server itself, or its uvicorn workers."""
    if workers == 1:
        return [server.pid]
    deadline = time.monotonic() + 30
    while True:
        children = []
        for task in os.listdir(f"/proc/{server.pid}/task"):
            with open(f"/proc/{server.pid}/task/{task}/children") as handle:
                children += [int(pid) for pid in handle.read().split()]
        serving = [pid for pid in children if b"resource_tracker" not in _cmdline(pid)]
        if len(serving) >= workers:
            return serving[:workers]
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.name}: {workers} workers never appeared")
        time.sleep(0.1)


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read()
    return b""


@contextlib.contextmanager
def cpu_capped(pids: list[int], share: float) -> Iterator[None]:
    """Each of ``pids`` on a core of its own (the n-th on core n: the box has two) and in a
    CPU cgroup of its own, allowed ``share`` of that core."""
    groups = []
    try:
        for core, pid in enumerate(pids):
            for thread in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(thread), {core})
            group = CGROUP_CPU / f"spendgate-bench-{pid}"
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(CGROUP_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(int(share * CGROUP_PERIOD_US)))
            groups.append(group)
            for thread in os.listdir(f"/proc/{pid}/task"):  # v1: every thread moves itself
                (group / "tasks").write_text(thread)
        yield
    finally:
        for group in groups:
            with contextlib.suppress(OSError):
                for thread in (group / "tasks").read_text().split():
                    with contextlib.suppress(OSError):
                        (CGROUP_CPU / "tasks").write_text(thread)
                group.rmdir()


# -- phases ----------------------------------------------------------------------------------


def latency_phases(
    name: str, server: Server, nginx: Server, load: Load, settings: Settings, rate: float, log: Any
) -> dict[str, Any]:
    ends = endpoints(nginx, server.port)
    direct, gateway = ends["direct"], ends["spendgate"]
    for endpoint in (direct, gateway):  # warm-up: connections, caches, the first windows
        load.openloop(endpoint, rate=None, duration_s=2 if settings.quick else 4, warmup_s=0)
    result: dict[str, Any] = {}
    wait_quiet(settings.quiet_wait_s)
    unloaded = {key: load.wrk(ends[key], settings.unloaded_s) for key in ("direct", "spendgate")}
    unloaded["added"] = added(unloaded["direct"], unloaded["spendgate"])
    result["unloaded"] = unloaded
    log(f"  {name} unloaded: added {unloaded['added']}")
    fixed: dict[str, Any] = {"rate": rate}
    for key, endpoint in (("direct", direct), ("spendgate", gateway)):
        wait_quiet(settings.quiet_wait_s)
        fixed[key] = load.openloop(
            endpoint, rate=rate, duration_s=settings.open_s, warmup_s=settings.open_warmup_s
        )
    fixed["added"] = added(fixed["direct"], fixed["spendgate"])
    result["open_loop"] = fixed
    log(f"  {name} at {rate:g} req/s: added {fixed['added']}")
    return result


def scaling_phase(
    workdir: Path,
    config: Path,
    nginx: Server,
    load: Load,
    settings: Settings,
    share: float,
    log: Any,
) -> dict[str, Any]:
    result: dict[str, Any] = {"cpu_share_per_worker": share}
    for workers in (1, 2):
        server = start(workdir, config, f"scale-{workers}", workers)
        try:
            gateway = endpoints(nginx, server.port)["spendgate"]
            load.openloop(gateway, rate=None, duration_s=3, warmup_s=0)
            with cpu_capped(worker_pids(server, workers), share):
                wait_quiet(settings.quiet_wait_s)
                log(f"  {workers} worker(s), each on a core of its own, capped at {share:.0%}:")
                found = find_max_rate(
                    load, gateway, server, settings, light=50, start=300 * workers, log=log
                )
                # Capacity, whatever the latency: the rate answered when far more is offered
                # (a capped worker's tail is mostly its CPU quota's throttling).
                wait_quiet(settings.quiet_wait_s)
                flood = load.openloop(
                    gateway, rate=SATURATION_RPS, duration_s=settings.step_s, warmup_s=1.0
                )
                found["saturated_rps"] = flood["achieved_rps"]
                found["saturated_ok"] = flood["ok"]
                found["saturated_errors"] = flood["errors"]
                log(f"  offered {SATURATION_RPS:g} req/s: answered {flood['achieved_rps']:.0f}/s")
            result[f"workers_{workers}"] = found
        finally:
            server.stop()
    for measure in ("sustained_rps", "saturated_rps"):
        one, two = (result[f"workers_{n}"][measure] for n in (1, 2))
        result[f"two_over_one_{measure}"] = round(two / one, 2) if one else float("nan")
        log(f"  {measure}: 1 worker {one:g}, 2 workers {two:g} ({two / one if one else 0:.2f}×)")
    return result


def run(
    settings: Settings,
    rate: float,
    share: float,
    policies: int,
    settings_modes: frozenset[str] = frozenset(MODES),
    scaling: bool = True,
) -> dict[str, Any]:
    def log(message: str) -> None:
        print(message, flush=True)

    os.sched_setaffinity(0, {LOAD_CORE})
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "loadavg_start": loadavg(),
        "targets": TARGETS,
        "policies": policies,
        "modes": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="spendgate-scaleout-") as temp,
        postgres_on_load_core(),
        throwaway_database() as database_url,
    ):
        workdir = Path(temp)
        nginx = start_nginx(workdir, settings.nice)
        load = Load(workdir, settings.nice)
        try:
            with private_redis(workdir) as redis_url:
                modes = {
                    "memory": (None, None),
                    "redis": (redis_url, None),
                    "redis+postgresql": (redis_url, database_url),
                }
                for name, (ledger_url, journal_url) in modes.items():
                    if name not in settings_modes:
                        continue
                    log(f"{name} …")
                    slug = name.replace("+", "-")
                    config = gateway_config(
                        workdir, nginx.port, slug, ledger_url, journal_url, policies
                    )
                    server = start(workdir, config, slug)
                    try:
                        results["modes"][name] = latency_phases(
                            name, server, nginx, load, settings, rate, log
                        )
                    finally:
                        server.stop()
                if not scaling:
                    pass
                elif os.geteuid() != 0 or not (CGROUP_CPU / "tasks").exists():
                    log("scaling skipped: capping workers needs root and the cgroup cpu controller")
                else:
                    log("scaling, redis+postgresql …")
                    config = gateway_config(
                        workdir, nginx.port, "scale", redis_url, database_url, policies
                    )
                    results["scaling"] = scaling_phase(
                        workdir, config, nginx, load, settings, share, log
                    )
        finally:
            nginx.stop()
    results["loadavg_end"] = loadavg()
    return results


def print_table(results: dict[str, Any]) -> None:
    modes = results["modes"]
    print()
    print(f"{results['policies']} applicable budget policies")
    if modes:
        print(f"{'added over direct (ms)':<28}" + "".join(f"{name:>17}" for name in modes))
        rate = next(iter(modes.values()))["open_loop"]["rate"]
        for label, phase in (
            ("unloaded p50", ("unloaded", "p50_ms")),
            ("unloaded p99", ("unloaded", "p99_ms")),
            (f"{rate:g} req/s p50", ("open_loop", "p50_ms")),
            (f"{rate:g} req/s p99", ("open_loop", "p99_ms")),
        ):
            cells = [modes[name][phase[0]]["added"][phase[1]] for name in modes]
            print(f"{label:<28}" + "".join(f"{cell:>17.3f}" for cell in cells))
    memory = modes.get("memory")
    for name in modes:
        if name == "memory" or memory is None:
            continue
        over = modes[name]["unloaded"]["added"]["p50_ms"] - memory["unloaded"]["added"]["p50_ms"]
        mark = "met" if over <= TARGETS["redis_added_over_memory_p50_ms"] else "MISSED"
        print(f"  {name} over memory, unloaded p50: {over:+.3f} ms (target ≤ +0.3) {mark}")
    scaling = results.get("scaling")
    if scaling:
        share = scaling["cpu_share_per_worker"]
        print(f"  workers each on a core, capped at {share:.0%} of it (req/s):")
        for measure, label in (("sustained_rps", "sustained"), ("saturated_rps", "capacity")):
            one = scaling["workers_1"][measure]
            two = scaling["workers_2"][measure]
            ratio = scaling[f"two_over_one_{measure}"]
            mark = "met" if ratio >= TARGETS["two_workers_over_one"] else "MISSED"
            print(
                f"    {label:<10} 1 worker {one:>6g}, 2 workers {two:>6g} = {ratio}× "
                f"(≥ 1.8×) {mark}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (about 4 minutes)")
    parser.add_argument("--rate", type=float, default=300.0, help="the fixed open-loop rate")
    parser.add_argument(
        "--share", type=float, default=0.35, help="CPU share of its core for each worker"
    )
    parser.add_argument(
        "--modes", help=f"comma-separated, of {', '.join(MODES)} (default: all); '' for none"
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the workers' scaling")
    parser.add_argument(
        "--policies", type=int, default=20, help="applicable budget policies (1-20)"
    )
    parser.add_argument(
        "--max-p99-ms", type=float, default=25.0, help="p99 above which a rate is not sustained"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "scaleout.json", help="where to write JSON"
    )
    args = parser.parse_args()
    if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        raise SystemExit("this benchmark pins processes to two cores: Linux only")
    base = Settings.from_args(
        argparse.Namespace(
            quick=args.quick, max_p99_ms=args.max_p99_ms, nice=0, litellm=None, no_profile=True
        )
    )
    settings = replace(base, quiet_wait_s=3 if args.quick else 10)
    modes = frozenset(MODES) if args.modes is None else frozenset(args.modes.split(","))
    results = run(
        settings, args.rate, args.share, args.policies, modes, scaling=not args.no_scaling
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
