"""Anomaly rules in the admin API (and the operations ``tessera anomaly-rules`` shares):

    GET /admin/v1/tenants/{tenant}/anomaly-rules
    PUT /admin/v1/tenants/{tenant}/anomaly-rules   {"rules": [{"name", "metric", "limit",
                                                               "window", "action"?}, ...]}

PUT replaces the tenant's whole rule set (``[]`` removes every rule); rules are checked by
``broker.anomaly.check_rules`` (400 ``invalid_request`` naming the first problem). The change
moves the tenant's directory epoch on, so every replica counts by the new rules from its next
request, and is audited as ``anomaly.rules_set``. See ``broker.anomaly`` for what a rule does.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from adapters.errors import InvalidRequest, NotFound
from broker import anomaly
from broker.endpoints import admin as admin_api
from broker.runtime import Broker
from tenants import audit
from tenants.directory import bump_epoch
from tenants.models import Tenant
from tenants.settings import TenantSettings


async def get_rules(broker: Broker, tenant: str) -> dict[str, Any]:
    async with broker.sessions() as session:
        row = await session.get(Tenant, tenant)
        if row is None:
            raise NotFound(f"no tenant {tenant!r}")
        return {"tenant": tenant, "rules": list(TenantSettings.of(row).anomaly_rules)}


async def set_rules(broker: Broker, tenant: str, raw: Any) -> dict[str, Any]:
    try:
        rules = anomaly.check_rules(raw)
    except anomaly.RuleError as exc:
        raise InvalidRequest(str(exc)) from exc
    now = broker.clock.now()
    async with broker.sessions() as session, session.begin():
        row = await session.get(Tenant, tenant)
        if row is None:
            raise NotFound(f"no tenant {tenant!r}")
        row.settings = {**(row.settings or {}), "anomaly_rules": list(rules)}  # a new object
        await bump_epoch(session, tenant)
        await audit.record(session, tenant, [audit.Event(
            "anomaly.rules_set", "changed", detail={"rules": list(rules)})], now)
    broker.forget_directory(tenant)
    return {"tenant": tenant, "rules": list(rules)}


async def _get(request: Request, broker: Broker, _body: dict[str, Any]) -> Any:
    return await get_rules(broker, request.path_params["tenant"])


async def _put(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    if "rules" not in body:
        raise InvalidRequest("rules is required (a list; [] removes every rule)")
    return await set_rules(broker, request.path_params["tenant"], body["rules"])


def routes() -> list[Route]:
    path = "/admin/v1/tenants/{tenant}/anomaly-rules"
    endpoint = admin_api.endpoint
    return [
        Route(path, endpoint(_get), methods=["GET"]),
        Route(path, endpoint(_put), methods=["PUT"]),
    ]
