"""The client credentials grant (RFC 6749 §4.4) with RFC 8707 resource indicators."""

from __future__ import annotations

from typing import ClassVar

from adapters.errors import InvalidScope, InvalidTarget
from broker.grants.base import GrantResult, TokenRequest
from broker.tokens import access_token_claims, mint_access_token


def granted_scopes(requested: str | None, allowed: list[str]) -> tuple[str, ...]:
    """The requested scopes if the client may have all of them; all allowed ones if none asked."""
    if requested is None:
        return tuple(allowed)
    wanted = tuple(dict.fromkeys(requested.split()))
    refused = [s for s in wanted if s not in allowed]
    if refused:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(refused)}")
    return wanted


def granted_audience(resources: list[str], allowed: list[str], default: str) -> tuple[str, ...]:
    """RFC 8707: every ``resource`` must be one the client may address; none -> its default."""
    if not resources:
        return (allowed[0],) if allowed else (default,)
    refused = [r for r in resources if r not in allowed]
    if refused:
        raise InvalidTarget(f"resource not allowed for this client: {' '.join(refused)}")
    return tuple(dict.fromkeys(resources))


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    stateful: ClassVar[bool] = False
    public: ClassVar[bool] = False

    async def issue(self, request: TokenRequest) -> GrantResult:
        client = request.client.client
        scope = granted_scopes(request.form.get("scope"), client.scopes)
        audience = granted_audience(request.form.all("resource"), client.audiences,
                                    request.tenant.issuer)
        lifetime = min(client.access_token_lifetime, request.tenant.settings.max_token_lifetime)
        claims = access_token_claims(
            issuer=request.tenant.issuer,
            subject=client.client_id,
            client_id=client.client_id,
            audience=audience,
            scope=scope,
            now=request.now,
            lifetime=lifetime,
            jkt=request.dpop.jkt if request.dpop else None,
            x5t=request.cert_thumbprint,
        )
        token = await mint_access_token(request.broker, request.tenant, claims)
        return GrantResult(token, scope, client.client_id, {"aud": list(audience)})
