"""The client credentials grant (RFC 6749 §4.4) with RFC 8707 resource indicators.

A ``resource`` is one of the client's audiences or a resource server registered at the tenant
that lets this client in (``broker.resources``); for a registered one the scope must be among
the scopes it defines (and the client's), nothing asked gets its default scopes, and its
lifetime and sender constraint apply."""

from __future__ import annotations

from typing import ClassVar

from adapters.errors import InvalidScope, InvalidTarget
from broker import resources
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
        asked = request.form.get("scope")
        named = request.form.all("resource")
        targets = await registered_targets(request, named)
        x5t = resources.certificate_binding(targets, request.cert_thumbprint,
                                            request.presented_x5t)
        if targets:
            scope = _registered_scope(targets, asked, client.scopes)
            audience = tuple(dict.fromkeys(named))
            for rs in targets:
                resources.check_binding(rs, dpop_jkt=request.dpop.jkt if request.dpop else None,
                                        x5t=x5t)
        else:
            scope = granted_scopes(asked, client.scopes)
            audience = granted_audience(named, client.audiences, request.tenant.issuer)
        lifetime = min(client.access_token_lifetime, request.tenant.settings.max_token_lifetime,
                       *(rs.access_token_lifetime for rs in targets))
        claims = access_token_claims(
            issuer=request.tenant.issuer,
            subject=client.client_id,
            client_id=client.client_id,
            audience=audience,
            scope=scope,
            now=request.now,
            lifetime=lifetime,
            jkt=request.dpop.jkt if request.dpop else None,
            x5t=x5t,
        )
        token = await mint_access_token(request.broker, request.tenant, claims)
        return GrantResult(token, scope, client.client_id, {"aud": list(audience)})


async def registered_targets(request: TokenRequest,
                             named: list[str]) -> list[resources.ResourceServer]:
    """The registered resource servers among the ``resource`` parameters (``invalid_target``
    for one that does not let this client in); every other one must be one of the client's
    audiences (``invalid_target``)."""
    client = request.client.client
    found: list[resources.ResourceServer] = []
    for identifier in dict.fromkeys(named):
        rs = await request.broker.resource_server_at(request.tenant, identifier,
                                                    client.audiences)
        if rs is not None:
            if not rs.allows_client(client.client_id):
                raise InvalidTarget(f"client {client.client_id} may not get tokens for "
                                    f"{identifier}")
            found.append(rs)
        elif identifier not in client.audiences:
            raise InvalidTarget(f"resource not allowed for this client: {identifier}")
    return found


def _registered_scope(targets: list[resources.ResourceServer], asked: str | None,
                      registered: list[str]) -> tuple[str, ...]:
    scope: tuple[str, ...] = ()
    for rs in targets:
        scope = resources.resolve_scope(rs, asked.split() if asked is not None else None)
    outside = [s for s in scope if s not in registered]
    if outside:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(outside)}")
    return scope
