"""Runtime control in the admin API (and, through the same functions, the CLI):

    POST /admin/v1/tenants/{t}/agents/{client_id}/suspend | resume | retire   {"reason"?}
    PUT  /admin/v1/tenants/{t}/agents/{client_id}        {"owner"?, "purpose"?, "expires_at"?}
    GET  /admin/v1/tenants/{t}/agents/{client_id}
    POST /admin/v1/tenants/{t}/users/{sub}/disable | enable                  {"reason"?}
    POST /admin/v1/tenants/{t}/revoke  {"by": token|grant|agent|user|partner|tenant,
                                        "value": ..., "reason"?}

Each takes effect on the next request on every replica (see ``tenants.token_state``) and is
in the tenant's audit chain. The revocation feed for resource servers that validate tokens
locally is ``GET /t/{t}/revocations`` (``broker.endpoints.revocation_feed``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.routing import Route

from adapters import subjects
from adapters.errors import InvalidRequest, InvalidToken, NotFound
from broker.endpoints import admin as admin_api
from broker.endpoints import revocation_feed
from broker.endpoints.revoke import revoke_jti
from broker.management import client_json, existing_tenant
from broker.runtime import Broker
from broker.tokens import verify_access_token
from registry import partners
from tenants import agents, audit, grants, revocation_cutoffs, users
from tenants.models import Client, Grant, Partner, TrustLink
from tenants.scope import TenantScope, tenant_scope

REVOKE_BY = ("token", "grant", "agent", "user", "partner", "tenant")
AGENT_ACTIONS = {"suspend": agents.suspend, "resume": agents.resume, "retire": agents.retire}


def agent_json(client: Client) -> dict[str, Any]:
    return {**client_json(client), "owner": client.owner, "purpose": client.purpose,
            "expires_at": client.expires_at}


async def agent_action(
    broker: Broker, tenant: str, client_id: str, action: str, reason: str = ""
) -> dict[str, Any]:
    """``suspend``, ``resume`` or ``retire`` the agent."""
    return await _change_agent(broker, tenant, client_id, lambda scope: AGENT_ACTIONS[action](
        scope, client_id, now=broker.clock.now(), reason=reason))


async def describe_agent(
    broker: Broker, tenant: str, client_id: str, **fields: Any
) -> dict[str, Any]:
    """Set the given ``owner``, ``purpose``, ``expires_at`` (None clears)."""
    return await _change_agent(broker, tenant, client_id, lambda scope: agents.describe(
        scope, client_id, now=broker.clock.now(), **fields))


async def _change_agent(
    broker: Broker, tenant: str, client_id: str,
    change: Callable[[TenantScope], Awaitable[Client]],
) -> dict[str, Any]:
    """One change to an agent in one unit of work; unknown agents are 404, refused changes
    400; this process's directory cache forgets the tenant."""
    await existing_tenant(broker, tenant)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            client = await change(scope)
    except LookupError as exc:
        raise NotFound(f"no agent {client_id!r} in tenant {tenant!r}") from exc
    except agents.LifecycleError as exc:
        raise InvalidRequest(str(exc)) from exc
    broker.forget_directory(tenant)
    return agent_json(client)


async def get_agent(broker: Broker, tenant: str, client_id: str) -> dict[str, Any]:
    async with tenant_scope(broker.sessions, tenant) as scope:
        client = await scope.get(Client, client_id)
    if client is None:
        raise NotFound(f"no agent {client_id!r} in tenant {tenant!r}")
    return agent_json(client)


async def set_user_status(
    broker: Broker, tenant: str, user_id: str, status: str, reason: str = ""
) -> dict[str, Any]:
    """Disabling a user ends their sessions and grants and revokes their tokens."""
    await existing_tenant(broker, tenant)
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
    return {"tenant": tenant, "sub": user.id, "status": user.status, "email": user.email}


async def revoke(
    broker: Broker, tenant: str, by: str, value: str | None, reason: str = "",
    issuer: str | None = None,
) -> dict[str, Any]:
    """Revoke by token (an access or refresh token), grant (id), agent (client_id), user
    (sub), partner (partner id or issuer) or the whole tenant (universal logout).

    A user of another issuer is named by the ``sub`` their tokens carry here (``x.…``) or by
    ``issuer`` and their ``sub`` at that issuer (``adapters.subjects``)."""
    if by not in REVOKE_BY:
        raise InvalidRequest(f"by: one of {', '.join(REVOKE_BY)}")
    if by != "tenant" and (not isinstance(value, str) or not value or len(value) > 8192):
        raise InvalidRequest("value is required")
    if issuer is not None:
        if by != "user" or not issuer or len(issuer) > 512:
            raise InvalidRequest("issuer names a user of another issuer: only with by=user")
        assert value is not None
        value = subjects.foreign_sub(tenant, issuer, value)
    await existing_tenant(broker, tenant)
    reason = reason or f"revoked by {by} (admin)"
    now = broker.clock.now()
    if by == "token":
        assert value is not None
        return await _revoke_token(broker, tenant, value, reason)
    async with tenant_scope(broker.sessions, tenant) as scope:
        if by == "grant":
            grant = await scope.get(Grant, value)
            if grant is None:
                raise NotFound(f"no grant {value!r}")
            await grants.revoke(scope, grant, now=now, reason=reason)
        elif by == "agent":
            if await scope.get(Client, value) is None:
                raise NotFound(f"no agent {value!r} in tenant {tenant!r}")
            await revocation_cutoffs.revoke_client(scope, str(value), now=now, reason=reason)
        elif by == "user":
            await revocation_cutoffs.revoke_user(scope, str(value), now=now, reason=reason)
        elif by == "partner":
            issuer = await _partner_issuer(scope.session, str(value))
            await revocation_cutoffs.cut(scope, "partner", issuer, now=now, reason=reason,
                                         detail={"partner": value})
            value = issuer
        else:
            await revocation_cutoffs.revoke_tenant(scope, now=now, reason=reason)
            value = tenant
    return {"tenant": tenant, "by": by, "value": value, "revoked_at": now}


async def _partner_issuer(session: Any, value: str) -> str:
    partner = await session.get(Partner, value)
    if partner is not None:
        return str(partner.issuer)
    if await partners.by_issuer(session, value) is not None:
        return value
    linked = await session.execute(select(TrustLink.id).where(TrustLink.issuer == value))
    if linked.first() is not None:
        return value
    raise NotFound(f"no partner {value!r}")


async def _revoke_token(broker: Broker, tenant: str, value: str, reason: str) -> dict[str, Any]:
    view = await broker.tenant(tenant)
    if value.count(".") != 2:  # a refresh token: its grant ends
        async with tenant_scope(broker.sessions, tenant) as scope:
            grant = await grants.by_refresh_token(scope, value)
            if grant is None:
                raise NotFound("unknown refresh token")
            await grants.revoke(scope, grant, now=broker.clock.now(), reason=reason)
        return {"tenant": tenant, "by": "token", "grant": grant.id}
    try:
        claims = await verify_access_token(broker, view, value, check_state=False)
    except InvalidToken as exc:
        raise InvalidRequest(f"not an access token of this tenant: {exc.description}") from exc
    await revoke_jti(broker, view, claims["jti"], float(claims["exp"]), claims["client_id"],
                     subject=str(claims.get("sub")), reason=reason)
    return {"tenant": tenant, "by": "token", "jti": claims["jti"]}


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidRequest("reason: a string of at most 500 characters")
    return reason


async def _describe(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    fields = {k: body[k] for k in ("owner", "purpose", "expires_at") if k in body}
    if not fields:
        raise InvalidRequest("give at least one of owner, purpose, expires_at")
    return await describe_agent(broker, request.path_params["tenant"],
                                request.path_params["client_id"], **fields)


async def _revoke(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    by, value, issuer = body.get("by"), body.get("value"), body.get("issuer")
    if not isinstance(by, str) or any(v is not None and not isinstance(v, str)
                                      for v in (value, issuer)):
        raise InvalidRequest("by, value and issuer must be strings")
    return await revoke(broker, request.path_params["tenant"], by, value, _reason(body), issuer)


def routes() -> list[Route]:
    endpoint = admin_api.endpoint
    t = "/admin/v1/tenants/{tenant}"
    a = t + "/agents/{client_id}"
    u = t + "/users/{sub}"
    return [
        Route(a, endpoint(lambda r, b, _: get_agent(
            b, r.path_params["tenant"], r.path_params["client_id"])), methods=["GET"]),
        Route(a, endpoint(_describe), methods=["PUT"]),
        *[Route(f"{a}/{verb}", endpoint(
            lambda r, b, body, verb=verb: agent_action(
                b, r.path_params["tenant"], r.path_params["client_id"], verb, _reason(body))),
            methods=["POST"]) for verb in AGENT_ACTIONS],
        *[Route(f"{u}/{verb}", endpoint(
            lambda r, b, body, status=status: set_user_status(
                b, r.path_params["tenant"], r.path_params["sub"], status, _reason(body))),
            methods=["POST"]) for verb, status in (("disable", "disabled"),
                                                   ("enable", "active"))],
        Route(t + "/revoke", endpoint(_revoke), methods=["POST"]),
        *revocation_feed.routes(),
    ]
