"""Invitation codes a registry admin issues so that a partner can register itself.

A code is ``tri_<id>_<secret>``: shown once when issued, stored as SHA-256 only (the secret is
32 random bytes, so a plain hash is enough), single-use, expiring, revocable, and optionally
bound to the one entity id it may register. ``check`` (before any network work) and ``claim``
(in the transaction that records the partner: an UPDATE that succeeds once) both refuse with
the same words, so a caller learns nothing about which rule failed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from registry.partners import REGISTRY_AUDIT, RegistryError
from tenants import audit
from tenants.models import RegistryInvitation

PREFIX = "tri_"
DEFAULT_LIFETIME = 7 * 86_400
MAX_LIFETIME = 30 * 86_400
REFUSAL = "the invitation code is unknown, used, revoked or expired"


class InvitationRefused(RegistryError):
    """The code cannot be used (one message for every reason)."""

    def __init__(self) -> None:
        super().__init__(REFUSAL)


@dataclass(frozen=True)
class Issued:
    row: RegistryInvitation
    code: str  # shown this once


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


def state(row: RegistryInvitation, now: float) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.used_at is not None:
        return "used"
    return "expired" if row.expires_at <= now else "open"


async def issue(session: AsyncSession, *, now: float, lifetime: int = DEFAULT_LIFETIME,
                entity_id: str | None = None, note: str = "") -> Issued:
    if not 60 <= lifetime <= MAX_LIFETIME:
        raise RegistryError(f"an invitation lives 60 to {MAX_LIFETIME} seconds")
    invitation_id = secrets.token_hex(8)
    code = f"{PREFIX}{invitation_id}_{secrets.token_urlsafe(32)}"
    row = RegistryInvitation(id=invitation_id, code_hash=_hash(code), entity_id=entity_id,
                             note=note, created_at=now, expires_at=now + lifetime)
    session.add(row)
    await session.flush()
    await audit.record(session, REGISTRY_AUDIT, [audit.Event(
        "invitation.issued", "changed", detail={
            "invitation": invitation_id, "entity_id": entity_id, "expires_at": row.expires_at})],
        now)
    return Issued(row, code)


def _open(code: str, now: float) -> object:
    return (RegistryInvitation.code_hash == _hash(code)) & RegistryInvitation.used_at.is_(None) \
        & RegistryInvitation.revoked_at.is_(None) & (RegistryInvitation.expires_at > now)


async def check(session: AsyncSession, code: str, *, entity_id: str, now: float) -> None:
    """Refuse a code that could not be claimed now for ``entity_id`` (reads only)."""
    if not isinstance(code, str) or not code.startswith(PREFIX) or len(code) > 128:
        raise InvitationRefused()
    row = (await session.execute(select(RegistryInvitation).where(_open(code, now)))
           ).scalar_one_or_none()  # type: ignore[arg-type]
    if row is None or (row.entity_id is not None and row.entity_id != entity_id):
        raise InvitationRefused()


async def claim(session: AsyncSession, code: str, *, entity_id: str, partner_id: str,
                now: float) -> str:
    """Use the code for ``partner_id`` (once); the invitation's id."""
    await check(session, code, entity_id=entity_id, now=now)
    done = await session.execute(
        update(RegistryInvitation).where(_open(code, now))  # type: ignore[arg-type]
        .values(used_at=now, partner_id=partner_id)
        .returning(RegistryInvitation.id)
        .execution_options(synchronize_session=False))
    used = done.scalar_one_or_none()
    if used is None:  # another request claimed it between check and update
        raise InvitationRefused()
    return str(used)


async def revoke(session: AsyncSession, invitation_id: str, now: float) -> RegistryInvitation:
    row = await session.get(RegistryInvitation, invitation_id)
    if row is None:
        raise LookupError(invitation_id)
    if state(row, now) != "open":
        raise RegistryError(f"the invitation is {state(row, now)} already")
    row.revoked_at = now
    await audit.record(session, REGISTRY_AUDIT, [audit.Event(
        "invitation.revoked", "revoked", detail={"invitation": invitation_id})], now)
    return row


async def list_all(session: AsyncSession) -> Sequence[RegistryInvitation]:
    return (await session.execute(
        select(RegistryInvitation).order_by(RegistryInvitation.created_at))).scalars().all()
