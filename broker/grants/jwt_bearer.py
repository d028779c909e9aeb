"""The JWT bearer grant (RFC 7523 §2.1) redeeming an ID-JAG at the resource tenant.

Every check below fails with ``invalid_grant`` (id-jag draft §4.3, RFC 7523 §3.1):
  typ oauth-id-jag+jwt · alg allow-listed · issuer a live trust link that **accepts** it
  (partner or tenant) · not issued by this tenant · signature by the issuer's keys · aud is
  this issuer · client_id is the authenticated client · exp/iat fresh · jti redeemed once ·
  cnf.jkt matched by the DPoP proof ·
  authorization_details of types this tenant registered and the client may use

The scope is the intersection of what the ID-JAG asserts, what the request asks (if it asks),
the trust link's ceiling and the redeeming client's registered scopes; an empty intersection
is ``invalid_scope``.

The user stays the issuer's (``adapters.subjects``): the access token's ``sub`` is a pairwise
identifier that cannot name a local user, and ``sub_id`` carries the issuer and its ``sub``.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from adapters import jose, rar, subjects
from adapters.errors import InvalidAuthorizationDetails, InvalidGrant, InvalidScope
from broker import id_jag
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
        asserted = claims.get("scope")
        offered = str(asserted).split() if isinstance(asserted, str) else []
        asked = form.get("scope")
        if asked is not None:
            offered = [s for s in offered if s in asked.split()]
        granted = tuple(s for s in dict.fromkeys(offered)
                        if (peer.ceiling is None or s in peer.ceiling) and s in client.scopes)
        if not granted:
            raise InvalidScope("no scope is left: the intersection of the assertion's scope, "
                               "the request, this tenant's trust in the issuer and the "
                               "client's registered scopes is empty")
        resource = claims.get("resource")
        audience = granted_audience([resource] if isinstance(resource, str) else [],
                                    client.audiences, tenant.issuer)
        lifetime = min(client.access_token_lifetime, tenant.settings.max_token_lifetime)
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
            authorization_details=details, x5t=request.cert_thumbprint,
        )
        # RFC 9068 §2.2.1: how the user authenticated, as the IdP tenant asserted it
        at.update({k: claims[k] for k in ("auth_time", "acr", "amr") if k in claims})
        at["act"] = {"sub": client.client_id}
        at["sub_id"] = foreign["sub_id"]
        token = await mint_access_token(broker, tenant, at)
        return GrantResult(
            token, granted, foreign["sub"],
            {"grant_type": "jwt-bearer", "issuer": issuer, "id_jag_jti": jti,
             "aud": list(audience), "idp_tenant": claims.get("tenant"),
             "sub_id": foreign["sub_id"]},
            claims=(Claim(hashlib.sha256(f"id_jag|{issuer}|{jti}".encode()).hexdigest(),
                          float(claims["exp"]) + SKEW, kind="grant"),),
            extra={"authorization_details": details} if details else {},
        )
