"""The approved budget overrides in force, held in memory for the hot path.

The proxy asks ``for_request`` on every request (one dict lookup when the requester has none);
admin routes, running in worker threads, add and remove grants as approvals are decided,
consumed or expire. Each change swaps in a new mapping under a lock (copy on write), so a
reader sees the grants before or after a change, never half of one. ``take`` hands a ``once``
grant to exactly one caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

from spendgate.domain.approvals import Grant
from spendgate.domain.budgets import OverrideGrant

__all__ = ["GrantBook"]

_NONE: Mapping[str, OverrideGrant] = MappingProxyType({})


class GrantBook:
    def __init__(self, grants: Iterable[Grant] = ()) -> None:
        self._lock = threading.Lock()
        self._by_requester: dict[str, tuple[Grant, ...]] = {}
        self.replace(grants)

    def replace(self, grants: Iterable[Grant]) -> None:
        """Hold exactly ``grants`` (at start: the active grants the database holds)."""
        by_requester: dict[str, tuple[Grant, ...]] = {}
        for grant in grants:
            by_requester[grant.requester] = (*by_requester.get(grant.requester, ()), grant)
        with self._lock:
            self._by_requester = by_requester

    def put(self, grant: Grant) -> None:
        with self._lock:
            current = self._by_requester.get(grant.requester, ())
            kept = tuple(g for g in current if g.approval_id != grant.approval_id)
            self._by_requester = {**self._by_requester, grant.requester: (*kept, grant)}

    def take(self, approval_id: str) -> bool:
        """Remove a grant; True for the one caller that removed it (a ``once`` grant is
        used by exactly one request, however many race for it)."""
        with self._lock:
            for requester, grants in self._by_requester.items():
                kept = tuple(g for g in grants if g.approval_id != approval_id)
                if len(kept) != len(grants):
                    updated = dict(self._by_requester)
                    if kept:
                        updated[requester] = kept
                    else:
                        del updated[requester]
                    self._by_requester = updated
                    return True
        return False

    def get(self, approval_id: str) -> Grant | None:
        for grants in self._by_requester.values():
            for grant in grants:
                if grant.approval_id == approval_id:
                    return grant
        return None

    def ids(self) -> set[str]:
        return {g.approval_id for grants in self._by_requester.values() for g in grants}

    def __len__(self) -> int:
        return sum(len(grants) for grants in self._by_requester.values())

    def for_request(
        self, requester: str, session: str | None, now: datetime
    ) -> Mapping[str, OverrideGrant]:
        """The overrides covering a request of ``requester`` (by policy id)."""
        grants = self._by_requester.get(requester)
        if not grants:
            return _NONE
        found: dict[str, OverrideGrant] = {}
        for grant in grants:
            if grant.covers(session, now):
                # Several grants on one policy: the one allowing the most wins.
                current = found.get(grant.policy_id)
                if current is None or _larger(grant, current):
                    found[grant.policy_id] = grant.override()
        return found


def _larger(grant: Grant, current: OverrideGrant) -> bool:
    if current.extra is None:
        return False
    return grant.extra is None or grant.extra > current.extra
