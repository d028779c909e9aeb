"""API keys of a tenant: create, list, read, rotate (the previous key keeps working for the
overlap), revoke. Creation and rotation answer the key itself (``api_key``) this once; it is
stored only as a keyed hash and no listing, audit event or error shows it again."""

from __future__ import annotations

from adapters.errors import InvalidRequest, NotFound
from broker.admin.models.api_keys import (
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeyRotation,
    ApiKeyWithSecret,
)
from broker.admin.services.common import existing_tenant
from broker.runtime import Broker
from tenants import api_keys
from tenants.scope import scoped, tenant_scope


def _missing(tenant: str, key_id: str) -> NotFound:
    return NotFound(f"no API key {key_id!r} in tenant {tenant!r}")


async def create_api_key(broker: Broker, tenant: str, body: ApiKeyCreate) -> ApiKeyWithSecret:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            row, key = await api_keys.create(
                scope, client_id=body.client_id, name=body.name, scopes=body.scopes,
                expires_at=None if body.expires_in is None else now + body.expires_in,
                hasher=broker.hasher, now=now)
    except api_keys.ApiKeyError as exc:
        raise InvalidRequest(str(exc)) from exc
    return ApiKeyWithSecret(**api_keys.key_json(row, now), api_key=key)


async def list_api_keys(broker: Broker, tenant: str,
                        client_id: str | None = None) -> list[ApiKeyOut]:
    await existing_tenant(broker, tenant)
    now = broker.clock.now()
    async with broker.sessions() as session:
        rows = await api_keys.list_keys(scoped(session, tenant), client_id)
        return [ApiKeyOut(**api_keys.key_json(r, now)) for r in rows]


async def get_api_key(broker: Broker, tenant: str, key_id: str) -> ApiKeyOut:
    async with broker.sessions() as session:
        try:
            row = await api_keys.get(scoped(session, tenant), key_id)
        except LookupError as exc:
            raise _missing(tenant, key_id) from exc
        return ApiKeyOut(**api_keys.key_json(row, broker.clock.now()))


async def rotate_api_key(broker: Broker, tenant: str, key_id: str,
                         body: ApiKeyRotation) -> ApiKeyWithSecret:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            row, key = await api_keys.rotate(scope, key_id, overlap_seconds=body.overlap_seconds,
                                             hasher=broker.hasher, now=now)
    except LookupError as exc:
        raise _missing(tenant, key_id) from exc
    except api_keys.ApiKeyError as exc:
        raise InvalidRequest(str(exc)) from exc
    return ApiKeyWithSecret(**api_keys.key_json(row, now), api_key=key)


async def revoke_api_key(broker: Broker, tenant: str, key_id: str) -> ApiKeyOut:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            row = await api_keys.revoke(scope, key_id, now)
    except LookupError as exc:
        raise _missing(tenant, key_id) from exc
    return ApiKeyOut(**api_keys.key_json(row, now))
