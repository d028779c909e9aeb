"""Short-lived one-use handles (PAR request URIs, authorization requests waiting for a login,
upstream login states, outstanding SAML AuthnRequests, authorization codes), stored hashed.

``take`` is one atomic UPDATE: of two concurrent takers exactly one gets the row. A taken code
stays until it expires, so that a second use is recognised (``take_code``) and can revoke what
the first use issued (RFC 9700 §4.4, OAuth 2.1 §4.1.3).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenants.models import PendingRequest
from tenants.scope import TenantScope

_P = PendingRequest


def new_value() -> str:
    """256 bits from the OS random source, URL-safe."""
    return secrets.token_urlsafe(32)


def handle_of(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def put(
    scope: TenantScope, kind: str, value: str, *, payload: dict[str, Any],
    expires_at: float, client_id: str | None = None,
) -> None:
    scope.add(PendingRequest(handle=handle_of(value), kind=kind, client_id=client_id,
                             payload=payload, expires_at=expires_at))
    await scope.session.flush()


async def peek(scope: TenantScope, kind: str, value: str, now: float) -> PendingRequest | None:
    """The live (unconsumed, unexpired) handle, without taking it."""
    row = await scope.get(PendingRequest, handle_of(value))
    if row is None or row.kind != kind or row.consumed_at is not None or row.expires_at <= now:
        return None
    return row


async def take(scope: TenantScope, kind: str, value: str, now: float) -> PendingRequest | None:
    """Consume the handle; None when unknown, of another kind, expired or already taken."""
    handle = handle_of(value)
    result = await scope.session.execute(
        update(_P).where(_P.tenant_id == scope.tenant_id, _P.handle == handle, _P.kind == kind,
                         _P.consumed_at.is_(None), _P.expires_at > now)
        .values(consumed_at=now).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return (await scope.session.execute(select(_P).where(
        _P.tenant_id == scope.tenant_id, _P.handle == handle))).scalar_one()


async def take_code(
    scope: TenantScope, value: str, now: float
) -> tuple[PendingRequest | None, PendingRequest | None]:
    """(the code's row if this is its first use, the row if it was used before)."""
    row = await take(scope, "code", value, now)
    if row is not None:
        return row, None
    used = await scope.get(PendingRequest, handle_of(value))
    if used is not None and used.kind == "code" and used.consumed_at is not None:
        return None, used
    return None, None


async def purge_expired(sessions: async_sessionmaker[AsyncSession], now: float) -> int:
    async with sessions() as session, session.begin():
        result = await session.execute(delete(_P).where(_P.expires_at <= now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
