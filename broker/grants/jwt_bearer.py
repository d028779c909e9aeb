"""The JWT bearer grant (RFC 7523 §2.1) redeeming an ID-JAG at the resource tenant.

Every check below fails with ``invalid_grant`` (id-jag draft §4.3, RFC 7523 §3.1):
  typ oauth-id-jag+jwt · alg allow-listed · issuer a live trust link that **accepts** it
  (partner or tenant) · not issued by this tenant · signature by the issuer's keys · aud is
  this issuer · client_id is the authenticated client · exp/iat fresh · jti redeemed once ·
  cnf.jkt matched by the DPoP proof ·
  authorization_details of types this tenant registered and the client may use

The resource (RFC 8707) is the ID-JAG's ``resource`` claim; a ``resource`` parameter that
contradicts it is ``invalid_target``, a claim naming no resource server registered here (nor
one of the client's audiences) or one the client may not use is ``invalid_grant``.

For a registered resource server the scope is validated, never silently narrowed: what the
request asks (a subset of what the ID-JAG asserts), else what the ID-JAG asserts, else the
resource's default scopes; a scope the resource does not define or beyond the trust link's
ceiling is ``invalid_scope``, and so is no scope with no default. The token's lifetime and its
sender constraint (DPoP, mTLS) follow the resource's registration. For a resource that is only
a client's audience the scope is the intersection of what the ID-JAG asserts, what the request
asks, the trust link's ceiling and the client's registered scopes (empty: ``invalid_scope``).

The user stays the issuer's (``adapters.subjects``): the access token's ``sub`` is a pairwise
identifier that cannot name a local user, and ``sub_id`` carries the issuer and its ``sub``.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from adapters import jose, rar, subjects
from adapters.errors import InvalidAuthorizationDetails, InvalidGrant, InvalidScope, InvalidTarget
from broker import id_jag, resources
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.client_credentials import granted_audience
from broker.peer_keys import trusted_issuer_key
from broker.tokens import access_token_claims, mint_access_token
from tenants.journal import Claim

SKEW = 30
MAX_AGE = 300 + SKEW  # an ID-JAG lives five minutes at most


class JWTBearerGrant:
    grant_type: ClassVar[str] = id_jag.JWT_BEARER
    stateful: ClassVar[bool] = False
    public: ClassVar[bool] = False

    async def issue(self, request: TokenRequest) -> GrantResult:
        broker, tenant, form = request.broker, request.tenant, request.form
        client = request.client.client
        assertion = form.require("assertion")
        try:
            header = jose.unverified_header(assertion)
            claimed = jose.unverified_claims(assertion)
        except jose.JWTError as exc:
            raise InvalidGrant(f"assertion is not a JWT: {exc}") from exc
        if str(header.get("typ", "")).lower().removeprefix("application/") != id_jag.ID_JAG_TYP:
            raise InvalidGrant(f"assertion typ must be {id_jag.ID_JAG_TYP}")
        issuer = claimed.get("iss")
        if not isinstance(issuer, str):
            raise InvalidGrant("assertion has no iss")
        if issuer == tenant.issuer:
            raise InvalidGrant("an ID-JAG issued by this tenant cannot be redeemed here")
        peer, key = await trusted_issuer_key(broker, tenant.id, issuer, header, InvalidGrant)
        try:
            claims = jose.verify_jws(assertion, lambda _h: key, typ=id_jag.ID_JAG_TYP).claims
            jose.check_times(claims, request.now, leeway=SKEW)
        except jose.JWTError as exc:
            raise InvalidGrant(f"assertion refused: {exc}") from exc
        aud = claims.get("aud")
        if aud != tenant.issuer and aud != [tenant.issuer]:
            raise InvalidGrant("assertion aud is not this authorization server")
        if claims.get("client_id") != client.client_id:
            raise InvalidGrant("assertion client_id is not the authenticated client")
        iat, jti, sub = claims.get("iat"), claims.get("jti"), claims.get("sub")
        if not isinstance(iat, int | float) or iat < request.now - MAX_AGE:
            raise InvalidGrant("assertion iat missing or too old")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise InvalidGrant("assertion has no usable jti")
        if not isinstance(sub, str) or not sub:
            raise InvalidGrant("assertion has no sub")
        jkt = (claims.get("cnf") or {}).get("jkt")
        if jkt is not None:
            if request.dpop is None:
                raise InvalidGrant("the assertion is bound to a key: send a DPoP proof")
            if request.dpop.jkt != jkt:
                raise InvalidGrant("the DPoP proof key is not the one the assertion is bound to")
        bind = request.dpop.jkt if request.dpop else None
        target = await _target(request, claims.get("resource"))
        asserted = claims.get("scope")
        offered = str(asserted).split() if isinstance(asserted, str) else []
        asked = form.get("scope")
        if target is not None:
            granted = _registered_scope(target, offered, asked, peer.ceiling)
            x5t = resources.certificate_binding([target], request.cert_thumbprint,
                                                request.presented_x5t)
            resources.check_binding(target, dpop_jkt=bind, x5t=x5t)
            audience: tuple[str, ...] = (target.identifier,)
        else:
            x5t = request.cert_thumbprint
            granted = _narrowed_scope(offered, asked, peer.ceiling, client.scopes)
            resource = claims.get("resource") or form.get("resource")
            audience = granted_audience([resource] if isinstance(resource, str) else [],
                                        client.audiences, tenant.issuer)
        lifetime = min(client.access_token_lifetime, tenant.settings.max_token_lifetime,
                       target.access_token_lifetime if target else client.access_token_lifetime)
        details = claims.get("authorization_details") or []
        if details:
            try:
                rar.validate(rar.parse(json.dumps(details)), await broker.detail_types(tenant.id),
                             allowed=client.authorization_details_types)
            except InvalidAuthorizationDetails as exc:
                raise InvalidGrant(f"assertion authorization_details: {exc.description}") from exc
        foreign = subjects.foreign_claims(tenant.id, issuer, sub)
        at = access_token_claims(
            issuer=tenant.issuer, subject=foreign["sub"], client_id=client.client_id,
            audience=audience,
            scope=granted, now=request.now, lifetime=lifetime, jkt=bind,
            authorization_details=details, x5t=x5t,
        )
        # RFC 9068 §2.2.1: how the user authenticated, as the IdP tenant asserted it
        at.update({k: claims[k] for k in ("auth_time", "acr", "amr") if k in claims})
        at["act"] = {"sub": client.client_id}
        at["sub_id"] = foreign["sub_id"]
        token = await mint_access_token(broker, tenant, at)
        return GrantResult(
            token, granted, foreign["sub"],
            {"grant_type": "jwt-bearer", "issuer": issuer, "id_jag_jti": jti,
             "aud": list(audience),
             "sub_id": foreign["sub_id"]},
            claims=(Claim(hashlib.sha256(f"id_jag|{issuer}|{jti}".encode()).hexdigest(),
                          float(claims["exp"]) + SKEW, kind="grant"),),
            extra={"authorization_details": details} if details else {},
        )


async def _target(request: TokenRequest, claimed: object) -> resources.ResourceServer | None:
    """The resource the token is for (RFC 8707; id-jag draft §4.3): the ID-JAG's ``resource``
    claim, which a ``resource`` parameter may repeat but not contradict (``invalid_target``).
    A claim naming no resource server registered here, or one the client may not use, is
    ``invalid_grant``; without a claim, the parameter names it (``invalid_target`` if it is
    neither registered nor one of the client's audiences)."""
    asked = request.form.all("resource")
    if claimed is not None and not isinstance(claimed, str):
        raise InvalidGrant("assertion resource must be a string")
    if len(asked) > 1 or (claimed is not None and asked and asked[0] != claimed):
        raise InvalidTarget("the resource parameter conflicts with the assertion's resource")
    identifier = claimed if claimed is not None else (asked[0] if asked else None)
    if identifier is None:
        return None
    client = request.client.client
    rs = await request.broker.resource_server_at(request.tenant, identifier, client.audiences)
    refusal = InvalidGrant if claimed is not None else InvalidTarget
    if rs is None:
        if identifier in client.audiences:  # a client's own audience (before resource servers)
            return None
        raise refusal("the assertion's resource is not a resource server registered at this "
                      "authorization server" if claimed is not None else
                      f"resource not registered here: {identifier}")
    if not rs.allows_client(client.client_id):
        raise refusal(f"client {client.client_id} may not get tokens for {identifier}")
    return rs


def _registered_scope(rs: resources.ResourceServer, offered: list[str], asked: str | None,
                      ceiling: frozenset[str] | None) -> tuple[str, ...]:
    """Validated, not narrowed: the request may narrow what the ID-JAG asserts, and every
    scope must be one the resource defines (``resources.resolve_scope``)."""
    if asked is not None:
        extra = [s for s in asked.split() if s not in offered]
        if extra:
            raise InvalidScope(f"scope beyond what the assertion grants: {' '.join(extra)}")
        offered = asked.split()
    return resources.resolve_scope(rs, offered, ceiling)


def _narrowed_scope(offered: list[str], asked: str | None, ceiling: frozenset[str] | None,
                    registered: list[str]) -> tuple[str, ...]:
    """A resource that is only a client audience: the intersection of the assertion's scope,
    the request, the trust link's ceiling and the client's registered scopes."""
    if asked is not None:
        offered = [s for s in offered if s in asked.split()]
    granted = tuple(s for s in dict.fromkeys(offered)
                    if (ceiling is None or s in ceiling) and s in registered)
    if not granted:
        raise InvalidScope("no scope is left: the intersection of the assertion's scope, "
                           "the request, this tenant's trust in the issuer and the "
                           "client's registered scopes is empty")
    return granted
