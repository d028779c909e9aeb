"""The authorization code grant (OAuth 2.1 §4.1.3) with PKCE (RFC 7636, S256 only), DPoP
binding of the code (RFC 9449 §10), ID tokens (OpenID Connect Core §3.1.3.3) and rotating
refresh tokens. A code is used once; a second use revokes the grant the first one made."""

from __future__ import annotations

import hmac
import re
from typing import Any, ClassVar

from adapters.errors import InvalidGrant, InvalidRequest, OAuthError
from adapters.oidc_checks import s256_challenge
from broker.authorization_request import AuthorizationRequest
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.client_credentials import granted_audience
from broker.tokens import access_token_claims, mint_access_token, mint_id_token
from tenants import grants, pending
from tenants.models import Grant, User
from tenants.scope import TenantScope, tenant_scope

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
AUTHORIZATION_CODE = "authorization_code"


def check_verifier(verifier: str | None, challenge: str) -> None:
    if verifier is None:
        raise InvalidRequest("code_verifier is required")
    if not VERIFIER.match(verifier):
        raise InvalidRequest("code_verifier must be 43-128 characters of [A-Za-z0-9-._~]")
    if not hmac.compare_digest(s256_challenge(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")


async def issue_user_tokens(
    request: TokenRequest, grant: Grant, user: User, *, scope: tuple[str, ...],
    details: list[dict[str, Any]], refresh_token: str, nonce: str | None = None,
    sid: str | None = None, id_claims: dict[str, Any] | None = None,
) -> GrantResult:
    """The access token, ID token and refresh token of a user grant (code, refresh, CIBA);
    ``id_claims``: more ID token claims (CIBA push mode)."""
    tenant, client = request.tenant, request.client.client
    lifetime = min(client.access_token_lifetime, tenant.settings.max_token_lifetime)
    claims = access_token_claims(
        issuer=tenant.issuer, subject=user.id, client_id=client.client_id,
        audience=grant.audience, scope=scope, now=request.now, lifetime=lifetime,
        jkt=request.dpop.jkt if request.dpop else None, jti=grants.access_jti(grant.id),
        authorization_details=details, x5t=request.cert_thumbprint)
    token = await mint_access_token(request.broker, tenant, claims)
    extra: dict[str, Any] = {"refresh_token": refresh_token}
    if "openid" in scope:
        extra["id_token"] = await mint_id_token(
            request.broker, tenant, user=user, client_id=client.client_id, scope=scope,
            auth=grant.auth, now=request.now, nonce=nonce, sid=sid, access_token=token.token,
            extra=id_claims)
    if details:
        extra["authorization_details"] = details
    return GrantResult(token, scope, user.id, {"grant": grant.id}, extra=extra)


class AuthorizationCodeGrant:
    grant_type: ClassVar[str] = AUTHORIZATION_CODE
    stateful: ClassVar[bool] = True
    public: ClassVar[bool] = True

    async def issue(self, request: TokenRequest) -> GrantResult:
        form, broker, tenant = request.form, request.broker, request.tenant
        client = request.client.client
        code = form.require("code")
        if len(code) > 200:
            raise InvalidGrant("unknown authorization code")
        # One unit of work takes the code and records the grant it makes: a concurrent second
        # use waits for it and then finds the grant to revoke.
        failure: OAuthError | None = None
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            row, used = await pending.take_code(scope, code, request.now)
            if used is not None:
                first = used.payload.get("grant_id")
                grant = await scope.get(Grant, first) if first else None
                if grant is not None:
                    await grants.revoke(scope, grant, now=request.now,
                                        reason="authorization code used twice")
                failure = InvalidGrant("the authorization code was already used")
            elif row is None or row.client_id != client.client_id:
                failure = InvalidGrant("unknown, expired or foreign authorization code")
            else:
                try:
                    req, user = await self._check(request, scope, row.payload)
                except OAuthError as exc:  # the code stays used: one attempt per code
                    failure = exc
                else:
                    jkt = request.dpop.jkt if request.dpop else None
                    # req.resource was checked at /authorize (an audience of the client or
                    # a resource server that lets it in)
                    audience = tuple(req.resource) or granted_audience(
                        [], client.audiences, tenant.issuer)
                    grant = await grants.create(
                        scope, client_id=client.client_id, user_id=user.id,
                        scope_=list(req.scope), details=list(req.authorization_details),
                        audience=list(audience), auth=row.payload.get("auth") or {},
                        session_id=row.payload.get("sid"), now=request.now,
                        lifetime=tenant.settings.refresh_token_lifetime)
                    refresh = await grants.add_refresh_token(
                        scope, grant, jkt=jkt if client.public else None, now=request.now)
                    row.payload = {**row.payload, "grant_id": grant.id}
        if failure is not None:
            raise failure
        assert row is not None
        return await issue_user_tokens(
            request, grant, user, scope=req.scope, details=list(req.authorization_details),
            refresh_token=refresh, nonce=req.nonce, sid=row.payload.get("sid"))

    @staticmethod
    async def _check(request: TokenRequest, scope: TenantScope,
                     payload: dict[str, Any]) -> tuple[AuthorizationRequest, User]:
        """The redemption matches the authorization request: redirect URI, PKCE verifier,
        DPoP key (``dpop_jkt``); and the user is still active."""
        req = AuthorizationRequest.from_payload(payload["request"])
        if request.form.get("redirect_uri") != req.redirect_uri:
            raise InvalidGrant("redirect_uri differs from the authorization request's")
        check_verifier(request.form.get("code_verifier"), req.code_challenge)
        jkt = request.dpop.jkt if request.dpop else None
        if req.dpop_jkt is not None and req.dpop_jkt != jkt:
            raise InvalidGrant("the code is bound to another DPoP key (dpop_jkt)")
        user = await scope.get(User, payload["user_id"])
        if user is None or user.status != "active":
            raise InvalidGrant("the user is no longer active")
        return req, user
