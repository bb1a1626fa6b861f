"""What every proxy route does first, before it reads the request's meaning: decode the
headers, authenticate the key, read the body (within ``max_body``) and decode it as a JSON
object. Raises ``GatewayError`` (400, 401, 413) to refuse."""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.domain.keys import ApiKey
from spendgate.gateway.asgi import (
    BodyTooLargeError,
    HeaderEncodingError,
    Receive,
    Scope,
    header_map,
    read_body,
)
from spendgate.gateway.auth import KeyRing, presented_key
from spendgate.gateway.body import JsonShapeError, check_json_shape
from spendgate.gateway.errors import bad_request, body_too_large, invalid_api_key

__all__ = ["read_request"]


async def read_request(
    scope: Scope, receive: Receive, keys: KeyRing, max_body: int
) -> tuple[dict[str, str], ApiKey, dict[str, Any]]:
    """The request's headers (lower-case names), its key and its JSON object body."""
    try:
        headers = header_map(scope)
    except HeaderEncodingError as error:
        raise bad_request(str(error), error.header) from None
    key = keys.authenticate(presented_key(headers.get("authorization"), headers.get("x-api-key")))
    if key is None:
        raise invalid_api_key()
    try:
        body = await read_body(receive, max_body)
    except BodyTooLargeError:
        raise body_too_large(max_body) from None
    try:
        check_json_shape(body)
        payload = orjson.loads(body)
    except JsonShapeError as error:
        raise bad_request(str(error)) from None
    except orjson.JSONDecodeError as error:
        raise bad_request(f"The body is not valid JSON: {error}.") from None
    if not isinstance(payload, dict):
        raise bad_request("The body must be a JSON object.")
    return headers, key, payload
