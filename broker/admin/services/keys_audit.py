"""A tenant's signing keys (list, rotate now), its RAR detail types and its audit chain
(verify, export)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from adapters.errors import OAuthError
from broker import webhooks
from broker.admin.models.keys_audit import (
    AdminTokenOut,
    AdminTokenRotation,
    AuditReport,
    CompromiseOut,
    DetailTypeOut,
    DetailTypePut,
    KeyCompromise,
    KeyOut,
    RotationOut,
)
from broker.admin.services.common import existing_tenant
from broker.config import StartupError
from broker.runtime import Broker
from tenants import admin_credentials, audit
from tenants.models import DetailType
from tenants.scope import scoped, tenant_scope


async def rotate_keys(broker: Broker, tenant: str) -> RotationOut:
    """``RotationTooEarly``/``RotationConflict`` (409) when the next key is not published
    long enough yet, or another rotation ran at the same time."""
    await existing_tenant(broker, tenant, change=True)
    rotation = await broker.keys.rotate(tenant)
    return RotationOut(tenant=tenant, active=rotation.activated, retiring=rotation.retiring,
                       next=rotation.published_next, retired=list(rotation.retired),
                       dropped=list(rotation.dropped))


async def compromise_key(broker: Broker, tenant: str, kid: str,
                         body: KeyCompromise) -> CompromiseOut:
    """Emergency rotation: ``kid`` leaves service now on every replica; the tenant's webhook
    is told (``key.compromised``) before the answer."""
    await existing_tenant(broker, tenant, change=True)
    done = await broker.keys.compromise(tenant, kid, reason=body.reason or "compromised")
    delivered = False
    try:
        view = await broker.tenant(tenant)
    except OAuthError:  # a disabled tenant has no receiver to tell
        view = None
    if view is not None:
        delivered = await webhooks.deliver(broker, view, "key.compromised", {
            "kid": kid, "was": done.was, "active": done.activated, "next": done.published_next,
            "reason": body.reason, "jwks_uri": f"{view.issuer}/jwks"})
    return CompromiseOut(tenant=tenant, kid=kid, was=done.was, active=done.activated,
                         next=done.published_next, compromised_at=done.at,
                         webhook_delivered=delivered)


async def rotate_admin_token(broker: Broker, body: AdminTokenRotation) -> AdminTokenOut:
    """A new admin token on every replica from the next request; the current one works for
    the overlap (``tenants.admin_credentials``)."""
    try:
        configured = broker.settings.admin_token_value()
    except StartupError:
        configured = ""
    token, until = await admin_credentials.rotate(
        broker.sessions, configured, now=broker.clock.now(),
        overlap_seconds=body.overlap_seconds)
    return AdminTokenOut(admin_token=token, previous_valid_until=until)


async def list_keys(broker: Broker, tenant: str) -> list[KeyOut]:
    """Every key not retired (compromised ones too), with its backend and dates."""
    await existing_tenant(broker, tenant)
    now = broker.clock.now()
    return [KeyOut(kid=k.kid, alg=k.alg, state=k.state, backend=k.backend,
                   created_at=k.created_at, activated_at=k.activated_at,
                   retiring_at=k.retiring_at, retire_after=k.retire_after,
                   age_seconds=max(0, int(now - k.created_at)))
            for k in await broker.keys.custody(tenant)]


async def verify_audit(broker: Broker, tenant: str) -> AuditReport:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        report = await audit.verify_chain(session, tenant)
    return AuditReport(tenant=tenant, events=report.events, intact=report.intact,
                       first_broken_seq=report.first_broken_seq, reason=report.reason)


async def export_audit(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    """Every event of the chain, oldest first (the CLI's ``audit export``)."""
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [
            {"tenant": tenant, "seq": e.seq, "at": e.at, "action": e.action,
             "outcome": e.outcome, "client_id": e.client_id, "subject": e.subject,
             "detail": e.detail, "prev_hash": e.prev_hash, "hash": e.hash}
            async for e in audit.iter_events(session, tenant)
        ]


def _detail_type(row: DetailType) -> DetailTypeOut:
    return DetailTypeOut(type=row.type, schema=row.schema, description=row.description)


async def register_detail_type(broker: Broker, tenant: str,
                               body: DetailTypePut) -> DetailTypeOut:
    """Create or replace the type's schema and description."""
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(DetailType, body.type)
        if row is None:
            row = scope.add(DetailType(type=body.type, schema=body.schema_,
                                       description=body.description, created_at=now))
        else:
            row.schema, row.description = body.schema_, body.description
        await audit.record(scope.session, tenant, [audit.Event(
            "authorization_details_type.registered", "changed", None, None,
            {"type": body.type})], now)
    return _detail_type(row)


async def list_detail_types(broker: Broker, tenant: str) -> list[DetailTypeOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(DetailType).order_by(DetailType.type))).scalars().all()
    return [_detail_type(r) for r in rows]
