"""A browser's session at a tenant after an upstream login; the cookie carries a random value
whose hash is the row's key, so a database read never yields a usable cookie."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import update

from tenants.models import LoginSession, User
from tenants.pending import handle_of
from tenants.scope import TenantScope


async def start(
    scope: TenantScope, *, user_id: str, upstream: str, auth: dict[str, Any], now: float,
    lifetime: int,
) -> tuple[str, LoginSession]:
    value = secrets.token_urlsafe(32)
    row = scope.add(LoginSession(handle=handle_of(value), sid=secrets.token_urlsafe(16),
                                 user_id=user_id, upstream=upstream, auth=auth, created_at=now,
                                 expires_at=now + lifetime))
    await scope.session.flush()
    return value, row


async def current(
    scope: TenantScope, value: str | None, now: float
) -> tuple[LoginSession, User] | None:
    """The live session and its active user, or None."""
    if not value or len(value) > 100:
        return None
    row = await scope.get(LoginSession, handle_of(value))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    user = await scope.get(User, row.user_id)
    if user is None or user.status != "active":
        return None
    return row, user


async def end(scope: TenantScope, *, now: float, value: str | None = None,
              sid: str | None = None) -> int:
    """End the session named by its cookie value or its public ``sid``."""
    S = LoginSession
    where = [S.tenant_id == scope.tenant_id, S.ended_at.is_(None)]
    if value is not None:
        where.append(S.handle == handle_of(value))
    elif sid is not None:
        where.append(S.sid == sid)
    else:
        return 0
    result = await scope.session.execute(
        update(S).where(*where).values(ended_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
