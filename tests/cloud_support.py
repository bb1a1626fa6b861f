"""Shared set-up of the Azure and Gemini provider tests: a gateway whose one model is served
by a provider of that kind (id ``cloud``), pointed at a mock upstream that expects one key,
and the calls both files make through the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import RecordedRequest
from spendgate.store.records import StoredDecision

__all__ = ["KEY", "Answer", "Cloud"]

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


@dataclass(frozen=True)
class Answer:
    text: str
    model_header: str  # x-spendgate-model
    stored: StoredDecision


@dataclass(frozen=True)
class Cloud:
    """One provider kind under test: ``provider`` is its YAML mapping (``{base}``: the mock's
    root URL; its key read from CLOUD_KEY), serving ``model`` as ``upstream``."""

    provider: str
    model: str
    upstream: str

    @contextmanager
    def gateway(self, mock: MockUpstreamThread, key: str, tmp_path: Path) -> Iterator[Served]:
        config = _CONFIG.format(
            provider=self.provider.replace("{base}", mock.base_url),
            model=self.model,
            upstream=self.upstream,
        )
        environ = {"CLOUD_KEY": key, "ALICE_KEY": "sg-alice"}
        with serve_config(config, environ, database=tmp_path / "journal.db") as served:
            yield served

    def chat(self, served: Served, *, stream: bool = False) -> Answer:
        """A chat call through the gateway with the openai SDK, streamed or not."""
        raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
            model=self.model, messages=HELLO, max_tokens=40, stream=stream
        )
        parsed = raw.parse()
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
        else:
            text = parsed.choices[0].message.content or ""
        decision_id = raw.headers["x-spendgate-decision-id"]
        return Answer(text, raw.headers["x-spendgate-model"], stored(served, decision_id))

    def anthropic_chat(self, served: Served) -> str:
        """A Messages call with the anthropic SDK: translated to OpenAI chat for the cloud."""
        message = anthropic_client(served, "sg-alice").messages.create(
            model=self.model, max_tokens=40, messages=HELLO
        )
        return message.content[0].text  # type: ignore[union-attr]

    def refused(self, mock: MockUpstreamThread, key: str, tmp_path: Path) -> openai.APIStatusError:
        """The error a gateway holding the wrong ``key`` answers a chat call with."""
        with (
            self.gateway(mock, key, tmp_path) as served,
            pytest.raises(openai.APIStatusError) as failed,
        ):
            self.chat(served)
        assert open_reservations(served) == 0
        return failed.value


def last_request(mock: MockUpstreamThread) -> RecordedRequest:
    return mock.stats.history[-1]
