"""Input token estimate of a chat request, fast enough for the hot path.

No tokenizer runs here: a real one costs ~80 µs per KiB in this process (bpe-openai, measured
in ``bench/token_estimate.py``), more than a whole plan may take. Instead a calibrated linear
model over the text's UTF-8 bytes estimates the count of **o200k_base** tokens (GPT-4o and
later OpenAI models; see ``docs/token-estimate.md`` for other tokenizers):

    tokens ≈ intercept + Σ weight[byte]  (+ a surplus per emoji)

The weight of a byte depends on its group: ASCII letters by frequency tier (rare letters come
with rare words and random strings, which split into more tokens), digits, whitespace and
punctuation classes; a non-ASCII character by its lead byte, whose range names the script
(Cyrillic ≈ 0.25 token per character, CJK ≈ 0.81, Hangul ≈ 0.69, emoji ≈ 1.7). Evaluating it
is one ``bytes.translate`` through a 256-byte table and a C-level sum (``zlib.adler32`` of 1 KiB
chunks, whose 16-bit half is the byte sum as long as it cannot wrap). There is no Python loop
per character: about three C-level passes over the text, 2-4 µs per KiB where it was measured.

The weights were fitted offline by ``.venv/bin/python bench/token_estimate.py --fit``: bounded
least squares against the exact o200k_base counts (``bpe-openai``) of a 288-sample corpus
(``bench/data/``: prose, technical text, five programming languages, JSON, YAML, HTML,
Markdown tables, CJK, Korean, Cyrillic, Arabic, European and other scripts, emoji, numbers, URLs,
base64), residuals scaled by 1/sqrt(exact). Each byte weighs at most 63/64 of a token (a byte
is never more than one token; the bound also keeps each chunk's sum below the adler32 modulus).

The error margins below are measured on that corpus: every sample's exact count, sent as one
chat message, lies within ``[lower, upper]`` of :func:`estimate_input_tokens`. The upper bound is
what budget reservations use, so it errs high: ``point * (1 + UPPER_MARGIN) + SLACK_TOKENS`` per
message covers the worst under-estimate measured (random base64, rare scripts, short texts).
On text unlike the corpus it is weaker: it covered 85% of held-out standard-library samples
(93% without a deliberately odd Korean codec test), see ``docs/token-estimate.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from zlib import adler32

from spendgate.domain.requests import Attachment, AttachmentKind, ChatRequest, Protocol

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "IMAGE_TOKENS",
    "IMAGE_TOKENS_LOWER",
    "IMAGE_TOKENS_UPPER",
    "LOWER_MARGIN",
    "MEAN_ABS_ERROR",
    "MEAN_ABS_ERROR_LONG",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "SLACK_TOKENS",
    "UPPER_MARGIN",
    "TokenEstimate",
    "estimate_input_tokens",
    "estimate_text_tokens",
]

# --- measured error (bench/token_estimate.py --fit; the table is in docs/token-estimate.md) --

# Mean |estimate - exact| / exact of estimate_text_tokens over the corpus: 10.4% measured
# (11.8% in 5-fold cross-validation), dominated by short texts, where one token is 10-30%.
MEAN_ABS_ERROR = 0.11
# The same over texts of 200 bytes or more: 6.4% measured.
MEAN_ABS_ERROR_LONG = 0.07
# Per text: exact <= point * (1 + UPPER_MARGIN) + SLACK_TOKENS covers the largest measured
# under-estimate (p100 of the corpus, two points of safety added), and
# exact >= point * (1 - LOWER_MARGIN) - SLACK_TOKENS the largest over-estimate.
UPPER_MARGIN = 0.39
LOWER_MARGIN = 0.22
SLACK_TOKENS = 3  # absolute: a 20-character text is 4-8 tokens whatever its kind

# --- chat framing and non-text input ---------------------------------------------------------

# OpenAI chat format, as counted by OpenAI's cookbook (num_tokens_from_messages): each message
# is <|im_start|>{role}<|im_sep|>{content}<|im_end|>, 3 tokens plus the role's 1; each reply is
# primed with <|im_start|>assistant<|im_sep|>, 3 more. Anthropic's framing is similar in size.
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3

# Per image. Point: OpenAI high detail at 1024x1024 (85 + 4 tiles x 170 = 765). Lower: OpenAI
# low detail (85; a tiny image on Anthropic can cost less). Upper: Anthropic's largest image
# before downscaling (~1.15 megapixels / 750 = ~1,600), which also covers OpenAI high detail
# (at most 85 + 8 x 170 = 1,445). Models that bill images at a multiplier (gpt-4o-mini,
# gpt-4.1-nano, o4-mini) count more image tokens at a lower price: not covered here.
IMAGE_TOKENS = 765
IMAGE_TOKENS_LOWER = 85
IMAGE_TOKENS_UPPER = 1600

# Audio is billed by duration: OpenAI counts about one token per 100 ms of input audio. The
# duration is not in the request, only the bytes: the point assumes 16 kB/s (128 kbit/s MP3,
# 8 kHz 16-bit WAV), the upper bound 1 kB/s (8 kbit/s, the lowest MP3 bitrate) so that no
# encoding packs more seconds into its bytes.
AUDIO_TOKENS_PER_SECOND = 10
_AUDIO_BYTES_PER_SECOND = 16_000
_AUDIO_BYTES_PER_SECOND_LOWEST = 1_000
# A part of an unknown type: read as text at most one token per byte (a token is at least a
# byte), and never less than the largest image, in case it is media.
_OTHER_POINT_BYTES_PER_TOKEN = 4

# Tool definitions are estimated from their compact JSON (ChatRequest.tools_text). OpenAI renders
# them in a terser TypeScript-like form (fewer tokens: the lower bound allows for half), and
# Anthropic adds a tool-use system prompt (346 tokens for Claude 4 models, 530 at most for older
# ones, per Anthropic's pricing docs); OpenAI's wrapper is about a dozen tokens.
_TOOLS_PROMPT = {Protocol.OPENAI: 12, Protocol.RESPONSES: 12, Protocol.ANTHROPIC: 346}
_TOOLS_PROMPT_UPPER = 530
# Request shapes whose input is raw text (and token ids), with no chat framing.
_UNFRAMED = frozenset({Protocol.EMBEDDINGS, Protocol.COMPLETIONS})
_TOOLS_LOWER_FRACTION = 0.5

# --- the fitted model (bench/token_estimate.py --fit prints these) ----------------------------

_INTERCEPT = 0.604
_ASTRAL_SURPLUS = 0.759  # emoji weigh more than a lead byte may carry: added per F0 byte
_UNIT = 64  # _WEIGHTS are in 1/64 token
_WEIGHTS = bytes.fromhex(
    "2525252525252525251e3a1e1e3a252525252525252525252525252525252525"
    "05251b090925251b10102525222523372c2c2c2c2c2c2c2c2c2c222210251025"
    "09003f0000003f3f3f003f3f3f3f00003f3f0000003f3f3f3f3f3f1037102509"
    "1b0221212102212121023f3f21210202213f020202213f213f213f1025102525"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000262626262626262626262626101010101010101414141414141414141414"
    "161e14343434343434342c2c2c2c1f1f3f3f3f3f3f0000000000000000000000"
)
# Bytes per adler32 call: 1024 x 63 (the largest weight) < 65521 (its modulus), so the low 16
# bits of each checksum are exactly 1 + the chunk's weight sum.
_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """Token count bounds: ``lower <= point <= upper``. ``unbounded``: some input's size is
    not in the request (a file id, a URL, a PDF): only the model's context window bounds it."""

    lower: int
    point: int
    upper: int
    unbounded: bool = False

    def scaled(self, factor: float) -> TokenEstimate:
        """The estimate for a tokenizer that needs ``factor`` times as many tokens (rounded
        outwards, so the bounds stay conservative)."""
        return TokenEstimate(
            math.floor(self.lower * factor),
            round(self.point * factor),
            math.ceil(self.upper * factor),
            self.unbounded,
        )

    def upper_within(self, context_window: int) -> int:
        """The upper bound on a model that reads at most ``context_window`` tokens: input of
        unknown size may fill it (more, and the provider refuses the request unbilled)."""
        return max(self.upper, context_window) if self.unbounded else self.upper


def estimate_text_tokens(text: str) -> int:
    """Calibrated point estimate of the o200k_base tokens of ``text``."""
    if not text:
        return 0
    return max(1, round(_point(text)))


def estimate_input_tokens(request: ChatRequest) -> TokenEstimate:
    """Bounds of the input tokens of ``request``: messages with their chat framing, images,
    attachments (documents, audio, unknown parts; rules in docs/token-estimate.md) and tool
    definitions. Each text gets its own margin, so many short messages stay covered.
    Embeddings and legacy completions read their texts unframed, and their token ids
    (``ChatRequest.token_ids``) exactly."""
    framing = request.protocol not in _UNFRAMED
    point = lower = upper = float(REPLY_PRIMING if framing else request.token_ids)
    overhead = MESSAGE_OVERHEAD if framing else 0
    unbounded = False
    for message in request.messages:
        point += overhead
        lower += overhead
        upper += overhead
        if message.text:
            text = _point(message.text)
            point += text
            lower += max(0.0, text * (1 - LOWER_MARGIN) - SLACK_TOKENS)
            upper += text * (1 + UPPER_MARGIN) + SLACK_TOKENS
        if message.image_count:
            point += IMAGE_TOKENS * message.image_count
            lower += IMAGE_TOKENS_LOWER * message.image_count
            upper += IMAGE_TOKENS_UPPER * message.image_count
    for attachment in request.attachments:
        guess, most = _attachment_tokens(attachment)
        point += guess
        # Unbounded: its point only; the context window bounds the whole (upper_within).
        upper += guess if most is None else most
        unbounded = unbounded or most is None
    if request.tools_text:
        tools = _point(request.tools_text)
        point += tools + _TOOLS_PROMPT.get(request.protocol, _TOOLS_PROMPT_UPPER)
        lower += tools * _TOOLS_LOWER_FRACTION * (1 - LOWER_MARGIN)
        upper += tools * (1 + UPPER_MARGIN) + SLACK_TOKENS + _TOOLS_PROMPT_UPPER
    return TokenEstimate(math.floor(lower), round(point), math.ceil(upper), unbounded)


def _attachment_tokens(attachment: Attachment) -> tuple[float, float | None]:
    """Point and upper bound (``None``: unbounded) of one attachment; the lower bound is 0
    (a provider may drop what it cannot read)."""
    size = attachment.size
    if attachment.kind is AttachmentKind.OTHER:
        size = size or 0
        return size / _OTHER_POINT_BYTES_PER_TOKEN, float(max(size, IMAGE_TOKENS_UPPER))
    if size is None:  # only referred to: the provider reads it whole, whatever its size
        return float(IMAGE_TOKENS_UPPER), None
    if attachment.kind is AttachmentKind.AUDIO:
        return (
            size / _AUDIO_BYTES_PER_SECOND * AUDIO_TOKENS_PER_SECOND,
            size / _AUDIO_BYTES_PER_SECOND_LOWEST * AUDIO_TOKENS_PER_SECOND + 1,
        )
    # A PDF is billed as its extracted text plus an image per page; neither follows from its
    # compressed bytes, so only the context window bounds it. The point reads it as text.
    return size / _OTHER_POINT_BYTES_PER_TOKEN, None


def _point(text: str) -> float:
    """The model's estimate for a non-empty text, unrounded."""
    if text.isascii():  # most traffic: encoding is a copy, and there are no emoji
        data = text.encode("ascii")
        emoji = 0.0
    else:
        # surrogatepass: JSON may carry lone surrogates ("\ud83d"), which strict UTF-8 refuses.
        data = text.encode("utf-8", "surrogatepass")
        emoji = _ASTRAL_SURPLUS * data.count(b"\xf0")
    weights = data.translate(_WEIGHTS)
    if len(weights) <= _CHUNK:
        units = (adler32(weights) & 0xFFFF) - 1
    else:
        view = memoryview(weights)
        units = sum(
            (adler32(view[start : start + _CHUNK]) & 0xFFFF) - 1
            for start in range(0, len(weights), _CHUNK)
        )
    return _INTERCEPT + units / _UNIT + emoji
