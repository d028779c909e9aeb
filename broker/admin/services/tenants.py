"""Tenants: create, list, read, change (merge patch of the settings), disable/enable, archive.

Archiving (``DELETE``) is final: the tenant answers nothing any more (as if it did not exist),
every token, grant and session of it is revoked, and its rows and audit chain stay for audit
and export; the name is never given out again, so its issuer cannot come to mean someone else.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from broker.admin.errors import validation_error
from broker.admin.models.tenants import TenantCreate, TenantOut, TenantPatch
from broker.admin.services.common import existing_tenant, no_tenant, refused
from broker.runtime import Broker
from tenants import directory, revocation_cutoffs, webhook_secrets
from tenants.models import Tenant
from tenants.scope import scoped
from tenants.settings import TenantSettings


def tenant_out(broker: Broker, tenant: Tenant) -> TenantOut:
    return TenantOut(id=tenant.id, display_name=tenant.display_name, status=tenant.status,
                     issuer=broker.issuer(tenant.id), created_at=int(tenant.created_at),
                     settings=TenantSettings.of(tenant))


async def create_tenant(broker: Broker, body: TenantCreate) -> TenantOut:
    try:
        async with broker.sessions() as session, session.begin():
            tenant = await directory.create_tenant(
                session, body.name, display_name=body.display_name, settings=body.settings,
                now=broker.clock.now())
            webhook_secrets.create(scoped(session, body.name), broker.sealer)
            await broker.keys.ensure(body.name, session)
    except directory.DirectoryError as exc:
        raise refused(exc) from exc
    return tenant_out(broker, tenant)


async def list_tenants(broker: Broker) -> list[TenantOut]:
    async with broker.sessions() as session:
        return [tenant_out(broker, t) for t in await directory.list_tenants(session)]


async def get_tenant(broker: Broker, name: str) -> TenantOut:
    return tenant_out(broker, await existing_tenant(broker, name))


def merged_settings(tenant: str, stored: dict[str, Any], patch: Any, *,
                    allow_http_loopback: bool) -> TenantSettings:
    """RFC 7396 over the stored settings: a given value replaces, null removes (the default
    applies); the result is validated whole. Keys this version does not know are dropped."""
    current = TenantSettings.load(stored, tenant=tenant).to_dict()
    for name in patch.model_fields_set:
        value = getattr(patch, name)
        if value is None:
            current.pop(name, None)
        else:
            current[name] = patch.model_dump(mode="json", include={name})[name]
    return TenantSettings.model_validate(
        current, context={"allow_http_loopback": allow_http_loopback})


async def update_tenant(broker: Broker, name: str, body: TenantPatch) -> TenantOut:
    tenant = await existing_tenant(broker, name, change=True)
    settings = None
    if "settings" in body.model_fields_set and body.settings is not None:
        try:
            settings = merged_settings(
                name, tenant.settings or {}, body.settings,
                allow_http_loopback=broker.settings.allow_http_loopback)
        except ValidationError as exc:
            raise validation_error(exc, prefix=("settings",)) from None
    try:
        async with broker.sessions() as session, session.begin():
            tenant = await directory.update_tenant(
                session, name, now=broker.clock.now(), display_name=body.display_name,
                settings=settings)
    except LookupError as exc:
        raise no_tenant(name) from exc
    except directory.DirectoryError as exc:
        raise refused(exc) from exc
    broker.forget_directory(name)
    return tenant_out(broker, tenant)


async def set_tenant_status(broker: Broker, name: str, status: str) -> TenantOut:
    try:
        async with broker.sessions() as session, session.begin():
            tenant = await directory.set_tenant_status(session, name, status,
                                                       broker.clock.now())
    except LookupError as exc:
        raise no_tenant(name) from exc
    except directory.DirectoryError as exc:
        raise refused(exc) from exc
    broker.forget_directory(name)
    return tenant_out(broker, tenant)


async def archive_tenant(broker: Broker, name: str) -> TenantOut:
    """Archive (final) and revoke every token, grant and session of the tenant."""
    now = broker.clock.now()
    try:
        async with broker.sessions() as session, session.begin():
            tenant = await directory.set_tenant_status(session, name, "archived", now)
            await revocation_cutoffs.revoke_tenant(scoped(session, name), now=now,
                                                   reason="tenant archived")
    except LookupError as exc:
        raise no_tenant(name) from exc
    except directory.DirectoryError as exc:
        raise refused(exc) from exc
    broker.forget_directory(name)
    return tenant_out(broker, tenant)
