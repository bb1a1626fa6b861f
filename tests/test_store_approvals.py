"""Approvals: one pending request per (subject, requester), even under concurrency; audited
transitions; approver ≠ requester; once-grants consumed exactly once; expiry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from gateway_support import journal_url_for
from spendgate.store import (
    Approval,
    ApprovalError,
    ApprovalScope,
    ApprovalState,
    Journal,
    budget_subject,
    schema,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SUBJECT = budget_subject("acme-daily")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(journal_url_for(tmp_path / "approvals.db")) as opened:
        yield opened


def test_subject_names_the_budget() -> None:
    assert SUBJECT == "usage-budget:acme-daily"


def test_create_is_idempotent_per_subject_and_requester(journal: Journal) -> None:
    first, created = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=NOW)
    again, created_again = journal.approvals.create_or_get_pending(
        SUBJECT, "alice", now=NOW + timedelta(minutes=1)
    )
    other, created_other = journal.approvals.create_or_get_pending(SUBJECT, "bob", now=NOW)
    assert (created, created_again, created_other) == (True, False, True)
    assert again == first
    assert other.id != first.id
    assert first.state is ApprovalState.PENDING
    assert first.expires_at == NOW + timedelta(hours=24)
    assert [e.event for e in journal.approvals.events(first.id)] == ["requested"]


def test_another_member_or_window_is_another_request(journal: Journal) -> None:
    def ask(member: str, window: str) -> str:
        approval, _ = journal.approvals.create_or_get_pending(
            SUBJECT, "alice", now=NOW, member=member, window_key=window, project="acme",
            context={"decision_id": "d1", "model": "gpt-4o"},
        )  # fmt: skip
        return approval.id

    today = ask("acme", "2026-03-14")
    assert ask("acme", "2026-03-14") == today
    assert ask("acme", "2026-03-15") != today
    assert ask("globex", "2026-03-14") != today
    stored = journal.approvals.get(today)
    assert stored is not None
    assert (stored.project, stored.member, stored.window_key) == ("acme", "acme", "2026-03-14")
    assert stored.context == {"decision_id": "d1", "model": "gpt-4o"}


def test_concurrent_creates_make_exactly_one_pending_request(tmp_path: Path) -> None:
    url = journal_url_for(tmp_path / "race.db")
    journals = [Journal(url) for _ in range(4)]  # separate pools, like separate workers
    results: list[tuple[Approval, bool]] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def attempt(journal: Journal) -> None:
        start.wait()
        result = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=NOW)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=attempt, args=(journals[i % 4],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16
    assert len({approval.id for approval, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(journals[0].approvals.list_approvals(state=ApprovalState.PENDING)) == 1
    assert len(journals[0].approvals.events(results[0][0].id)) == 1
    for journal in journals:
        journal.close()


def test_the_unique_index_itself_refuses_a_second_pending_row(journal: Journal) -> None:
    row = {
        "subject": SUBJECT,
        "requester": "alice",
        "state": "pending",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
    }
    with journal.engine.begin() as connection:
        connection.execute(schema.approvals.insert().values(id="a1", **row))
    with pytest.raises(IntegrityError), journal.engine.begin() as connection:
        connection.execute(schema.approvals.insert().values(id="a2", **row))
    with journal.engine.begin() as connection:  # non-pending duplicates are history: allowed
        connection.execute(schema.approvals.insert().values(id="a3", **{**row, "state": "denied"}))


def test_approve_once_is_consumed_exactly_once(journal: Journal) -> None:
    pending, _ = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=NOW)
    with pytest.raises(ApprovalError, match="own"):
        journal.approvals.approve(pending.id, "alice", ApprovalScope.ONCE, now=NOW)
    approved = journal.approvals.approve(
        pending.id, "carol", ApprovalScope.ONCE, now=NOW, extra_amount=Decimal("2.50")
    )
    assert approved.state is ApprovalState.APPROVED
    assert (approved.approver, approved.extra_amount) == ("carol", Decimal("2.50"))
    assert journal.approvals.active_grants(now=NOW) == [approved]
    assert journal.approvals.consume(pending.id, now=NOW) is True
    assert journal.approvals.consume(pending.id, now=NOW) is False
    assert journal.approvals.active_grants(now=NOW) == []
    with pytest.raises(ApprovalError, match="consumed"):
        journal.approvals.deny(pending.id, "carol", now=NOW)
    events = journal.approvals.events(pending.id)
    assert [(e.event, e.actor) for e in events] == [
        ("requested", "alice"),
        ("approved", "carol"),
        ("consumed", None),
    ]
    assert events[1].detail == {"scope": "once", "amount": "2.50"}
    # Once decided, a new request can be opened.
    _, created = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=NOW)
    assert created


def test_scopes_need_their_parameters(journal: Journal) -> None:
    no_session, _ = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=NOW)
    with pytest.raises(ApprovalError, match="session"):
        journal.approvals.approve(no_session.id, "carol", ApprovalScope.SESSION, now=NOW)
    with pytest.raises(ApprovalError, match="until"):
        journal.approvals.approve(no_session.id, "carol", ApprovalScope.UNTIL, now=NOW)
    with pytest.raises(ApprovalError, match="positive"):
        journal.approvals.approve(
            no_session.id, "carol", ApprovalScope.ONCE, now=NOW, extra_amount=Decimal(0)
        )
    in_session, _ = journal.approvals.create_or_get_pending(
        SUBJECT, "bob", now=NOW, session_id="s-9"
    )
    approved = journal.approvals.approve(in_session.id, "carol", ApprovalScope.SESSION, now=NOW)
    assert (approved.scope, approved.session_id) == (ApprovalScope.SESSION, "s-9")
    assert journal.approvals.consume(in_session.id) is False  # only 'once' grants are consumed


def test_pending_requests_and_until_grants_expire(journal: Journal) -> None:
    stale, _ = journal.approvals.create_or_get_pending(
        SUBJECT, "alice", now=NOW, ttl=timedelta(minutes=5)
    )
    later = NOW + timedelta(minutes=6)
    with pytest.raises(ApprovalError, match="expired"):
        journal.approvals.approve(stale.id, "carol", ApprovalScope.ONCE, now=later)
    stored = journal.approvals.get(stale.id)
    assert stored is not None
    assert stored.state is ApprovalState.EXPIRED
    fresh, created = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=later)
    assert created
    assert fresh.id != stale.id

    granted = journal.approvals.approve(
        fresh.id, "carol", ApprovalScope.UNTIL, now=later, until=later + timedelta(hours=1)
    )
    assert journal.approvals.active_grants(now=later) == [granted]
    assert journal.approvals.active_grants(now=later + timedelta(hours=2)) == []
    assert journal.approvals.expire_due(now=later + timedelta(hours=2)) == 1
    stored = journal.approvals.get(fresh.id)
    assert stored is not None
    assert stored.state is ApprovalState.EXPIRED
    assert [e.event for e in journal.approvals.events(fresh.id)] == [
        "requested",
        "approved",
        "expired",
    ]


def test_deny_and_listing(journal: Journal) -> None:
    a, _ = journal.approvals.create_or_get_pending(SUBJECT, "alice", now=NOW, reason="demo")
    b, _ = journal.approvals.create_or_get_pending(
        budget_subject("other"), "bob", now=NOW + timedelta(seconds=1)
    )
    denied = journal.approvals.deny(a.id, "carol", now=NOW, reason="not now")
    assert (denied.state, denied.note, denied.decided_at) == (
        ApprovalState.DENIED,
        "not now",
        NOW,
    )
    assert [x.id for x in journal.approvals.list_approvals()] == [b.id, a.id]
    assert [x.id for x in journal.approvals.list_approvals(requester="alice")] == [a.id]
    assert [x.id for x in journal.approvals.list_approvals(subject=SUBJECT)] == [a.id]
    with pytest.raises(ApprovalError, match="no approval"):
        journal.approvals.deny("apr_missing", "carol")
