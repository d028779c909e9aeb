"""Partners of the trust registry (registry-wide; changes go to the ``_registry`` audit chain):
register, list, read, change, activate/suspend/revoke, delete (= revoke: final)."""

from __future__ import annotations

from adapters.errors import NotFound
from broker.admin.models.registry import PartnerCreate, PartnerOut, PartnerPatch
from broker.admin.services.common import refused
from broker.runtime import Broker
from registry import partners
from tenants.models import Partner


def partner_out(partner: Partner) -> PartnerOut:
    return PartnerOut(
        id=partner.id, issuer=partner.issuer, display_name=partner.display_name,
        contact=partner.contact, jwks_uri=partner.jwks_uri, jwks=partner.jwks,
        metadata=partner.metadata_ or {}, status=partner.status, expires_at=partner.expires_at,
        created_at=int(partner.created_at), updated_at=int(partner.updated_at),
        self_registered=partner.federation_jwks is not None)


def _missing(partner_id: str) -> NotFound:
    return NotFound(f"no partner {partner_id!r}")


async def register_partner(broker: Broker, body: PartnerCreate) -> PartnerOut:
    try:
        async with broker.sessions() as session, session.begin():
            partner = await partners.register(
                session, now=broker.clock.now(),
                allow_http_loopback=broker.settings.allow_http_loopback,
                issuer=body.issuer, display_name=body.display_name, partner_id=body.id,
                jwks_uri=body.jwks_uri, jwks=body.jwks.as_dict() if body.jwks else None,
                contact=body.contact, metadata=dict(body.metadata),
                expires_at=body.expires_at)
    except partners.RegistryError as exc:
        raise refused(exc) from exc
    return partner_out(partner)


async def list_partners(broker: Broker) -> list[PartnerOut]:
    async with broker.sessions() as session:
        return [partner_out(p) for p in await partners.list_partners(session)]


async def get_partner(broker: Broker, partner_id: str) -> PartnerOut:
    async with broker.sessions() as session:
        partner = await session.get(Partner, partner_id)
    if partner is None:
        raise _missing(partner_id)
    return partner_out(partner)


async def update_partner(broker: Broker, partner_id: str, body: PartnerPatch) -> PartnerOut:
    try:
        async with broker.sessions() as session, session.begin():
            before = await session.get(Partner, partner_id)
            old_uri = before.jwks_uri if before is not None else None
            partner = await partners.update(
                session, partner_id, body.changes(), now=broker.clock.now(),
                allow_http_loopback=broker.settings.allow_http_loopback)
    except LookupError as exc:
        raise _missing(partner_id) from exc
    except partners.RegistryError as exc:
        raise refused(exc) from exc
    if old_uri:
        broker.remote_keys.forget(old_uri)  # keys come from the new source from now on
    return partner_out(partner)


async def set_partner_status(broker: Broker, partner_id: str, status: str) -> PartnerOut:
    try:
        async with broker.sessions() as session, session.begin():
            partner = await partners.set_status(session, partner_id, status, broker.clock.now())
    except LookupError as exc:
        raise _missing(partner_id) from exc
    except partners.RegistryError as exc:
        raise refused(exc) from exc
    if partner.jwks_uri:
        broker.remote_keys.forget(partner.jwks_uri)
    return partner_out(partner)
