"""Legacy apps (SAML service providers) of a tenant: register (fields or SP metadata), list,
read, change, disable/enable, delete. The answer also names what to configure at the app: the
IdP metadata URL and SSO URL."""

from __future__ import annotations

from adapters.errors import InvalidRequest, NotFound
from broker.admin.models.legacy_apps import LegacyAppCreate, LegacyAppOut, LegacyAppPatch
from broker.admin.services.common import existing_tenant
from broker.runtime import Broker
from tenants import legacy_apps
from tenants.scope import scoped, tenant_scope


def app_out(broker: Broker, tenant: str, app: legacy_apps.LegacyAppView) -> LegacyAppOut:
    issuer = broker.issuer(tenant)
    return LegacyAppOut(**app.as_json(), tenant=tenant,
                        idp_metadata_url=f"{issuer}/saml/idp/metadata",
                        idp_sso_url=f"{issuer}/saml/idp/sso")


def _missing(tenant: str, entity_id: str) -> NotFound:
    return NotFound(f"no legacy app {entity_id!r} in tenant {tenant!r}")


async def create_legacy_app(broker: Broker, tenant: str,
                            body: LegacyAppCreate) -> LegacyAppOut:
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            app = await legacy_apps.create(
                scope, body.fields(), now=broker.clock.now(),
                allow_http_loopback=broker.settings.allow_http_loopback)
    except legacy_apps.LegacyAppError as exc:
        raise InvalidRequest(str(exc)) from exc
    return app_out(broker, tenant, app)


async def list_legacy_apps(broker: Broker, tenant: str) -> list[LegacyAppOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        apps = await legacy_apps.list_apps(scoped(session, tenant))
    return [app_out(broker, tenant, a) for a in apps]


async def get_legacy_app(broker: Broker, tenant: str, entity_id: str) -> LegacyAppOut:
    async with broker.sessions() as session:
        app = await legacy_apps.get(scoped(session, tenant), entity_id)
    if app is None:
        raise _missing(tenant, entity_id)
    return app_out(broker, tenant, app)


async def update_legacy_app(broker: Broker, tenant: str, entity_id: str,
                            body: LegacyAppPatch) -> LegacyAppOut:
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            app = await legacy_apps.update(
                scope, entity_id, body.changes(), now=broker.clock.now(),
                allow_http_loopback=broker.settings.allow_http_loopback)
    except legacy_apps.LegacyAppError as exc:
        raise InvalidRequest(str(exc)) from exc
    if app is None:
        raise _missing(tenant, entity_id)
    return app_out(broker, tenant, app)


async def delete_legacy_app(broker: Broker, tenant: str, entity_id: str) -> LegacyAppOut:
    await existing_tenant(broker, tenant, change=True)
    async with tenant_scope(broker.sessions, tenant) as scope:
        app = await legacy_apps.remove(scope, entity_id, now=broker.clock.now())
    if app is None:
        raise _missing(tenant, entity_id)
    return app_out(broker, tenant, app)


async def set_legacy_app_status(broker: Broker, tenant: str, entity_id: str,
                                status: str) -> LegacyAppOut:
    await existing_tenant(broker, tenant, change=True)
    async with tenant_scope(broker.sessions, tenant) as scope:
        app = await legacy_apps.set_status(scope, entity_id, status, now=broker.clock.now())
    if app is None:
        raise _missing(tenant, entity_id)
    return app_out(broker, tenant, app)
