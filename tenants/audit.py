"""Append-only, hash-chained audit events per tenant.

Each event's ``hash`` is SHA-256 over the previous event's hash and the canonical JSON of the
event itself, so editing, deleting or reordering any stored event breaks every later link.
Appending locks the tenant's chain head with an UPDATE first (a write lock on SQLite, a row
lock on PostgreSQL), so concurrent writers from several replicas keep one linear chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tenants.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# Who is changing things: ``admin`` (the admin API's bearer), ``cli`` (the local command
# line); role-based actors can come later. Set once at the edge that authenticated the caller
# (``acting_as``); every event recorded meanwhile names it as ``detail["actor"]``.
_ACTOR: ContextVar[str | None] = ContextVar("tessera_audit_actor", default=None)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Events made inside (in this task and the tasks it starts) name ``actor``."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def current_actor() -> str | None:
    return _ACTOR.get()


@dataclass(frozen=True)
class Event:
    """One decision worth remembering: who asked for what, and what tessera decided."""

    action: str  # e.g. token.issued, token.refused, token.revoked, key.rotated
    outcome: str  # granted | refused | revoked | changed
    client_id: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def with_actor(events: Sequence[Event]) -> Sequence[Event]:
    """The events naming the current actor (``acting_as``) in their detail, if there is one
    (called where events are handed over, in the caller's task)."""
    actor = _ACTOR.get()
    if actor is None:
        return events
    return [e if "actor" in e.detail else replace(e, detail={**e.detail, "actor": actor})
            for e in events]


def link_hash(prev_hash: str, tenant_id: str, seq: int, at: float, event: Event) -> str:
    body = json.dumps(
        {
            "tenant": tenant_id,
            "seq": seq,
            "at": repr(float(at)),
            "action": event.action,
            "outcome": event.outcome,
            "client_id": event.client_id,
            "subject": event.subject,
            "detail": event.detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(prev_hash.encode() + body.encode()).hexdigest()


_HEADS = AuditHead.__table__
_EVENTS = AuditEvent.__table__
# built once: constructing a statement costs ~200 µs of CPU, several times its execution, and
# every batch of the journal appends (``bindparam`` names differ from the column names)
_ADVANCE_HEAD = (update(_HEADS).where(_HEADS.c.tenant_id == bindparam("b_tenant"))
                 .values(seq=_HEADS.c.seq + bindparam("b_n"))
                 .returning(_HEADS.c.seq, _HEADS.c.hash))
_NEW_HEAD = insert(_HEADS)
_INSERT_EVENTS = insert(_EVENTS)
_SET_HEAD_HASH = (update(_HEADS).where(_HEADS.c.tenant_id == bindparam("b_tenant"))
                  .values(hash=bindparam("b_hash")))


def append(
    db: Connection | Session, tenant_id: str, events: Sequence[Event], at: float
) -> None:
    """Append events to the tenant's chain inside the caller's (synchronous) transaction."""
    if not events:
        return
    n = len(events)
    head = db.execute(_ADVANCE_HEAD, {"b_tenant": tenant_id, "b_n": n}).first()
    if head is None:
        db.execute(_NEW_HEAD, {"tenant_id": tenant_id, "seq": n, "hash": GENESIS})
        last_seq, prev = n, GENESIS
    else:
        last_seq, prev = head
    seq = last_seq - n
    rows = []
    for event in events:
        seq += 1
        digest = link_hash(prev, tenant_id, seq, at, event)
        rows.append(
            {
                "tenant_id": tenant_id,
                "seq": seq,
                "at": at,
                "action": event.action,
                "outcome": event.outcome,
                "client_id": event.client_id,
                "subject": event.subject,
                "detail": event.detail,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    db.execute(_INSERT_EVENTS, rows)
    db.execute(_SET_HEAD_HASH, {"b_tenant": tenant_id, "b_hash": prev})


async def record(
    session: AsyncSession, tenant_id: str, events: Sequence[Event], at: float
) -> None:
    """``append`` from async code, in the session's transaction."""
    stamped = with_actor(events)
    await session.run_sync(lambda sync: append(sync, tenant_id, stamped, at))


@dataclass(frozen=True)
class ChainReport:
    events: int
    first_broken_seq: int | None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken_seq is None


async def iter_events(
    session: AsyncSession, tenant_id: str, batch: int = 1000
) -> AsyncIterator[AuditEvent]:
    after = 0
    while True:
        rows = (
            await session.execute(
                select(AuditEvent)
                .where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).scalars().all()
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq


async def verify_chain(session: AsyncSession, tenant_id: str) -> ChainReport:
    """Walk the chain from genesis; report the first event whose link does not hold."""
    prev, expected_seq, count = GENESIS, 1, 0
    async for row in iter_events(session, tenant_id):
        count += 1
        if row.seq != expected_seq:
            return ChainReport(count, expected_seq, f"event {expected_seq} is missing")
        event = Event(row.action, row.outcome, row.client_id, row.subject, row.detail or {})
        if row.prev_hash != prev:
            return ChainReport(count, row.seq, "prev_hash does not match the previous event")
        if link_hash(prev, tenant_id, row.seq, row.at, event) != row.hash:
            return ChainReport(count, row.seq, "event content does not match its hash")
        prev, expected_seq = row.hash, expected_seq + 1
    head = await session.get(AuditHead, tenant_id)
    if head is not None and (head.seq != count or head.hash != prev):
        return ChainReport(count, count + 1, "chain head does not match the last event")
    return ChainReport(count, None)
