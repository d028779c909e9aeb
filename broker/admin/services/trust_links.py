"""A tenant's trust links: add, list, read, change (directions, scope ceiling, expiry),
suspend/resume/revoke, delete (= revoke: final). Read on every decision: a change counts at
once on every replica."""

from __future__ import annotations

from typing import Any

from adapters.errors import NotFound
from broker.admin.models.registry import (
    DirectionsPut,
    TrustLinkCreate,
    TrustLinkOut,
    TrustLinkPatch,
)
from broker.admin.services.common import existing_tenant, refused
from broker.runtime import Broker
from registry import partners, trust
from tenants.models import TrustLink
from tenants.scope import scoped, tenant_scope


def link_out(link: TrustLink) -> TrustLinkOut:
    return TrustLinkOut(
        id=link.id, tenant=link.tenant_id, issuer=link.issuer, partner=link.partner_id,
        peer_tenant=link.peer_tenant, directions=trust.directions(link),  # type: ignore[arg-type]
        accept=bool(link.accept), send=bool(link.send), scope_ceiling=link.scope_ceiling,
        status=link.status, expires_at=link.expires_at, created_at=int(link.created_at))


def _missing(tenant: str, link_id: str) -> NotFound:
    return NotFound(f"no trust link {link_id!r} in tenant {tenant!r}")


async def add_trust_link(broker: Broker, tenant: str, body: TrustLinkCreate) -> TrustLinkOut:
    """A link in at least one direction: ``accept`` (redeem what the peer issues), ``send``
    (issue ID-JAGs to the peer)."""
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            link = await trust.add_link(
                scope, now=broker.clock.now(), partner_id=body.partner, peer_tenant=body.tenant,
                issuer_of_tenant=broker.issuer(body.tenant) if body.tenant else None,
                scope_ceiling=body.scope_ceiling, expires_at=body.expires_at,
                accept="accept" in body.directions, send="send" in body.directions)
    except partners.RegistryError as exc:
        raise refused(exc) from exc
    return link_out(link)


async def list_trust_links(broker: Broker, tenant: str) -> list[TrustLinkOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [link_out(x) for x in await trust.list_links(scoped(session, tenant))]


async def get_trust_link(broker: Broker, tenant: str, link_id: str) -> TrustLinkOut:
    async with broker.sessions() as session:
        link = await scoped(session, tenant).get(TrustLink, link_id)
    if link is None:
        raise _missing(tenant, link_id)
    return link_out(link)


async def update_trust_link(broker: Broker, tenant: str, link_id: str,
                            body: TrustLinkPatch) -> TrustLinkOut:
    given = body.model_fields_set
    changes: dict[str, Any] = {k: getattr(body, k) for k in ("scope_ceiling", "expires_at")
                               if k in given}
    if "directions" in given and body.directions is not None:
        changes.update(accept="accept" in body.directions, send="send" in body.directions)
    return await _change(broker, tenant, link_id, changes)


async def set_trust_link_directions(broker: Broker, tenant: str, link_id: str,
                                    body: DirectionsPut) -> TrustLinkOut:
    return await _change(broker, tenant, link_id, {"accept": "accept" in body.directions,
                                                   "send": "send" in body.directions})


async def _change(broker: Broker, tenant: str, link_id: str,
                  changes: dict[str, Any]) -> TrustLinkOut:
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            link = await trust.update_link(scope, link_id, broker.clock.now(), **changes)
    except LookupError as exc:
        raise _missing(tenant, link_id) from exc
    except partners.RegistryError as exc:
        raise refused(exc) from exc
    return link_out(link)


async def set_trust_link_status(broker: Broker, tenant: str, link_id: str,
                                status: str) -> TrustLinkOut:
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            link = await trust.set_link_status(scope, link_id, status, broker.clock.now())
    except LookupError as exc:
        raise _missing(tenant, link_id) from exc
    except partners.RegistryError as exc:
        raise refused(exc) from exc
    return link_out(link)
