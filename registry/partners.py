"""Partner organisations in the trust registry: registration, status, expiry.

Status: ``pending`` (registered, not trusted by anyone) -> ``active`` (the registry vouches
for it; tenants may link to it) -> ``suspended`` (reversible) or ``revoked`` (final). A partner
past its ``expires_at`` counts as inactive at once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.errors import Conflict
from tenants import audit
from tenants.models import Partner

STATUSES = ("pending", "active", "suspended", "revoked")
TRANSITIONS = {
    "active": {"pending", "suspended"},
    "suspended": {"active", "pending"},
    "revoked": {"pending", "active", "suspended"},
}
REGISTRY_AUDIT = "_registry"  # the audit chain of registry-wide decisions
PARTNER_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class RegistryError(ValueError):
    """A registry change that cannot be honoured; the message says why. A partner id or issuer
    that is taken, or a second active trust link to one issuer, is a ``Conflict`` (409)."""


def check_issuer(issuer: str, *, allow_http_loopback: bool) -> None:
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (allow_http_loopback and loopback):
        raise RegistryError("issuer must be an https URL")
    if parts.query or parts.fragment or parts.username or not parts.hostname:
        raise RegistryError("issuer must have a host and no query, fragment or userinfo")


def is_active(partner: Partner, now: float) -> bool:
    return partner.status == "active" and (partner.expires_at is None or partner.expires_at > now)


def _check_jwks(jwks: dict[str, Any]) -> None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise RegistryError("jwks must hold a non-empty keys list")
    if any("d" in k or k.get("kty") == "oct" for k in keys):
        raise RegistryError("jwks must hold public asymmetric keys only")


async def register(
    session: AsyncSession, *, issuer: str, display_name: str, now: float,
    partner_id: str | None = None, jwks_uri: str | None = None,
    jwks: dict[str, Any] | None = None, contact: str = "", metadata: dict[str, Any] | None = None,
    expires_at: float | None = None, allow_http_loopback: bool = False,
) -> Partner:
    check_issuer(issuer, allow_http_loopback=allow_http_loopback)
    if (jwks_uri is None) == (jwks is None):
        raise RegistryError("give exactly one of jwks_uri and jwks")
    if jwks_uri is not None:
        check_issuer(jwks_uri, allow_http_loopback=allow_http_loopback)
    if jwks is not None:
        _check_jwks(jwks)
    if expires_at is not None and expires_at <= now:
        raise RegistryError("expires_at must be in the future")
    partner_id = partner_id or secrets.token_hex(6)
    if not PARTNER_ID.match(partner_id):
        raise RegistryError("partner id: 1-64 of a-z, 0-9 and '-'")
    taken = await session.execute(
        select(Partner.id).where((Partner.id == partner_id) | (Partner.issuer == issuer))
    )
    if taken.first() is not None:
        raise Conflict("a partner with this id or issuer exists")
    partner = Partner(
        id=partner_id, issuer=issuer, display_name=display_name, contact=contact,
        jwks_uri=jwks_uri, jwks=jwks, metadata_=metadata or {}, status="pending",
        expires_at=expires_at, created_at=now, updated_at=now,
    )
    session.add(partner)
    await session.flush()
    await audit.record(session, REGISTRY_AUDIT, [audit.Event(
        "partner.registered", "changed", detail={"partner": partner_id, "issuer": issuer})], now)
    return partner


async def set_status(session: AsyncSession, partner_id: str, status: str, now: float) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise LookupError(partner_id)
    if status not in TRANSITIONS or partner.status not in TRANSITIONS[status]:
        raise RegistryError(f"cannot move a {partner.status} partner to {status}")
    partner.status, partner.updated_at = status, now
    outcome = "revoked" if status in ("suspended", "revoked") else "granted"
    await audit.record(session, REGISTRY_AUDIT, [audit.Event(
        f"partner.{status}", outcome, detail={"partner": partner_id, "issuer": partner.issuer})],
        now)
    return partner


CHANGEABLE = ("display_name", "contact", "jwks_uri", "jwks", "metadata", "expires_at")


async def update(session: AsyncSession, partner_id: str, changes: dict[str, Any], *,
                 now: float, allow_http_loopback: bool = False) -> Partner:
    """Change what is given of ``CHANGEABLE`` (the issuer and id are the partner's identity:
    register a new partner for a new issuer). Exactly one of ``jwks_uri`` and ``jwks`` must
    hold afterwards; a revoked partner stays as it is."""
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise LookupError(partner_id)
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise RegistryError(f"cannot change {', '.join(sorted(unknown))}")
    if partner.status == "revoked":
        raise RegistryError("a revoked partner cannot be changed")
    jwks_uri = changes.get("jwks_uri", partner.jwks_uri)
    jwks = changes.get("jwks", partner.jwks)
    if (jwks_uri is None) == (jwks is None):
        raise RegistryError("exactly one of jwks_uri and jwks must remain")
    if "jwks_uri" in changes and jwks_uri is not None:
        check_issuer(jwks_uri, allow_http_loopback=allow_http_loopback)
    if "jwks" in changes and jwks is not None:
        _check_jwks(jwks)
    expires_at = changes.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise RegistryError("expires_at must be in the future")
    for name, value in changes.items():
        if name == "metadata":
            partner.metadata_ = dict(value or {})
        else:
            setattr(partner, name, value)
    partner.updated_at = now
    await audit.record(session, REGISTRY_AUDIT, [audit.Event(
        "partner.updated", "changed",
        detail={"partner": partner_id, "issuer": partner.issuer, "changed": sorted(changes)})],
        now)
    return partner


async def list_partners(session: AsyncSession) -> Sequence[Partner]:
    return (await session.execute(select(Partner).order_by(Partner.id))).scalars().all()


async def by_issuer(session: AsyncSession, issuer: str) -> Partner | None:
    return (
        await session.execute(select(Partner).where(Partner.issuer == issuer))
    ).scalar_one_or_none()
