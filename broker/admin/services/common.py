"""What every area of the admin services needs: the tenant a path names, and error types."""

from __future__ import annotations

from adapters.errors import InvalidRequest, NotFound
from broker.runtime import Broker
from tenants.models import Tenant


def refused(exc: Exception) -> InvalidRequest:
    """A domain refusal (``DirectoryError``, ``RegistryError``, ...) as a 400."""
    return InvalidRequest(str(exc))


def no_tenant(name: str) -> NotFound:
    return NotFound(f"no tenant {name!r}")


async def existing_tenant(broker: Broker, name: str, *, change: bool = False) -> Tenant:
    """The tenant (any status), or ``NotFound``; with ``change``, an archived tenant is
    refused (its rows stay as they were when it was archived)."""
    async with broker.sessions() as session:
        tenant = await session.get(Tenant, name)
    if tenant is None:
        raise no_tenant(name)
    if change and tenant.status == "archived":
        raise InvalidRequest(f"tenant {name!r} is archived: nothing of it can be changed")
    return tenant


def seconds(value: float | None) -> int | None:
    return None if value is None else int(value)
