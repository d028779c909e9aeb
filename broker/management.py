"""What ``broker.serve``'s demo bootstrap still calls by its old names: thin wrappers over the
admin services (``broker.admin.services``), which are the one implementation. To be removed
when ``serve.py`` calls the services itself (it is being reworked on another branch)."""

from __future__ import annotations

from typing import Any

from broker.admin.models.clients import ClientCreate
from broker.admin.models.common import parse
from broker.admin.models.tenants import TenantCreate
from broker.admin.services import clients, tenants
from broker.runtime import Broker


async def list_tenants(broker: Broker) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in await tenants.list_tenants(broker)]


async def create_tenant(broker: Broker, name: str, *,
                        display_name: str | None = None) -> dict[str, Any]:
    body = parse(TenantCreate, {"name": name, "display_name": display_name},
                 allow_http_loopback=broker.settings.allow_http_loopback)
    return (await tenants.create_tenant(broker, body)).model_dump(mode="json")


async def create_client(broker: Broker, tenant: str, **fields: Any) -> dict[str, Any]:
    body = parse(ClientCreate, {k: list(v) if isinstance(v, tuple) else v
                                for k, v in fields.items()},
                 allow_http_loopback=broker.settings.allow_http_loopback)
    return (await clients.create_client(broker, tenant, body)).model_dump(mode="json")
