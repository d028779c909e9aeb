"""The refresh token grant (OAuth 2.1 §4.3) with rotation and reuse detection: every use
returns a new refresh token; a rotated one presented again revokes the grant (RFC 9700
§4.14.2). Refresh tokens of public clients that used DPoP are bound to the key (RFC 9449 §5).
Scope and authorization details only narrow (RFC 6749 §6, RFC 9396 §7)."""

from __future__ import annotations

from typing import ClassVar

from adapters import rar
from adapters.errors import InvalidAuthorizationDetails, InvalidGrant, InvalidScope
from broker.grants.authorization_code import issue_user_tokens
from broker.grants.base import GrantResult, TokenRequest
from tenants import grants
from tenants.models import User
from tenants.scope import tenant_scope


class RefreshTokenGrant:
    grant_type: ClassVar[str] = "refresh_token"
    stateful: ClassVar[bool] = True
    public: ClassVar[bool] = True

    async def issue(self, request: TokenRequest) -> GrantResult:
        form, broker, tenant = request.form, request.broker, request.tenant
        client = request.client.client
        value = form.require("refresh_token")
        jkt = request.dpop.jkt if request.dpop else None
        reused = False
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            try:
                presented = await grants.use_refresh_token(
                    scope, value, client_id=client.client_id, jkt=jkt, now=request.now)
            except grants.RefreshReused:
                presented, reused = None, True
            if presented is not None:
                grant = presented.grant
                asked = form.get("scope")
                wanted = tuple(dict.fromkeys(asked.split())) if asked else tuple(grant.scope)
                broader = [s for s in wanted if s not in grant.scope]
                details = list(rar.parse(form.get("authorization_details"))) or list(
                    grant.authorization_details)
                user = await scope.get(User, grant.user_id)
                # raising inside the unit of work rolls the rotation back
                if user is None or user.status != "active":
                    raise InvalidGrant("the user is no longer active")
                if broader:
                    raise InvalidScope(f"scope broader than the grant: {' '.join(broader)}")
                if not rar.covered(details, grant.authorization_details):
                    raise InvalidAuthorizationDetails("authorization_details broader than "
                                                      "the grant")
                refresh = await grants.add_refresh_token(
                    scope, grant, jkt=presented.token.jkt, now=request.now)
        if reused:
            raise InvalidGrant("refresh token reused: the grant is revoked")
        if presented is None:
            raise InvalidGrant("unknown, expired, revoked or foreign refresh token")
        return await issue_user_tokens(request, grant, user, scope=wanted, details=details,
                                       refresh_token=refresh, sid=grant.session_id)

