"""A tenant's signing keys (list, rotate now), its RAR detail types and its audit chain
(verify, export)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from broker.admin.models.keys_audit import (
    AuditReport,
    DetailTypeOut,
    DetailTypePut,
    KeyOut,
    RotationOut,
)
from broker.admin.services.common import existing_tenant
from broker.runtime import Broker
from tenants import audit
from tenants.models import DetailType
from tenants.scope import scoped, tenant_scope


async def rotate_keys(broker: Broker, tenant: str) -> RotationOut:
    await existing_tenant(broker, tenant, change=True)
    rotation = await broker.keys.rotate(tenant)
    return RotationOut(tenant=tenant, active=rotation.activated, retiring=rotation.retiring,
                       next=rotation.published_next, retired=list(rotation.retired))


async def list_keys(broker: Broker, tenant: str) -> list[KeyOut]:
    await existing_tenant(broker, tenant)
    return [KeyOut(kid=k.kid, alg=k.alg, state=k.state, activated_at=k.activated_at,
                   retire_after=k.retire_after) for k in await broker.keys.keys(tenant)]


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
