"""Trust links: tenant T's trust in a peer issuer (an active partner, or tenant U of this
broker), until an optional expiry, with a **direction**:

* ``accept``: T redeems what the peer issues (ID-JAGs at the jwt-bearer grant, a partner's SAML
  assertions), within the link's scope ceiling; the peer's users stay the peer's
  (``adapters.subjects``);
* ``send``: T issues ID-JAGs whose audience is the peer (its users, to the peer's AS).

The two are separate permissions: trusting a peer's assertions does not let T send it
identity, and sending identity to a peer does not make T accept the peer's tokens. Links are
read from the database on every decision, so suspending or revoking one counts at once on
every replica."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from adapters.errors import Conflict
from registry import partners
from registry.partners import RegistryError
from tenants import audit
from tenants.hotpath import HotPath
from tenants.models import Partner, Tenant, TrustLink
from tenants.scope import TenantScope

LINK_STATUSES = ("active", "suspended", "revoked")
DIRECTIONS = ("accept", "send")


@dataclass(frozen=True)
class Peer:
    """What a live trust link tells a decision: who, where its keys are, the ceiling."""

    issuer: str
    ceiling: frozenset[str] | None
    peer_tenant: str | None  # a tenant of this broker: keys come from our key service
    jwks_uri: str | None
    jwks: dict[str, object] | None
    accept: bool = False
    send: bool = False


async def add_link(
    scope: TenantScope, *, now: float, issuer_of_tenant: str | None = None,
    peer_tenant: str | None = None, partner_id: str | None = None,
    scope_ceiling: Sequence[str] | None = None, expires_at: float | None = None,
    accept: bool = False, send: bool = False,
) -> TrustLink:
    """Link to exactly one of: a partner (by id) or another tenant (by name), in at least one
    direction (``accept``, ``send``)."""
    if (peer_tenant is None) == (partner_id is None):
        raise RegistryError("name exactly one of partner and tenant")
    if not (accept or send):
        raise RegistryError("name the direction: accept (redeem what the peer issues), send "
                            "(issue ID-JAGs to the peer), or both")
    session = scope.session
    if peer_tenant is not None:
        if peer_tenant == scope.tenant_id:
            raise RegistryError("a tenant does not need a trust link to itself")
        tenant = await session.get(Tenant, peer_tenant)
        if tenant is None:
            raise RegistryError(f"no tenant {peer_tenant!r}")
        assert issuer_of_tenant is not None
        issuer = issuer_of_tenant
    else:
        partner = await session.get(Partner, partner_id)
        if partner is None:
            raise RegistryError(f"no partner {partner_id!r}")
        if not partners.is_active(partner, now):
            raise RegistryError("the partner is not active in the registry")
        issuer = partner.issuer
    if expires_at is not None and expires_at <= now:
        raise RegistryError("expires_at must be in the future")
    if scope_ceiling is not None and any(not s or " " in s for s in scope_ceiling):
        raise RegistryError("scope ceiling: scope tokens without spaces")
    existing = await session.execute(
        select(TrustLink.id).where(TrustLink.issuer == issuer, TrustLink.status == "active")
    )
    if existing.first() is not None:
        raise Conflict("an active trust link to this issuer exists")
    link = scope.add(TrustLink(
        id=secrets.token_hex(6), issuer=issuer, partner_id=partner_id, peer_tenant=peer_tenant,
        scope_ceiling=list(dict.fromkeys(scope_ceiling)) if scope_ceiling is not None else None,
        accept=accept, send=send, status="active", expires_at=expires_at, created_at=now,
    ))
    await session.flush()
    await audit.record(session, scope.tenant_id, [audit.Event(
        "trust_link.created", "granted",
        detail={"link": link.id, "issuer": issuer, "ceiling": link.scope_ceiling,
                "directions": directions(link)})], now)
    return link


def directions(link: TrustLink) -> list[str]:
    return [d for d, on in (("accept", link.accept), ("send", link.send)) if on]


async def set_directions(
    scope: TenantScope, link_id: str, now: float, *, accept: bool | None = None,
    send: bool | None = None,
) -> TrustLink:
    """Change which way identity may flow over a link (at least one direction stays)."""
    link = await scope.get(TrustLink, link_id)
    if link is None:
        raise LookupError(link_id)
    if link.status == "revoked":
        raise RegistryError("a revoked link cannot be changed")
    new_accept = link.accept if accept is None else accept
    new_send = link.send if send is None else send
    if not (new_accept or new_send):
        raise RegistryError("a link needs at least one direction; revoke it instead")
    before = directions(link)
    link.accept, link.send = new_accept, new_send
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "trust_link.direction_changed", "granted",
        detail={"link": link_id, "issuer": link.issuer, "from": before,
                "to": directions(link)})], now)
    return link


_UNSET: object = object()


async def update_link(
    scope: TenantScope, link_id: str, now: float, *, accept: bool | None = None,
    send: bool | None = None, scope_ceiling: object = _UNSET, expires_at: object = _UNSET,
) -> TrustLink:
    """Change a live link's directions, scope ceiling (None: no ceiling) or expiry (None:
    none); a revoked link stays as it is."""
    link = await scope.get(TrustLink, link_id)
    if link is None:
        raise LookupError(link_id)
    if link.status == "revoked":
        raise RegistryError("a revoked link cannot be changed")
    detail: dict[str, object] = {"link": link_id, "issuer": link.issuer}
    if accept is not None or send is not None:
        await set_directions(scope, link_id, now, accept=accept, send=send)
    if scope_ceiling is not _UNSET:
        if scope_ceiling is not None and (not isinstance(scope_ceiling, list | tuple) or any(
                not isinstance(s, str) or not s or " " in s for s in scope_ceiling)):
            raise RegistryError("scope ceiling: scope tokens without spaces")
        link.scope_ceiling = detail["ceiling"] = (
            None if scope_ceiling is None else list(dict.fromkeys(scope_ceiling)))
    if expires_at is not _UNSET:
        if expires_at is not None and (not isinstance(expires_at, int | float)
                                       or expires_at <= now):
            raise RegistryError("expires_at must be in the future")
        link.expires_at = detail["expires_at"] = expires_at  # type: ignore[assignment]
    if len(detail) > 2:
        await audit.record(scope.session, scope.tenant_id, [audit.Event(
            "trust_link.updated", "granted", detail=detail)], now)
    return link


async def set_link_status(scope: TenantScope, link_id: str, status: str, now: float) -> TrustLink:
    link = await scope.get(TrustLink, link_id)
    if link is None:
        raise LookupError(link_id)
    if status not in LINK_STATUSES or link.status == "revoked":
        raise RegistryError(f"cannot move a {link.status} link to {status}")
    link.status = status
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        f"trust_link.{status}", "revoked" if status != "active" else "granted",
        detail={"link": link_id, "issuer": link.issuer})], now)
    return link


async def list_links(scope: TenantScope) -> Sequence[TrustLink]:
    return (await scope.session.execute(select(TrustLink).order_by(TrustLink.created_at))
            ).scalars().all()


_L, _P, _T = TrustLink.__table__, Partner.__table__, Tenant.__table__
# At most one active link per (tenant, issuer): ``add_link`` refuses a second one.
LIVE_PEER = (
    select(_L.c.expires_at, _L.c.scope_ceiling, _L.c.peer_tenant, _L.c.accept, _L.c.send,
           _P.c.status.label("partner_status"), _P.c.expires_at.label("partner_expires_at"),
           _P.c.jwks_uri, _P.c.jwks, _T.c.status.label("tenant_status"))
    .select_from(_L.outerjoin(_P, _P.c.id == _L.c.partner_id)
                 .outerjoin(_T, _T.c.id == _L.c.peer_tenant))
    .where(_L.c.tenant_id == bindparam("tenant_id"), _L.c.issuer == bindparam("issuer"),
           _L.c.status == "active")
    .limit(1)
)


async def live_peer(hot: HotPath, tenant_id: str, issuer: str, now: float, *,
                    direction: str) -> Peer | None:
    """The peer if tenant ``tenant_id`` has a live link to ``issuer`` in ``direction``
    (``accept`` or ``send``) right now: link active, unexpired and open that way, and its
    partner (or peer tenant) active and unexpired too. Read on every call: suspending or
    revoking anything on the way counts at once."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    row = await hot.read_one(LIVE_PEER, {"tenant_id": tenant_id, "issuer": issuer})
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if not (row.accept if direction == "accept" else row.send):
        return None
    ceiling = frozenset(row.scope_ceiling) if row.scope_ceiling is not None else None
    flow = {"accept": bool(row.accept), "send": bool(row.send)}
    if row.peer_tenant is not None:
        if row.tenant_status != "active":
            return None
        return Peer(issuer, ceiling, row.peer_tenant, None, None, **flow)
    if row.partner_status != "active" or (
        row.partner_expires_at is not None and row.partner_expires_at <= now
    ):
        return None
    return Peer(issuer, ceiling, None, row.jwks_uri, row.jwks, **flow)
