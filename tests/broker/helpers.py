"""Small helpers for endpoint tests: decode JWTs, count a tenant's rows."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from adapters.jose import b64url_decode
from broker.runtime import Broker
from tenants.models import AuditEvent, ReplayRecord, RevokedToken


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body))


async def counts(broker: Broker, tenant: str) -> dict[str, int]:
    out = {}
    async with broker.sessions() as session:
        for model in (AuditEvent, ReplayRecord, RevokedToken):
            out[model.__tablename__] = (await session.execute(
                select(func.count()).select_from(model).where(model.tenant_id == tenant)
            )).scalar_one()
    return out


async def last_event(broker: Broker, tenant: str) -> AuditEvent:
    async with broker.sessions() as session:
        return (await session.execute(
            select(AuditEvent).where(AuditEvent.tenant_id == tenant)
            .order_by(AuditEvent.seq.desc()).limit(1))).scalar_one()


async def assert_refused_wrote_only_audit(broker: Broker, tenant: str, before: dict[str, int],
                                          action: str = "token.refused") -> AuditEvent:
    after = await counts(broker, tenant)
    assert after["replay_records"] == before["replay_records"]
    assert after["revoked_tokens"] == before["revoked_tokens"]
    assert after["audit_events"] == before["audit_events"] + 1
    event = await last_event(broker, tenant)
    assert event.action == action and event.outcome == "refused"
    return event
