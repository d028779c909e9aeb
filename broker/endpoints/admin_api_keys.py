"""API keys in the admin API (and the operations the ``tessera api-key`` CLI shares):

    POST /admin/v1/tenants/{tenant}/api-keys                  {client_id, name, scopes?,
                                                               expires_in?}      -> 201
    GET  /admin/v1/tenants/{tenant}/api-keys[?client_id=]
    GET  /admin/v1/tenants/{tenant}/api-keys/{key_id}
    POST /admin/v1/tenants/{tenant}/api-keys/{key_id}/rotate  {overlap_seconds?}
    POST /admin/v1/tenants/{tenant}/api-keys/{key_id}/revoke

Creation and rotation answer the key itself as ``api_key``, this once; it is stored only as a
keyed hash and no listing, audit event or error shows it again (``redacted`` names it).
``expires_in`` absent: the key does not expire. ``overlap_seconds`` (default 3600, at most
7 days): how long the rotated-out key keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from adapters.errors import InvalidRequest, NotFound
from broker.endpoints import admin as admin_api
from broker.runtime import Broker
from tenants import api_keys
from tenants.scope import TenantScope, scoped, tenant_scope

DEFAULT_OVERLAP = 3600
MAX_EXPIRES_IN = 2 * 366 * 86_400


async def _scope_tenant(scope: TenantScope) -> None:
    if await scope.tenant() is None:
        raise NotFound(f"no tenant {scope.tenant_id!r}")


def _missing(tenant: str, key_id: str) -> NotFound:
    return NotFound(f"no API key {key_id!r} in tenant {tenant!r}")


async def create_api_key(
    broker: Broker, tenant: str, *, client_id: str, name: str, scopes: Sequence[str] = (),
    expires_in: int | None = None,
) -> dict[str, Any]:
    if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidRequest(f"expires_in: 1..{MAX_EXPIRES_IN} seconds")
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            await _scope_tenant(scope)
            row, key = await api_keys.create(
                scope, client_id=client_id, name=name, scopes=scopes,
                expires_at=None if expires_in is None else now + expires_in,
                hasher=broker.hasher, now=now)
    except api_keys.ApiKeyError as exc:
        raise InvalidRequest(str(exc)) from exc
    return {**api_keys.key_json(row, now), "api_key": key}


async def list_api_keys(
    broker: Broker, tenant: str, client_id: str | None = None
) -> list[dict[str, Any]]:
    now = broker.clock.now()
    async with broker.sessions() as session:
        scope = scoped(session, tenant)
        await _scope_tenant(scope)
        return [api_keys.key_json(r, now) for r in await api_keys.list_keys(scope, client_id)]


async def get_api_key(broker: Broker, tenant: str, key_id: str) -> dict[str, Any]:
    async with broker.sessions() as session:
        try:
            row = await api_keys.get(scoped(session, tenant), key_id)
        except LookupError as exc:
            raise _missing(tenant, key_id) from exc
        return api_keys.key_json(row, broker.clock.now())


async def rotate_api_key(
    broker: Broker, tenant: str, key_id: str, overlap_seconds: int = DEFAULT_OVERLAP
) -> dict[str, Any]:
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            row, key = await api_keys.rotate(scope, key_id, overlap_seconds=overlap_seconds,
                                             hasher=broker.hasher, now=now)
    except LookupError as exc:
        raise _missing(tenant, key_id) from exc
    except api_keys.ApiKeyError as exc:
        raise InvalidRequest(str(exc)) from exc
    return {**api_keys.key_json(row, now), "api_key": key}


async def revoke_api_key(broker: Broker, tenant: str, key_id: str) -> dict[str, Any]:
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            row = await api_keys.revoke(scope, key_id, now)
    except LookupError as exc:
        raise _missing(tenant, key_id) from exc
    return api_keys.key_json(row, now)


# -- HTTP ----------------------------------------------------------------------------------

def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidRequest(f"{name} must be an integer")
    return value


async def _create(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    client_id, name = body.get("client_id"), body.get("name")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidRequest("client_id is required")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("name is required")
    scopes = body.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("scopes must be a list of strings")
    return await create_api_key(broker, request.path_params["tenant"], client_id=client_id,
                                name=name, scopes=scopes,
                                expires_in=_int(body, "expires_in", None))


async def _list(request: Request, broker: Broker, _body: dict[str, Any]) -> Any:
    return await list_api_keys(broker, request.path_params["tenant"],
                               request.query_params.get("client_id"))


async def _get(request: Request, broker: Broker, _body: dict[str, Any]) -> Any:
    return await get_api_key(broker, request.path_params["tenant"],
                             request.path_params["key_id"])


async def _rotate(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    overlap = _int(body, "overlap_seconds", DEFAULT_OVERLAP)
    assert overlap is not None
    return await rotate_api_key(broker, request.path_params["tenant"],
                                request.path_params["key_id"], overlap)


async def _revoke(request: Request, broker: Broker, _body: dict[str, Any]) -> Any:
    return await revoke_api_key(broker, request.path_params["tenant"],
                                request.path_params["key_id"])


def routes() -> list[Route]:
    keys = "/admin/v1/tenants/{tenant}/api-keys"
    one = keys + "/{key_id}"
    endpoint = admin_api.endpoint
    return [
        Route(keys, endpoint(_list), methods=["GET"]),
        Route(keys, endpoint(_create, 201), methods=["POST"]),
        Route(one, endpoint(_get), methods=["GET"]),
        Route(one + "/rotate", endpoint(_rotate), methods=["POST"]),
        Route(one + "/revoke", endpoint(_revoke), methods=["POST"]),
    ]
