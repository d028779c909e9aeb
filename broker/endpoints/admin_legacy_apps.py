"""Legacy apps (SAML service providers) in the admin API, and the operations the
``tessera legacy-app`` CLI shares:

    POST /admin/v1/tenants/{tenant}/legacy-apps          {entity_id, acs_urls, name?,
                                                          name_id_format?, attribute_mapping?,
                                                          want_authn_requests_signed?,
                                                          sp_certs?, assertion_lifetime?}
                                                         or {metadata: "<EntityDescriptor..>",
                                                          attribute_mapping?, ...}  -> 201
    GET  /admin/v1/tenants/{tenant}/legacy-apps
    POST /admin/v1/tenants/{tenant}/legacy-apps/disable  {entity_id}
    POST /admin/v1/tenants/{tenant}/legacy-apps/enable   {entity_id}

Entity IDs are URIs, so they travel in the body rather than in the path. The answer to a
registration also names what to configure at the app: the IdP metadata URL and SSO URL.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from adapters.errors import InvalidRequest, NotFound
from broker.endpoints import admin as admin_api
from broker.runtime import Broker
from tenants import legacy_apps
from tenants.scope import TenantScope, scoped, tenant_scope


async def _scope_tenant(scope: TenantScope) -> None:
    if await scope.tenant() is None:
        raise NotFound(f"no tenant {scope.tenant_id!r}")


def _json(broker: Broker, tenant: str, app: legacy_apps.LegacyAppView) -> dict[str, Any]:
    issuer = broker.issuer(tenant)
    return {**app.as_json(), "tenant": tenant, "idp_metadata_url": f"{issuer}/saml/idp/metadata",
            "idp_sso_url": f"{issuer}/saml/idp/sso"}


async def create_legacy_app(broker: Broker, tenant: str, body: dict[str, Any]
                            ) -> dict[str, Any]:
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            await _scope_tenant(scope)
            app = await legacy_apps.create(
                scope, body, now=broker.clock.now(),
                allow_http_loopback=broker.settings.allow_http_loopback)
    except legacy_apps.LegacyAppError as exc:
        raise InvalidRequest(str(exc)) from exc
    return _json(broker, tenant, app)


async def list_legacy_apps(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    async with broker.sessions() as session:
        scope = scoped(session, tenant)
        await _scope_tenant(scope)
        return [_json(broker, tenant, a) for a in await legacy_apps.list_apps(scope)]


async def set_legacy_app_status(broker: Broker, tenant: str, entity_id: str,
                                status: str) -> dict[str, Any]:
    async with tenant_scope(broker.sessions, tenant) as scope:
        await _scope_tenant(scope)
        app = await legacy_apps.set_status(scope, entity_id, status, now=broker.clock.now())
    if app is None:
        raise NotFound(f"no legacy app {entity_id!r} in tenant {tenant!r}")
    return _json(broker, tenant, app)


# -- HTTP ----------------------------------------------------------------------------------

async def _create(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    return await create_legacy_app(broker, request.path_params["tenant"], body)


async def _list(request: Request, broker: Broker, _body: dict[str, Any]) -> Any:
    return await list_legacy_apps(broker, request.path_params["tenant"])


def _status(status: str) -> admin_api.Handler:
    async def run(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
        entity_id = body.get("entity_id")
        if not isinstance(entity_id, str) or not entity_id:
            raise InvalidRequest("entity_id is required")
        return await set_legacy_app_status(broker, request.path_params["tenant"], entity_id,
                                           status)

    return run


def routes() -> list[Route]:
    apps = "/admin/v1/tenants/{tenant}/legacy-apps"
    endpoint = admin_api.endpoint
    return [
        Route(apps, endpoint(_list), methods=["GET"]),
        Route(apps, endpoint(_create, 201), methods=["POST"]),
        Route(apps + "/disable", endpoint(_status("disabled")), methods=["POST"]),
        Route(apps + "/enable", endpoint(_status("active")), methods=["POST"]),
    ]
