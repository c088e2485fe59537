"""The processed-event ledger (`event_ledger`): work done once per CloudEvent source + id.

Knative brokers deliver at least once. Work that cannot run inside one transaction (maintenance
tasks) claims the event with a lease; a redelivery while the claim is live is told "busy" (the
broker retries), after completion it is told "done", and a claim whose holder died is taken over
when its lease ends. Drafts do not use the ledger: a run's own row is its claim (`drafting.runs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harvey.store import db

log = logging.getLogger("harvey.store.ledger")


@dataclass(frozen=True)
class EventKey:
    source: str
    id: str
    type: str


class Busy(Exception):
    """Another delivery of the same event holds a live claim."""


@dataclass(frozen=True)
class Claim:
    state: str  # "new": do the work; "done": already done (see result); "busy": another delivery holds it
    result: dict[str, Any] | None = None


def claim(event: EventKey, lease_s: float) -> Claim:
    """Take the event for this delivery, unless done or held by a live claim."""
    with db.transaction():
        row = db.one(
            "INSERT INTO event_ledger (source, event_id, type, status, lease_until) "
            "VALUES (:source, :id, :type, 'claimed', now() + make_interval(secs => :lease)) "
            "ON CONFLICT (source, event_id) DO UPDATE SET lease_until = EXCLUDED.lease_until "
            "WHERE event_ledger.status = 'claimed' AND event_ledger.lease_until < now() "
            "RETURNING status",
            source=event.source,
            id=event.id,
            type=event.type,
            lease=float(lease_s),
        )
        if row is not None:
            return Claim("new")
        existing = db.one(
            "SELECT status, result FROM event_ledger WHERE source = :source AND event_id = :id",
            source=event.source,
            id=event.id,
        )
    assert existing is not None
    return Claim("done", existing["result"]) if existing["status"] == "done" else Claim("busy")


def complete(event: EventKey, result: dict[str, Any]) -> None:
    db.query(
        "UPDATE event_ledger SET status = 'done', result = CAST(:result AS jsonb), finished_at = now() "
        "WHERE source = :source AND event_id = :id",
        source=event.source,
        id=event.id,
        result=db.jsonb(result),
    )


def release(event: EventKey) -> None:
    """Give the event back so a redelivery can try again (after a failure)."""
    db.query(
        "DELETE FROM event_ledger WHERE source = :source AND event_id = :id AND status = 'claimed'",
        source=event.source,
        id=event.id,
    )


def once(event: EventKey, lease_s: float, work: Callable[[], dict[str, Any]]) -> bool:
    """Run `work` once however often the event is delivered; True when this delivery is a duplicate
    of finished work. Busy while another delivery holds a live claim; a failure frees the claim."""
    taken = claim(event, lease_s)
    if taken.state == "done":
        return True
    if taken.state == "busy":
        raise Busy("this event is being processed by another delivery")
    try:
        result = work()
    except BaseException:
        try:
            release(event)
        except Exception:  # noqa: BLE001 - the lease frees the claim later; report the first error
            log.warning("could not release the event claim", extra={"event_id": event.id})
        raise
    complete(event, result)
    return False
