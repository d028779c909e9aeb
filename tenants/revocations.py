"""Revoked access tokens: a row per revoked ``jti`` until the token would have expired anyway.

Access tokens are self-contained JWTs and are not stored; revoking one records its ``jti``.
Every tessera-side check reads this table, so a revocation counts at once on every replica.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenants import audit
from tenants.models import RevokedToken


async def revoke(
    session: AsyncSession, tenant_id: str, jti: str, *, expires_at: float, now: float,
    client_id: str | None, subject: str | None, reason: str,
) -> None:
    """Record the revocation and its audit event in the caller's transaction."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(RevokedToken)
        .values(tenant_id=tenant_id, jti=jti, expires_at=expires_at, revoked_at=now,
                client_id=client_id, reason=reason)
        .on_conflict_do_nothing()
    )
    await audit.record(session, tenant_id, [audit.Event(
        "token.revoked", "revoked", client_id, subject, {"jti": jti, "reason": reason})], now)


async def purge_expired(sessions: async_sessionmaker[AsyncSession], now: float) -> int:
    """Forget revocations of tokens that have expired: they fail every check by themselves."""
    async with sessions() as session, session.begin():
        result = await session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
        return int(result.rowcount or 0)
