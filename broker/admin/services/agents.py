"""Agent lifecycle (suspend, resume, retire, describe) and a tenant's users (list, disable,
enable). Each takes effect on the next request on every replica (``tenants.token_state``)
and is in the tenant's audit chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select

from adapters.errors import InvalidRequest, NotFound
from broker.admin.models.clients import ClientOut
from broker.admin.models.runtime import AgentPut, UserOut, UserStatusOut
from broker.admin.services.clients import client_out
from broker.admin.services.common import existing_tenant, seconds
from broker.runtime import Broker
from tenants import agents, audit, revocation_cutoffs, users
from tenants.models import Client, User
from tenants.scope import TenantScope, scoped, tenant_scope

AGENT_ACTIONS = {"suspend": agents.suspend, "resume": agents.resume, "retire": agents.retire}


async def agent_action(broker: Broker, tenant: str, client_id: str, action: str,
                       reason: str = "") -> ClientOut:
    """``suspend``, ``resume`` or ``retire`` the agent."""
    return await _change_agent(broker, tenant, client_id, lambda scope: AGENT_ACTIONS[action](
        scope, client_id, now=broker.clock.now(), reason=reason))


async def describe_agent(broker: Broker, tenant: str, client_id: str,
                         body: AgentPut) -> ClientOut:
    """Set the given ``owner``, ``purpose``, ``expires_at`` (None clears)."""
    fields = body.model_dump(include=body.model_fields_set)
    return await _change_agent(broker, tenant, client_id, lambda scope: agents.describe(
        scope, client_id, now=broker.clock.now(), **fields))


async def _change_agent(broker: Broker, tenant: str, client_id: str,
                        change: Callable[[TenantScope], Awaitable[Client]]) -> ClientOut:
    """One change to an agent in one unit of work; unknown agents are 404, refused changes
    400; this process's directory cache forgets the tenant."""
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            client = await change(scope)
    except LookupError as exc:
        raise NotFound(f"no agent {client_id!r} in tenant {tenant!r}") from exc
    except agents.LifecycleError as exc:
        raise InvalidRequest(str(exc)) from exc
    broker.forget_directory(tenant)
    return client_out(client)


async def get_agent(broker: Broker, tenant: str, client_id: str) -> ClientOut:
    async with tenant_scope(broker.sessions, tenant) as scope:
        client = await scope.get(Client, client_id)
    if client is None:
        raise NotFound(f"no agent {client_id!r} in tenant {tenant!r}")
    return client_out(client)


async def list_users(broker: Broker, tenant: str) -> list[UserOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(User).order_by(User.created_at))).scalars().all()
    return [UserOut(sub=u.id, email=u.email, name=u.name, groups=list(u.groups or []),
                    status=u.status, created_at=int(u.created_at),
                    last_login_at=seconds(u.last_login_at)) for u in rows]


async def set_user_status(broker: Broker, tenant: str, user_id: str, status: str,
                          reason: str = "") -> UserStatusOut:
    """Disabling a user ends their sessions and grants and revokes their tokens."""
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            user = await users.set_status(scope, user_id, status)
            await audit.record(scope.session, tenant, [audit.Event(
                f"user.{status}", "revoked" if status == "disabled" else "changed",
                subject=user_id, detail={"reason": reason})], now)
            if status == "disabled":
                await revocation_cutoffs.revoke_user(
                    scope, user_id, now=now, reason=reason or "user disabled")
    except LookupError as exc:
        raise NotFound(f"no user {user_id!r} in tenant {tenant!r}") from exc
    return UserStatusOut(tenant=tenant, sub=user.id, status=user.status, email=user.email)
