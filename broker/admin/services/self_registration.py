"""Registry admins' side of partner self-registration: invitation codes, registering an
entity from its Entity Configuration, approving or rejecting what is pending, refreshing a
partner's keys, and the registry's notification webhook (changes go to the ``_registry``
audit chain)."""

from __future__ import annotations

from adapters.errors import InvalidRequest, NotFound
from broker import partner_registration, registry_notify
from broker.admin.models.self_registration import (
    Decision,
    EntityRegistration,
    InvitationCreate,
    InvitationOut,
    RegistrySettingsOut,
    RegistrySettingsPut,
    SelfRegisteredOut,
)
from broker.admin.services.common import refused, seconds
from broker.admin.services.partners import partner_out
from broker.runtime import Broker
from broker.webhooks import derived_secret
from registry import invitations, partners
from registry.partners import REGISTRY_AUDIT, RegistryError
from registry.remote_keys import RemoteKeyError
from tenants import audit, webhook_secrets
from tenants.models import Partner, RegistryInvitation, RegistrySetting, WebhookSecret
from tenants.scope import scoped


def invitation_out(row: RegistryInvitation, now: float, code: str | None = None
                   ) -> InvitationOut:
    return InvitationOut(
        id=row.id, code=code, entity_id=row.entity_id, note=row.note,
        state=invitations.state(row, now),  # type: ignore[arg-type]
        partner=row.partner_id, created_at=int(row.created_at), expires_at=int(row.expires_at),
        used_at=seconds(row.used_at))


def registered_out(partner: Partner, changed: list[str] | None = None) -> SelfRegisteredOut:
    base = partner_out(partner).model_dump()
    return SelfRegisteredOut(**base, federation_jwks=partner.federation_jwks,
                             keys_refreshed_at=seconds(partner.keys_refreshed_at),
                             changed=changed or [])


async def issue_invitation(broker: Broker, body: InvitationCreate) -> InvitationOut:
    now = broker.clock.now()
    try:
        async with broker.sessions() as session, session.begin():
            issued = await invitations.issue(session, now=now, lifetime=body.lifetime_seconds,
                                             entity_id=body.entity_id, note=body.note)
    except RegistryError as exc:
        raise refused(exc) from exc
    return invitation_out(issued.row, now, issued.code)


async def list_invitations(broker: Broker) -> list[InvitationOut]:
    now = broker.clock.now()
    async with broker.sessions() as session:
        return [invitation_out(r, now) for r in await invitations.list_all(session)]


async def revoke_invitation(broker: Broker, invitation_id: str) -> InvitationOut:
    now = broker.clock.now()
    try:
        async with broker.sessions() as session, session.begin():
            row = await invitations.revoke(session, invitation_id, now)
    except LookupError as exc:
        raise NotFound(f"no invitation {invitation_id!r}") from exc
    except RegistryError as exc:
        raise refused(exc) from exc
    return invitation_out(row, now)


async def register_entity(broker: Broker, body: EntityRegistration) -> SelfRegisteredOut:
    partner = await partner_registration.register(
        broker, body.entity_id, invitation_code=None, partner_id=body.id,
        display_name=body.display_name)
    return registered_out(partner)


async def list_pending(broker: Broker) -> list[SelfRegisteredOut]:
    async with broker.sessions() as session:
        return [registered_out(p) for p in await partners.list_partners(session)
                if p.status == "pending"]


async def _decide(broker: Broker, partner_id: str, status: str, body: Decision
                  ) -> SelfRegisteredOut:
    now = broker.clock.now()
    try:
        async with broker.sessions() as session, session.begin():
            current = await session.get(Partner, partner_id)
            if current is None:
                raise LookupError(partner_id)
            if current.status != "pending":
                raise RegistryError(f"only a pending partner is approved or rejected; this "
                                    f"one is {current.status}")
            partner = await partners.set_status(session, partner_id, status, now)
            verb = "approved" if status == "active" else "rejected"
            await audit.record(session, REGISTRY_AUDIT, [audit.Event(
                f"partner.registration_{verb}", "granted" if status == "active" else "denied",
                detail={"partner": partner_id, "issuer": partner.issuer,
                        "reason": body.reason})], now)
    except LookupError as exc:
        raise NotFound(f"no partner {partner_id!r}") from exc
    except RegistryError as exc:
        raise refused(exc) from exc
    return registered_out(partner)


async def approve_partner(broker: Broker, partner_id: str, body: Decision) -> SelfRegisteredOut:
    return await _decide(broker, partner_id, "active", body)


async def reject_partner(broker: Broker, partner_id: str, body: Decision) -> SelfRegisteredOut:
    return await _decide(broker, partner_id, "revoked", body)


async def refresh_partner(broker: Broker, partner_id: str) -> SelfRegisteredOut:
    partner, changed = await partner_registration.refresh(broker, partner_id, limited=False)
    return registered_out(partner, changed)


async def get_registry_settings(broker: Broker) -> RegistrySettingsOut:
    async with broker.sessions() as session:
        row = await session.get(RegistrySetting, registry_notify.SETTINGS_ROW)
        secret = await scoped(session, REGISTRY_AUDIT).get(WebhookSecret)
    return RegistrySettingsOut(webhook_url=row.webhook_url if row else None, secret=None,
                               secret_revealed=bool(secret and secret.revealed))


async def put_registry_settings(broker: Broker, body: RegistrySettingsPut
                                ) -> RegistrySettingsOut:
    """Set (or clear) the webhook URL; the answer shows the signing secret if it was never
    shown before."""
    if body.webhook_url is not None:
        try:
            await broker.remote_keys.check_target(body.webhook_url)
        except RemoteKeyError as exc:  # an address tessera must not call
            raise InvalidRequest(f"webhook_url: {exc}") from None
    now = broker.clock.now()
    async with broker.sessions() as session, session.begin():
        row = await session.get(RegistrySetting, registry_notify.SETTINGS_ROW)
        if row is None:
            row = RegistrySetting(id=registry_notify.SETTINGS_ROW, updated_at=now)
            session.add(row)
        row.webhook_url, row.updated_at = body.webhook_url, now
        scope = scoped(session, REGISTRY_AUDIT)
        stored = await webhook_secrets.adopt(scope, broker.sealer,
                                             derived_secret(broker, REGISTRY_AUDIT))
        secret = webhook_secrets.reveal(stored, broker.sealer) if body.webhook_url else None
        await session.flush()
        await audit.record(session, REGISTRY_AUDIT, [audit.Event(
            "registry.webhook_set", "changed", detail={
                "url": body.webhook_url, "secret_revealed": secret is not None})], now)
    return RegistrySettingsOut(webhook_url=body.webhook_url, secret=secret,
                               secret_revealed=stored.revealed)
