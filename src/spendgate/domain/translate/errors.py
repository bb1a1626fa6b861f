"""The error raised when a request cannot be expressed in the other protocol."""

from spendgate.domain.requests import RequestError


class TranslationError(RequestError):
    """The request uses something the other protocol cannot express."""
