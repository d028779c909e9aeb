"""Backchannel authentication requests (OpenID CIBA Core 1.0) and the human approvals of a
managed connection's ``approve`` scopes: one ``CibaRequest`` row each.

The ``auth_req_id`` the client holds is 256 random bits; the row is keyed by its SHA-256
(``handle``), so a database read never yields a usable id. ``status`` moves
``pending -> approved | denied``, then ``approved -> redeemed`` (one redemption); a pending
request past ``expires_at`` is expired whatever its row says (``expire`` marks it so).
``approver`` is the user asked (their user id) or ``group:<name>`` (any active user of that
group may decide).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenants.models import CibaRequest, User
from tenants.pending import handle_of
from tenants.scope import TenantScope

SLOW_DOWN_STEP: Final = 5  # CIBA §11: the interval grows by 5 s after each slow_down
GROUP: Final = "group:"


def new_auth_req_id() -> str:
    return secrets.token_urlsafe(32)


def effective_status(row: CibaRequest, now: float) -> str:
    if row.status == "pending" and row.expires_at <= now:
        return "expired"
    return row.status


async def create(
    scope: TenantScope, *, client_id: str, user_id: str, approver: str | None,
    scope_: Sequence[str], details: Sequence[dict[str, Any]], binding_message: str | None,
    delivery_mode: str, notification_token_sealed: str | None, context: dict[str, Any],
    interval: int, now: float, lifetime: int, auth_req_id: str | None = None,
) -> tuple[str, CibaRequest]:
    """A new pending request; returns the ``auth_req_id`` (shown once) and the row."""
    value = auth_req_id or new_auth_req_id()
    row = scope.add(CibaRequest(
        handle=handle_of(value), client_id=client_id, user_id=user_id,
        approver=approver or user_id, scope=list(scope_), authorization_details=list(details),
        binding_message=binding_message, delivery_mode=delivery_mode,
        notification_token_sealed=notification_token_sealed, context=dict(context),
        status="pending", interval=interval, last_polled_at=None, created_at=now,
        expires_at=now + lifetime))
    await scope.session.flush()
    return value, row


async def get(scope: TenantScope, auth_req_id: str | None) -> CibaRequest | None:
    if not auth_req_id or len(auth_req_id) > 200:
        return None
    return await scope.get(CibaRequest, handle_of(auth_req_id))


async def by_handle(scope: TenantScope, handle: str) -> CibaRequest | None:
    if not handle or len(handle) > 64:
        return None
    return await scope.get(CibaRequest, handle)


def polled(row: CibaRequest, now: float) -> bool:
    """Record a poll; False when it came sooner than ``interval`` after the previous one (the
    interval then grows by ``SLOW_DOWN_STEP``)."""
    previous, row.last_polled_at = row.last_polled_at, now
    if previous is not None and now - previous < row.interval:
        row.interval = row.interval + SLOW_DOWN_STEP
        return False
    return True


def may_decide(row: CibaRequest, user: User) -> bool:
    """The request is addressed to ``user``: by id, or through a group they belong to."""
    approver = row.approver or row.user_id
    if approver.startswith(GROUP):
        return approver[len(GROUP):] in (user.groups or [])
    return approver == user.id


async def decide(
    scope: TenantScope, row: CibaRequest, *, approve: bool, by: str, now: float,
) -> bool:
    """Approve or deny a pending, unexpired request, once (a concurrent second decision
    finds it decided). True when this call decided it."""
    result = await scope.session.execute(
        update(CibaRequest)
        .where(CibaRequest.tenant_id == scope.tenant_id, CibaRequest.handle == row.handle,
               CibaRequest.status == "pending", CibaRequest.expires_at > now)
        .values(status="approved" if approve else "denied", decided_by=by, decided_at=now)
        .execution_options(synchronize_session=False))
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await scope.session.refresh(row)
    return True


async def redeem(scope: TenantScope, row: CibaRequest) -> bool:
    """``approved -> redeemed``, once."""
    result = await scope.session.execute(
        update(CibaRequest)
        .where(CibaRequest.tenant_id == scope.tenant_id, CibaRequest.handle == row.handle,
               CibaRequest.status == "approved")
        .values(status="redeemed").execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def pending_for(scope: TenantScope, user: User, now: float) -> list[CibaRequest]:
    """The live requests ``user`` may decide, oldest first."""
    approvers = [user.id, *(GROUP + g for g in (user.groups or []))]
    rows = (await scope.session.execute(
        select(CibaRequest).where(
            CibaRequest.status == "pending", CibaRequest.expires_at > now,
            or_(CibaRequest.approver.in_(approvers),
                (CibaRequest.approver.is_(None)) & (CibaRequest.user_id == user.id)))
        .order_by(CibaRequest.created_at))).scalars().all()
    return list(rows)


async def expire(scope: TenantScope, now: float) -> int:
    """Mark every pending request past its expiry ``expired``."""
    result = await scope.session.execute(
        update(CibaRequest)
        .where(CibaRequest.tenant_id == scope.tenant_id, CibaRequest.status == "pending",
               CibaRequest.expires_at <= now)
        .values(status="expired").execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def expire_all(sessions: async_sessionmaker[AsyncSession], now: float) -> int:
    """``expire`` for every tenant (the background schedule)."""
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(CibaRequest)
            .where(CibaRequest.status == "pending", CibaRequest.expires_at <= now)
            .values(status="expired").execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def find_user(scope: TenantScope, hint: str) -> User | None:
    """An active user of the tenant by ``sub`` (user id) or e-mail address (case-insensitive,
    only when it names exactly one user)."""
    if not hint or len(hint) > 320:
        return None
    user = await scope.get(User, hint)
    if user is None and "@" in hint:
        matches = (await scope.session.execute(
            select(User).where(func.lower(User.email) == hint.lower()).limit(2)
        )).scalars().all()
        user = matches[0] if len(matches) == 1 else None
    return user if user is not None and user.status == "active" else None
