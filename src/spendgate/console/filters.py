"""The filter bar every console page shares, kept in the URL: a range, a bucket, a timezone
and the scope filters. Parsed leniently (an unknown value falls back to the default, the page
still answers) and confined to what the viewer may read, as the admin API confines a query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.admin.auth import Viewer
from spendgate.domain.timeline import Bucket

__all__ = ["WINDOWS", "Filters"]

# Range choices: label → hours back from now; "custom" is from one local date to another.
WINDOWS = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30, "90d": 24 * 90}
CUSTOM = "custom"
MAX_CUSTOM_DAYS = 400
MAX_HOURLY_DAYS = 31
_IDS = ("project", "principal", "model")


@dataclass(frozen=True, slots=True)
class Filters:
    window: str = "24h"
    bucket: str = "auto"  # auto | hour | day
    tz: str = "UTC"
    project: str | None = None
    principal: str | None = None
    model: str | None = None
    since: date | None = None  # a custom range: its first and last local days
    until: date | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        window = query.get("window", "24h")
        since, until = _date(query.get("since")), _date(query.get("until"))
        if window == CUSTOM:
            if since is None or until is None or not 0 <= (until - since).days < MAX_CUSTOM_DAYS:
                window, since, until = "24h", None, None
        else:
            since = until = None
        bucket = query.get("bucket", "auto")
        tz = query.get("tz", "UTC") or "UTC"
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            tz = "UTC"
        ids = {name: (query.get(name) or "").strip()[:128] or None for name in _IDS}
        return cls(
            window=window if window in WINDOWS or window == CUSTOM else "24h",
            bucket=bucket if bucket in ("auto", "hour", "day") else "auto",
            tz=tz,
            since=since,
            until=until,
            **ids,
        )

    def confined(self, viewer: Viewer) -> Filters:
        """A non-admin key reads its own project (or principal) only: its filter is set to
        it, whatever the URL says (the page shows what it may see, never an error)."""
        restriction = viewer.scope_restriction()
        return replace(
            self,
            project=restriction.get("project", self.project),
            principal=restriction.get("principal", self.principal),
        )

    @property
    def hours(self) -> int:
        if self.since is not None and self.until is not None:
            return ((self.until - self.since).days + 1) * 24
        return WINDOWS[self.window]

    def bounds(self) -> tuple[str, str] | None:
        """A custom range as ISO instants with their offsets (local midnight of its first day,
        local midnight after its last), so every query reads it the same; None for a window
        back from now."""
        if self.since is None or self.until is None:
            return None
        zone = ZoneInfo(self.tz)
        start = datetime(self.since.year, self.since.month, self.since.day, tzinfo=zone)
        after = self.until + timedelta(days=1)
        end = datetime(after.year, after.month, after.day, tzinfo=zone)
        return start.isoformat(), end.isoformat()

    @property
    def time_bucket(self) -> Bucket:
        if self.bucket == "auto" or self.hours_capped:
            return Bucket.HOUR if self.hours <= 48 else Bucket.DAY
        return Bucket(self.bucket)

    @property
    def hours_capped(self) -> bool:
        """Hourly buckets asked over more than ``MAX_HOURLY_DAYS``: days are drawn instead
        (more bars than a screen has pixels say nothing; the API still serves them)."""
        return self.bucket == "hour" and self.hours > MAX_HOURLY_DAYS * 24

    def query(self, **changes: str | None) -> str:
        """The URL query of these filters (with ``changes``), defaults left out."""
        values = {
            "window": self.window,
            "bucket": self.bucket,
            "tz": self.tz,
            "project": self.project,
            "principal": self.principal,
            "model": self.model,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            **changes,
        }
        defaults = {"window": "24h", "bucket": "auto", "tz": "UTC"}
        kept = {k: v for k, v in values.items() if v and defaults.get(k) != v}
        return f"?{urlencode(kept)}" if kept else ""


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip()[:10])
    except ValueError:
        return None
