"""Where the memory of ``spendgate serve`` goes: module group → MB, for the gateway process
and its journal writer process, and their RSS after start and after 1,000 proxied requests.

Run: ``.venv/bin/python bench/serve_memory.py [--requests N]``. Linux only; needs ``nginx``
(as ``gateway_bench.py``, whose upstream, config and helpers it uses). Method:

1. ``spendgate serve`` on the gateway bench's config (bench/gateway/spendgate.bench.yaml,
   a fresh SQLite journal), upstream nginx. RSS (``VmRSS``, MB = 10^6 bytes) of the gateway
   process and of the writer process 1 s after the first proxied 200, and again 1 s after
   N proxied chat completions (one keep-alive connection). ``PYTHONPROFILEIMPORTTIME`` is set
   for the gateway's children only: the writer's import profile comes from this run.
2. The same again with ``-X importtime`` on the gateway: its import profile. A profile lists
   the modules a process imported in the order their imports completed (dependencies first),
   lazily imported ones (first request, shutdown) included.
3. For each list, a fresh interpreter imports the modules in that order, every module's
   loading wrapped to read RSS before and after it: its own growth (without the imports it
   makes, as importtime's "self") is charged to its group (its top-level package; spendgate's
   subpackages apart; the standard library's by module). A shared library is charged to the
   first module that loads it (libcrypto to ``_hashlib`` or ``_ssl``). "process data" is the
   measured RSS minus the interpreter and the imports: config, catalog, counters, buffers,
   allocator slack.

Compile the sources first (``python -m compileall -q src``) when ``PYTHONDONTWRITEBYTECODE``
is set: without bytecode every start compiles spendgate again, which costs both memory and
time that an installed package does not pay.
"""

from __future__ import annotations

import argparse
import ast
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_bench as gb

PYTHON = str(gb.VENV_BIN / "python")
MB = 1e6

# Runs ``spendgate serve`` as the command does; the arguments follow on the command line.
_SERVE = (
    "import sys; from spendgate.cli import main; sys.argv = ['spendgate', *sys.argv[1:]]; main()"
)
# The same, with import profiling turned on for the processes it starts (the writer).
_SERVE_PROFILING_CHILDREN = "import os; os.environ['PYTHONPROFILEIMPORTTIME'] = '1'; " + _SERVE

# Imports the modules named on stdin, one a line, in that order, each module's loading
# timed in RSS: its own growth, without that of the imports it makes (as -X importtime's
# "self"). Prints the bare interpreter's RSS, then {module: bytes}. Imports nothing new.
_ATTRIBUTE = """
import importlib, os, sys
page = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page


charged = {}
nested = [0]  # per loading in progress: the growth of the loadings it caused


class Measured:
    def __init__(self, loader, name):
        self._loader, self._name = loader, name

    def __getattr__(self, attribute):
        return getattr(self._loader, attribute)

    def create_module(self, spec):
        return self._measure(self._loader.create_module, spec)

    def exec_module(self, module):
        self._measure(self._loader.exec_module, module)

    def _measure(self, step, argument):
        nested.append(0)
        before = rss()
        try:
            return step(argument)
        finally:
            grown = rss() - before
            charged[self._name] = charged.get(self._name, 0) + grown - nested.pop()
            nested[-1] += grown


class Finder:
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = Measured(spec.loader, name)
                return spec
        return None


bare = rss()
names = sys.stdin.read().split()
sys.meta_path.insert(0, Finder())
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        pass  # a platform probe (nt, _winapi, …) that failed in the server too
print(repr((bare, charged)))
"""


@dataclass(frozen=True, slots=True)
class Rss:
    """MB resident (RSS, or PSS), of the gateway process and of its journal writer."""

    gateway: float
    writer: float

    def row(self, label: str) -> str:
        return (
            f"  {label:<27}{self.gateway:8.1f}{self.writer:9.1f}{self.gateway + self.writer:9.1f}"
        )


@dataclass(frozen=True, slots=True)
class Run:
    after_start: Rss
    pss_after_start: Rss
    after_requests: Rss
    startup: gb.Startup
    stderr: str  # the servers' log (and import profile, when asked for)


def own_rss_mb(pid: int) -> float:
    return _kib_mb(f"/proc/{pid}/status", "VmRSS:")


def own_pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (libpython, libcrypto, …) divided among the
    processes mapping them, so the gateway's and the writer's add up without counting
    those twice."""
    return _kib_mb(f"/proc/{pid}/smaps_rollup", "Pss:")


def _kib_mb(path: str, field: str) -> float:
    with open(path) as handle:
        for line in handle:
            if line.startswith(field):
                return round(int(line.split()[1]) * 1024 / MB, 1)
    return 0.0


def serve(
    workdir: Path, upstream_port: int, name: str, flags: Sequence[str], code: str, requests: int
) -> Run:
    config = gb.render_gateway_config(workdir, upstream_port, name)
    port = gb.free_port()
    argv = [PYTHON, *flags, "-c", code, "serve", "--config", str(config), "--port", str(port)]
    log = workdir / f"{name}.log"
    with log.open("wb") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            stderr=handle,
            stdout=handle,
            env={**os.environ, **gb.GATEWAY_ENV},
            start_new_session=True,
        )
    try:
        healthz = gb.wait_ready(process, port, "/healthz", started)
        proxied = gb.wait_ready(process, port, "/v1/chat/completions", started, body=gb._CHAT_BYTES)
        time.sleep(1.0)
        writer = _writer_pid(process.pid)
        after_start = Rss(own_rss_mb(process.pid), own_rss_mb(writer))
        pss = Rss(own_pss_mb(process.pid), own_pss_mb(writer))
        _proxy(port, requests)
        time.sleep(1.0)
        after_requests = Rss(own_rss_mb(process.pid), own_rss_mb(writer))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    startup = gb.Startup(round(healthz, 3), round(proxied, 3))
    return Run(after_start, pss, after_requests, startup, log.read_text())


def _writer_pid(gateway: int) -> int:
    children = [pid for pid in gb._tree(gateway) if pid != gateway]
    if len(children) != 1:
        raise SystemExit(f"expected one journal writer process, found {children}")
    return children[0]


def _proxy(port: int, requests: int) -> None:
    headers = {
        "authorization": f"Bearer {gb.GATEWAY_KEY}",
        "content-type": "application/json",
        **dict(gb.SCOPE_HEADERS),
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(requests):
            connection.request("POST", "/v1/chat/completions", body=gb._CHAT_BYTES, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"proxied request answered {response.status}")
    finally:
        connection.close()


def imported(stderr: str) -> list[str]:
    """Module names from an import profile, in the order their imports completed."""
    names = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def group(module: str) -> str:
    top = module.split(".")[0]
    if top == "spendgate":
        return ".".join(module.split(".")[:2])
    if top in sys.stdlib_module_names or top.startswith("_"):
        return f"stdlib {top}"
    return top


def attribute(modules: Sequence[str]) -> tuple[float, Counter[str]]:
    """The bare interpreter's RSS and the RSS growth charged to each group, MB."""
    run = subprocess.run(
        [PYTHON, "-c", _ATTRIBUTE],
        input="\n".join(modules),
        capture_output=True,
        text=True,
        check=True,
    )
    bare, charged = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    groups: Counter[str] = Counter()
    for name, grown in charged.items():
        groups[group(name)] += grown / MB
    return bare / MB, groups


def table(title: str, measured_mb: float, bare_mb: float, groups: Counter[str]) -> None:
    """Groups of 0.5 MB or more, largest first; the smaller ones summed (the standard
    library's apart from the others)."""
    rows: Counter[str] = Counter()
    for name, size in groups.items():
        small = "stdlib (the rest)" if name.startswith("stdlib ") else "(smaller groups)"
        rows[name if size >= 0.5 else small] += size
    print(f"\n{title}")
    print(f"  {'module group':<34}{'MB':>8}")
    for name, size in rows.most_common():
        print(f"  {name:<34}{size:8.1f}")
    print(f"  {'interpreter':<34}{bare_mb:8.1f}")
    data = measured_mb - bare_mb - sum(rows.values())
    print(f"  {'process data (measured − above)':<34}{data:8.1f}")
    print(f"  {'measured RSS after start':<34}{measured_mb:8.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="spendgate-memory-"))
    nginx = gb.start_nginx(workdir, nice=0)
    try:
        plain = serve(workdir, nginx.port, "plain", [], _SERVE_PROFILING_CHILDREN, args.requests)
        profiled = serve(workdir, nginx.port, "profiled", ["-X", "importtime"], _SERVE, 10)
    finally:
        nginx.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    gateway_bare, gateway_groups = attribute(imported(profiled.stderr))
    writer_bare, writer_groups = attribute(imported(plain.stderr))
    table("gateway process", plain.after_start.gateway, gateway_bare, gateway_groups)
    table("journal writer process", plain.after_start.writer, writer_bare, writer_groups)
    print(f"\n  {'RSS (MB)':<27}{'gateway':>8}{'writer':>9}{'total':>9}")
    print(plain.after_start.row("after start"))
    print(plain.after_requests.row(f"after {args.requests:,} requests"))
    print(plain.pss_after_start.row("PSS after start"))
    print(
        f"\nspawn → first proxied 200: {plain.startup.first_proxied_s:.3f} s (one spawn; "
        "gateway_bench.py measures it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
