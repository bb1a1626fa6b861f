"""URLs as they may be shown: in logs, the admin API, trace attributes.

Its own module so that the gateway's start-up log needs no admin code (the admin's provider
discovery imports httpx, which the proxy path never uses)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["public_url"]


def public_url(url: str | None) -> str | None:
    """``url`` without user-info, query or fragment (where credentials hide)."""
    if not url:
        return url
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a malformed port: show nothing rather than guess
        port = None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
