"""A tenant's anomaly rules (``broker.anomaly``): read, and replace the whole set (``[]``
removes every rule). The change moves the tenant's directory epoch on, so every replica
counts by the new rules from its next request, and is audited as ``anomaly.rules_set``."""

from __future__ import annotations

from pydantic import ValidationError

from broker.admin.errors import validation_error
from broker.admin.models.runtime import AnomalyRulesOut, AnomalyRulesPut
from broker.admin.services.common import existing_tenant, no_tenant
from broker.runtime import Broker
from tenants import audit
from tenants.directory import bump_epoch
from tenants.models import Tenant
from tenants.settings import TenantSettings


async def get_rules(broker: Broker, tenant: str) -> AnomalyRulesOut:
    row = await existing_tenant(broker, tenant)
    return AnomalyRulesOut(tenant=tenant, rules=list(TenantSettings.of(row).anomaly_rules))


async def set_rules(broker: Broker, tenant: str, body: AnomalyRulesPut) -> AnomalyRulesOut:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with broker.sessions() as session, session.begin():
        row = await session.get(Tenant, tenant)
        if row is None:
            raise no_tenant(tenant)
        try:
            settings = TenantSettings.of(row).model_copy(update={"anomaly_rules": ()})
            settings = TenantSettings.model_validate(
                {**settings.to_dict(), "anomaly_rules": [r.model_dump() for r in body.rules]},
                context={"allow_http_loopback": True})
        except ValidationError as exc:
            raise validation_error(exc, prefix=()) from None
        row.settings = settings.to_dict()  # a new object: the JSON column sees the change
        await bump_epoch(session, tenant)
        rules = [r.model_dump() for r in settings.anomaly_rules]
        await audit.record(session, tenant, [audit.Event(
            "anomaly.rules_set", "changed", detail={"rules": rules})], now)
    broker.forget_directory(tenant)
    return AnomalyRulesOut(tenant=tenant, rules=list(settings.anomaly_rules))
