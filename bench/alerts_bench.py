"""Does the alert detector cost the proxy anything? Alerts on vs off, side by side in one run.

Run: ``.venv/bin/python bench/alerts_bench.py [--duration 20] [--rate 500]`` (Linux; nginx,
wrk and taskset as for bench/gateway_bench.py, whose helpers it uses).

Two gateways serve the bench config (20 applicable budget policies, SQLite journal) plus one
budget that keeps alerts firing (a global daily request limit of 10 with ``hard_action:
alert``: every request past the tenth is an occurrence of its threshold and exhaustion
alerts, whose first announcements go to a webhook on nginx). One has ``alerts.enabled: true``
with ``evaluate_every_seconds: 1`` (15 times the default rate of full passes), the other
``false``. Each is measured against nginx directly, in alternating rounds so drift hits
both alike: unloaded latency (``wrk -c1``) and an open-loop fixed rate. It prints the added
latency of each and the difference on − off.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_bench as gb  # the sibling modules, found through the path above
import onoff

ON, OFF = "alerts-on", "alerts-off"
ALERTING_BUDGET = """
  - {id: bench-alerting, scope: {kind: global}, metric: requests, interval: daily,
     hard_limit: 10, hard_action: alert, alert_thresholds: [0.5, 0.8]}
"""


def render(workdir: Path, upstream_port: int, name: str, enabled: bool) -> Path:
    config = gb.render_gateway_config(workdir, upstream_port, name)
    alerts = (
        "alerts:\n  enabled: true\n  evaluate_every_seconds: 1\n"
        f'  webhooks: [{{id: bench, url: "http://127.0.0.1:{upstream_port}/hook"}}]\n'
        if enabled
        else "alerts: {enabled: false}\n"
    )
    config.write_text(config.read_text().rstrip("\n") + ALERTING_BUDGET + alerts)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = onoff.arguments(__doc__ or "", 500.0, argv)
    with tempfile.TemporaryDirectory(prefix="spendgate-alerts-bench-") as tmp:
        workdir = Path(tmp)
        nginx = gb.start_nginx(workdir, 0)
        try:
            # The warm-up also passes the alerting budget's limit.
            configs = {name: render(workdir, nginx.port, name, name == ON) for name in (ON, OFF)}
            with onoff.gateways(workdir, configs) as servers:
                results = onoff.compare(workdir, nginx, servers, ON, OFF, args)
        finally:
            nginx.stop()
    out = gb.RESULTS / "alerts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    onoff.print_table(results, ON, OFF)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
