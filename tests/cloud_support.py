"""Shared set-up of the Azure and Gemini provider tests: a gateway whose one model is served
by a provider of that kind, pointed at a mock upstream that expects one key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gateway_support import Served, serve_config
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import RecordedRequest

__all__ = ["KEY", "cloud_gateway", "last_request"]

KEY = "cloud-upstream-secret-0123"  # what the mock accepts

_CONFIG = """
providers:
  - {provider}
models:
  - id: {model}
    capabilities: [json, tools]
    max_output_tokens: 4096
    deployments: [{{provider: cloud, upstream_id: {upstream}}}]
routing: {{default_model: {model}, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-daily, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: 100}}
pricing:
  - {{model: {model}, input_per_mtok: 1, output_per_mtok: 4, effective_from: 2024-01-01}}
"""


@contextmanager
def cloud_gateway(
    provider: str, model: str, upstream: str, key: str, tmp_path: Path
) -> Iterator[Served]:
    """A gateway with provider ``cloud`` (``provider``: its YAML mapping, reading its key from
    CLOUD_KEY, set to ``key``) serving ``model`` as ``upstream``."""
    config = _CONFIG.format(provider=provider, model=model, upstream=upstream)
    environ: Mapping[str, str] = {"CLOUD_KEY": key, "ALICE_KEY": "sg-alice"}
    with serve_config(config, environ, database=tmp_path / "journal.db") as served:
        yield served


def last_request(mock: MockUpstreamThread) -> RecordedRequest:
    return mock.stats.history[-1]
