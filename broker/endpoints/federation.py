"""The registry's federation endpoints (OpenID Federation 1.0 §8): its Entity Configuration,
``fetch`` of Subordinate Statements and ``list`` of the entities it vouches for."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import InvalidRequest, NotFound, OAuthError
from broker.endpoints import metadata
from broker.errors import error_response
from broker.json_response import JSONResponse
from broker.runtime import Broker
from registry import federation

MEDIA = "application/entity-statement+jwt"


def registry_id(broker: Broker) -> str:
    return f"{broker.settings.base_url.rstrip('/')}/registry"


async def _sign(broker: Broker, claims: dict[str, object]) -> str:
    return await broker.keys.sign(federation.REGISTRY_KEYS, {"typ": federation.STATEMENT_TYP},
                                  claims)


async def entity_configuration(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    await entity_configuration_keys(broker)
    jwks = await broker.keys.jwks(federation.REGISTRY_KEYS)
    claims = federation.entity_configuration(registry_id(broker), jwks, broker.clock.now())
    return Response(await _sign(broker, claims), media_type=MEDIA)


async def _subordinates(broker: Broker) -> dict[str, dict[str, object]]:
    async with broker.sessions() as session:
        return await federation.active_subordinates(session, broker.issuer, broker.clock.now())


async def fetch(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    sub = request.query_params.get("sub")
    if not sub:
        return error_response(InvalidRequest("sub is required"))
    known = (await _subordinates(broker)).get(sub)
    if known is None:
        return error_response(NotFound("the registry vouches for no such entity"))
    await entity_configuration_keys(broker)
    jwks = known["jwks"]
    if isinstance(known.get("tenant"), str):  # a tenant of ours: its federation keys
        slot = federation.tenant_keys(str(known["tenant"]))
        await entity_configuration_keys(broker, slot)
        jwks = await broker.keys.jwks(slot)
    claims = federation.subordinate_statement(
        registry_id(broker), sub, known["metadata"], broker.clock.now(),  # type: ignore[arg-type]
        jwks=jwks, expires_at=known["expires_at"],  # type: ignore[arg-type]
    )
    return Response(await _sign(broker, claims), media_type=MEDIA)


async def entity_configuration_keys(broker: Broker,
                                    slot: str = federation.REGISTRY_KEYS) -> None:
    if not (await broker.keys.jwks(slot))["keys"]:
        await broker.keys.ensure(slot)
        broker.keys.invalidate(slot)


async def tenant_entity_configuration(request: Request) -> Response:
    """``/t/{tenant}/.well-known/openid-federation``: the tenant as a federation entity,
    signed with its own federation keys; its superior is this broker's registry."""
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    slot = federation.tenant_keys(tenant.id)
    await entity_configuration_keys(broker, slot)
    server = metadata.server_metadata(tenant, tenant.settings.key_alg,
                                      sorted(await broker.detail_types(tenant.id)))
    claims = federation.tenant_entity_configuration(
        tenant.issuer, await broker.keys.jwks(slot), server, broker.clock.now(),
        authority_hints=[registry_id(broker)], organization_name=tenant.id)
    token = await broker.keys.sign(slot, {"typ": federation.STATEMENT_TYP}, claims)
    return Response(token, media_type=MEDIA, headers={"Cache-Control": "public, max-age=60"})


async def listing(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    return JSONResponse(sorted(await _subordinates(broker)))
