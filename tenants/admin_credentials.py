"""The admin bearer token, rotated with an overlap on every replica at once.

Until its first rotation the token is the one the deployment was initialised with (the admin
token file or ``TESSERA_ADMIN_TOKEN``), compared by each process with its own setting. A
rotation stores SHA-256 hashes in the ``deployment`` table (the token is 256 bits of
randomness; nothing to stretch): ``admin_token:current``, and ``admin_token:previous`` valid
until ``admin_token:previous_until``. From then on every admin request is checked against the
stored hashes (one small read), so a rotation counts on every replica from the next request,
and the previous token works until its overlap ends. The new token is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenants import audit
from tenants.models import DeploymentFact

CURRENT, PREVIOUS, UNTIL = "admin_token:current", "admin_token:previous", "admin_token:until"
MAX_OVERLAP = 7 * 86_400
AUDIT_CHAIN = "_deployment"  # deployment-wide decisions (admin credentials, master key)
_F = DeploymentFact.__table__


def digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


async def stored(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(_F.c.name, _F.c.value).where(
            _F.c.name.in_([CURRENT, PREVIOUS, UNTIL])))
        return {n: v for n, v in rows}


async def accepts(sessions: async_sessionmaker[AsyncSession], configured: str, token: str,
                  now: float) -> bool:
    """Whether ``token`` is the admin token now (``configured``: the process's setting,
    which counts only while no rotation has been stored)."""
    facts = await stored(sessions)
    if CURRENT not in facts:
        return bool(configured) and hmac.compare_digest(token.encode(), configured.encode())
    given = digest(token)
    if hmac.compare_digest(given, facts[CURRENT]):
        return True
    previous, until = facts.get(PREVIOUS), facts.get(UNTIL)
    return bool(previous and until and now < float(until)
                and hmac.compare_digest(given, previous))


async def rotate(sessions: async_sessionmaker[AsyncSession], configured: str, *, now: float,
                 overlap_seconds: int) -> tuple[str, float | None]:
    """A new admin token (returned this once) and until when the current one still works."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP:
        raise ValueError(f"overlap_seconds: 0..{MAX_OVERLAP}")
    token = secrets.token_urlsafe(32)
    until = now + overlap_seconds if overlap_seconds else None
    async with sessions() as session, session.begin():
        facts = {n: v for n, v in await session.execute(select(_F.c.name, _F.c.value).where(
            _F.c.name.in_([CURRENT, PREVIOUS, UNTIL])))}
        previous = facts.get(CURRENT) or (digest(configured) if configured else None)
        rows = {CURRENT: digest(token)}
        if until is not None and previous:
            rows.update({PREVIOUS: previous, UNTIL: repr(until)})
        await session.execute(delete(_F).where(_F.c.name.in_([CURRENT, PREVIOUS, UNTIL])))
        for name, value in rows.items():
            await session.execute(_F.insert().values(name=name, value=value, created_at=now))
        await audit.record(session, AUDIT_CHAIN, [audit.Event(
            "admin_token.rotated", "changed", detail={"overlap_seconds": overlap_seconds,
                                                      "previous_valid_until": until})], now)
    return token, until
