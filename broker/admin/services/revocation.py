"""Revocation by token, grant, agent, user, partner or the whole tenant (universal logout);
instant on every replica (``tenants.token_state``). Resource servers that validate tokens
locally read the signed feed ``GET /t/{t}/revocations`` (``broker.endpoints.revocation_feed``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from adapters import subjects
from adapters.errors import InvalidRequest, InvalidToken, NotFound
from broker.admin.models.runtime import RevokeOut, RevokeRequest
from broker.admin.services.common import existing_tenant
from broker.endpoints.revoke import revoke_jti
from broker.runtime import Broker
from broker.tokens import verify_access_token
from registry import partners
from tenants import grants, revocation_cutoffs
from tenants.models import Client, Grant, Partner, TrustLink
from tenants.scope import TenantScope, tenant_scope


async def revoke(broker: Broker, tenant: str, body: RevokeRequest) -> RevokeOut:
    """A user of another issuer is named by the ``sub`` their tokens carry here (``x.…``) or
    by ``issuer`` and their ``sub`` at that issuer (``adapters.subjects``)."""
    by, value = body.by, body.value
    if body.issuer is not None:
        assert value is not None
        value = subjects.foreign_sub(tenant, body.issuer, value)
    await existing_tenant(broker, tenant, change=True)
    reason = body.reason or f"revoked by {by} (admin)"
    now = broker.clock.now()
    if by == "token":
        assert value is not None
        return await _revoke_token(broker, tenant, value, reason)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            value = await _cut(scope, tenant, by, str(value), reason, now)
    except ValueError as exc:  # tenants.revocation_cutoffs refuses the subject
        raise InvalidRequest(str(exc)) from exc
    return RevokeOut(tenant=tenant, by=by, value=value, revoked_at=now)


async def _cut(scope: TenantScope, tenant: str, by: str, value: str, reason: str,
               now: float) -> str:
    """Revoke the population ``by`` names; answers the value it was recorded under."""
    if by == "grant":
        grant = await scope.get(Grant, value)
        if grant is None:
            raise NotFound(f"no grant {value!r}")
        await grants.revoke(scope, grant, now=now, reason=reason)
    elif by == "agent":
        if await scope.get(Client, value) is None:
            raise NotFound(f"no agent {value!r} in tenant {tenant!r}")
        await revocation_cutoffs.revoke_client(scope, value, now=now, reason=reason)
    elif by == "user":
        await revocation_cutoffs.revoke_user(scope, value, now=now, reason=reason)
    elif by == "partner":
        issuer = await _partner_issuer(scope.session, value)
        await revocation_cutoffs.cut(scope, "partner", issuer, now=now, reason=reason,
                                     detail={"partner": value})
        return issuer
    else:
        await revocation_cutoffs.revoke_tenant(scope, now=now, reason=reason)
        return tenant
    return value


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


async def _revoke_token(broker: Broker, tenant: str, value: str, reason: str) -> RevokeOut:
    view = await broker.tenant(tenant)
    if value.count(".") != 2:  # a refresh token: its grant ends
        async with tenant_scope(broker.sessions, tenant) as scope:
            grant = await grants.by_refresh_token(scope, value)
            if grant is None:
                raise NotFound("unknown refresh token")
            await grants.revoke(scope, grant, now=broker.clock.now(), reason=reason)
        return RevokeOut(tenant=tenant, by="token", grant=grant.id)
    try:
        claims = await verify_access_token(broker, view, value, check_state=False)
    except InvalidToken as exc:
        raise InvalidRequest(f"not an access token of this tenant: {exc.description}") from exc
    await revoke_jti(broker, view, claims["jti"], float(claims["exp"]), claims["client_id"],
                     subject=str(claims.get("sub")), reason=reason)
    return RevokeOut(tenant=tenant, by="token", jti=claims["jti"])
