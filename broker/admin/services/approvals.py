"""Pending approvals of a tenant as its administrators see them: every pending request, and a
decision on one (recorded like an approver's, ``via`` ``admin``; the audit actor names the
administrator)."""

from __future__ import annotations

from broker.admin.models.approvals import ApprovalOut, DecisionOut
from broker.admin.services.common import existing_tenant
from broker.endpoints import approvals
from broker.runtime import Broker


async def list_pending(broker: Broker, tenant: str) -> list[ApprovalOut]:
    await existing_tenant(broker, tenant)
    view = await broker.tenant(tenant)
    return [ApprovalOut(**item) for item in await approvals.every_pending(broker, view)]


async def decide(broker: Broker, tenant: str, handle: str, approve: bool) -> DecisionOut:
    await existing_tenant(broker, tenant, change=True)
    view = await broker.tenant(tenant)
    return DecisionOut(**await approvals.decide(broker, view, handle, approve, None, "admin"))
