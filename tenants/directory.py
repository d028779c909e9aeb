"""Tenants: create, list, change, status (active, disabled, archived), and the directory
epoch every change to a tenant or its clients moves on (clients: ``tenants.clients``).

``archived`` is final: the tenant refuses every request as if it did not exist, its rows and
audit chain stay (for audit and export), and its name is never reused (its issuer must not
come to mean somebody else).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.errors import Conflict
from tenants import audit
from tenants.models import DirectoryEpoch, Tenant
from tenants.settings import TenantSettings

TENANT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
STATUSES = ("active", "disabled", "archived")


class DirectoryError(ValueError):
    """A request to change the directory that cannot be honoured (bad name, a state that does
    not allow it...). A name or client_id that is taken is a ``Conflict`` (409) instead."""


async def bump_epoch(session: AsyncSession, tenant_id: str) -> None:
    """Every change to a tenant or its clients moves its epoch on, in the same transaction:
    processes that cached the old state find out when they record their next decision."""
    result = await session.execute(
        update(DirectoryEpoch).where(DirectoryEpoch.tenant_id == tenant_id)
        .values(epoch=DirectoryEpoch.epoch + 1).execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        session.add(DirectoryEpoch(tenant_id=tenant_id, epoch=1))
        await session.flush()


async def create_tenant(
    session: AsyncSession, name: str, *, display_name: str | None = None,
    settings: TenantSettings | None = None, now: float,
) -> Tenant:
    if not TENANT_NAME.match(name):
        raise DirectoryError("tenant name: 1-64 of a-z, 0-9 and '-', not starting or ending in '-'")
    if await session.get(Tenant, name) is not None:
        raise Conflict(f"tenant {name!r} exists")
    tenant = Tenant(id=name, display_name=display_name or name, status="active",
                    created_at=now, settings=(settings or TenantSettings()).to_dict())
    session.add(tenant)
    await session.flush()
    await bump_epoch(session, name)
    await audit.record(session, name, [audit.Event("tenant.created", "changed")], now)
    return tenant


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.execute(select(Tenant).order_by(Tenant.id))).scalars().all()


async def _existing(session: AsyncSession, name: str) -> Tenant:
    tenant = await session.get(Tenant, name)
    if tenant is None:
        raise LookupError(name)
    return tenant


async def set_tenant_status(session: AsyncSession, name: str, status: str, now: float) -> Tenant:
    if status not in STATUSES:
        raise DirectoryError(f"status: one of {', '.join(STATUSES)}")
    tenant = await _existing(session, name)
    if tenant.status == "archived":
        raise DirectoryError("an archived tenant stays archived")
    tenant.status = status
    await bump_epoch(session, name)
    await audit.record(session, name, [audit.Event(
        f"tenant.{status}", "revoked" if status == "archived" else "changed")], now)
    return tenant


async def update_tenant(session: AsyncSession, name: str, *, now: float,
                        display_name: str | None = None,
                        settings: TenantSettings | None = None) -> Tenant:
    """Set the display name and/or replace the settings (already merged and validated)."""
    tenant = await _existing(session, name)
    if tenant.status == "archived":
        raise DirectoryError("an archived tenant cannot be changed")
    detail: dict[str, Any] = {}
    if display_name is not None:
        tenant.display_name = detail["display_name"] = display_name
    if settings is not None:
        before: Mapping[str, Any] = tenant.settings or {}
        after = settings.to_dict()
        tenant.settings = after  # a new object: the JSON column sees the change
        detail["settings"] = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    await bump_epoch(session, name)
    await audit.record(session, name, [audit.Event("tenant.updated", "changed",
                                                   detail=detail)], now)
    return tenant
