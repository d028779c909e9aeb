"""The admin services by the short keyword calls tests make (``ops.create_client(broker, t,
name=..., scopes=[...])``): each builds the request model with the same validation as the
HTTP edge and the CLI (a refusal is the edge's ``InvalidBody``), calls the service, and
answers the JSON the admin API would send."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from broker.admin.errors import validation_error
from broker.admin.models.clients import ClientCreate
from broker.admin.models.common import parse
from broker.admin.models.connections import ManagedConnectionPut
from broker.admin.models.keys_audit import DetailTypePut, KeyCompromise
from broker.admin.models.legacy_apps import LegacyAppCreate
from broker.admin.models.registry import DirectionsPut, PartnerCreate, TrustLinkCreate
from broker.admin.models.resources import ResourceCreate
from broker.admin.models.runtime import RevokeRequest
from broker.admin.models.tenants import TenantCreate
from broker.admin.models.upstreams import UpstreamCreate
from broker.admin.services import (
    agents,
    clients,
    connections,
    keys_audit,
    legacy_apps,
    partners,
    resources,
    revocation,
    tenants,
    trust_links,
    upstreams,
)
from broker.runtime import Broker

M = TypeVar("M", bound=BaseModel)


def body(broker: Broker, model: type[M], data: dict[str, Any]) -> M:
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()
             if v is not None}
    try:
        return parse(model, plain, allow_http_loopback=broker.settings.allow_http_loopback)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def _json(result: Awaitable[Any]) -> Any:
    value = await result
    if isinstance(value, list):
        return [v.model_dump(mode="json", by_alias=True) for v in value]
    return value.model_dump(mode="json", by_alias=True)


# tenants, clients, keys, audit
async def create_tenant(broker: Broker, name: str, *, display_name: str | None = None,
                        settings: dict[str, Any] | None = None) -> Any:
    return await _json(tenants.create_tenant(broker, body(broker, TenantCreate, {
        "name": name, "display_name": display_name, "settings": settings})))


def list_tenants(broker: Broker) -> Awaitable[Any]:
    return _json(tenants.list_tenants(broker))


def get_tenant(broker: Broker, name: str) -> Awaitable[Any]:
    return _json(tenants.get_tenant(broker, name))


def set_tenant_status(broker: Broker, name: str, status: str) -> Awaitable[Any]:
    return _json(tenants.set_tenant_status(broker, name, status))


async def create_client(broker: Broker, tenant: str, *, auth_method: str | None = None,
                        require_par: bool | None = None, **fields: Any) -> Any:
    return await _json(clients.create_client(broker, tenant, body(broker, ClientCreate, {
        **fields, "token_endpoint_auth_method": auth_method,
        "require_pushed_authorization_requests": require_par})))


def list_clients(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(clients.list_clients(broker, tenant))


def get_client(broker: Broker, tenant: str, client_id: str) -> Awaitable[Any]:
    return _json(clients.get_client(broker, tenant, client_id))


def set_client_status(broker: Broker, tenant: str, client_id: str,
                      status: str) -> Awaitable[Any]:
    return _json(clients.set_client_status(broker, tenant, client_id, status))


def rotate_keys(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(keys_audit.rotate_keys(broker, tenant))


def compromise_key(broker: Broker, tenant: str, kid: str, *, reason: str = "") -> Awaitable[Any]:
    return _json(keys_audit.compromise_key(broker, tenant, kid,
                                           body(broker, KeyCompromise, {"reason": reason})))


def list_keys(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(keys_audit.list_keys(broker, tenant))


def verify_audit(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(keys_audit.verify_audit(broker, tenant))


export_audit = keys_audit.export_audit


# registry
async def register_partner(broker: Broker, *, partner_id: str | None = None,
                           **fields: Any) -> Any:
    return await _json(partners.register_partner(broker, body(broker, PartnerCreate, {
        **fields, "id": partner_id})))


def set_partner_status(broker: Broker, partner_id: str, status: str) -> Awaitable[Any]:
    return _json(partners.set_partner_status(broker, partner_id, status))


async def add_trust_link(broker: Broker, tenant: str, *, partner_id: str | None = None,
                         peer_tenant: str | None = None, accept: bool = False,
                         send: bool = False, **fields: Any) -> Any:
    directions = [d for d, on in (("accept", accept), ("send", send)) if on]
    return await _json(trust_links.add_trust_link(broker, tenant, body(
        broker, TrustLinkCreate, {**fields, "partner": partner_id, "tenant": peer_tenant,
                                  "directions": directions})))


def list_trust_links(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(trust_links.list_trust_links(broker, tenant))


async def set_trust_link_directions(broker: Broker, tenant: str, link_id: str, *,
                                    accept: bool | None = None,
                                    send: bool | None = None) -> Any:
    link = await trust_links.get_trust_link(broker, tenant, link_id)
    flows = {"accept": link.accept if accept is None else accept,
             "send": link.send if send is None else send}
    return await _json(trust_links.set_trust_link_directions(broker, tenant, link_id, body(
        broker, DirectionsPut, {"directions": [d for d, on in flows.items() if on]})))


def set_trust_link_status(broker: Broker, tenant: str, link_id: str,
                          status: str) -> Awaitable[Any]:
    return _json(trust_links.set_trust_link_status(broker, tenant, link_id, status))


async def put_managed_connection(broker: Broker, tenant: str, **fields: Any) -> Any:
    return await _json(connections.put_managed_connection(broker, tenant, body(
        broker, ManagedConnectionPut, fields)))


def list_managed_connections(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(connections.list_managed_connections(broker, tenant))


def delete_managed_connection(broker: Broker, tenant: str, client_id: str,
                              audience: str) -> Awaitable[Any]:
    return _json(connections.delete_managed_connection(broker, tenant, client_id, audience))


# login configuration, legacy apps, runtime control
async def create_upstream(broker: Broker, tenant: str, data: dict[str, Any]) -> Any:
    return await _json(upstreams.create_upstream(broker, tenant, body(
        broker, UpstreamCreate, data)))


def set_upstream_status(broker: Broker, tenant: str, name: str,
                        status: str) -> Awaitable[Any]:
    return _json(upstreams.set_upstream_status(broker, tenant, name, status))


async def register_detail_type(broker: Broker, tenant: str, data: dict[str, Any]) -> Any:
    return await _json(keys_audit.register_detail_type(broker, tenant, body(
        broker, DetailTypePut, data)))


def list_detail_types(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(keys_audit.list_detail_types(broker, tenant))


def list_users(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(agents.list_users(broker, tenant))


async def create_legacy_app(broker: Broker, tenant: str, data: dict[str, Any]) -> Any:
    return await _json(legacy_apps.create_legacy_app(broker, tenant, body(
        broker, LegacyAppCreate, data)))


def set_legacy_app_status(broker: Broker, tenant: str, entity_id: str,
                          status: str) -> Awaitable[Any]:
    return _json(legacy_apps.set_legacy_app_status(broker, tenant, entity_id, status))


async def revoke(broker: Broker, tenant: str, by: str, value: str | None, reason: str = "",
                 issuer: str | None = None) -> Any:
    return await _json(revocation.revoke(broker, tenant, body(broker, RevokeRequest, {
        "by": by, "value": value, "reason": reason, "issuer": issuer})))




def list_legacy_apps(broker: Broker, tenant: str) -> Awaitable[Any]:
    return _json(legacy_apps.list_legacy_apps(broker, tenant))


async def create_resource(broker: Broker, tenant: str, **fields: Any) -> Any:
    return await _json(resources.create_resource(broker, tenant, body(
        broker, ResourceCreate, fields)))
