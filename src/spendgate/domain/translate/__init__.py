"""OpenAI Chat Completions ⇄ Anthropic Messages, and OpenAI Responses → Anthropic Messages
(and its answers back): requests, responses, streams and usage.

Pure: dicts in, dicts (or SSE bytes) out; no clock (``created`` timestamps are passed in).
Used when a request of one protocol is served by a provider of the other kind. What cannot be
expressed on the other side raises ``TranslationError`` (a ``RequestError``: the gateway turns
it into a 400) rather than being dropped silently when dropping would change the answer
(``n > 1``, JSON mode, server tools, documents); fields that only tune sampling or logging
(``seed``, ``logprobs``, penalties, ``top_k``, thinking) are dropped. docs/providers.md lists
the coverage and the gaps. How each protocol's usage maps onto ``Usage``: ``usage``.
"""

from spendgate.domain.translate._common import Json as Json
from spendgate.domain.translate.errors import TranslationError
from spendgate.domain.translate.observer import RESPONSES_TERMINAL_EVENTS, StreamObserver
from spendgate.domain.translate.requests_to_anthropic import (
    DEFAULT_MAX_TOKENS,
    openai_request_to_anthropic,
)
from spendgate.domain.translate.requests_to_openai import anthropic_request_to_openai
from spendgate.domain.translate.responses import (
    anthropic_error_to_openai,
    anthropic_error_type,
    anthropic_response_to_openai,
    openai_error_to_anthropic,
    openai_response_to_anthropic,
)
from spendgate.domain.translate.responses import (
    finish_reason_from_anthropic as finish_reason_from_anthropic,
)
from spendgate.domain.translate.responses import (
    stop_reason_from_openai as stop_reason_from_openai,
)
from spendgate.domain.translate.responses_from_anthropic import (
    AnthropicToResponsesStream,
    anthropic_response_to_responses,
)
from spendgate.domain.translate.responses_to_anthropic import responses_request_to_anthropic
from spendgate.domain.translate.sse import SSEDecoder, SSEEvent, encode_sse
from spendgate.domain.translate.streams_to_anthropic import OpenAIToAnthropicStream
from spendgate.domain.translate.streams_to_openai import AnthropicToOpenAIStream
from spendgate.domain.translate.usage import (
    usage_from_anthropic,
    usage_from_openai,
    usage_from_responses,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "RESPONSES_TERMINAL_EVENTS",
    "AnthropicToOpenAIStream",
    "AnthropicToResponsesStream",
    "OpenAIToAnthropicStream",
    "SSEDecoder",
    "SSEEvent",
    "StreamObserver",
    "TranslationError",
    "anthropic_error_to_openai",
    "anthropic_error_type",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "anthropic_response_to_responses",
    "encode_sse",
    "openai_error_to_anthropic",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
    "responses_request_to_anthropic",
    "usage_from_anthropic",
    "usage_from_openai",
    "usage_from_responses",
]
