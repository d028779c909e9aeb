"""Identity Assertion JWT Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant):
the ID-JAG's shape, minted by the IdP tenant's key service, and the ID tokens it is made from.

Token type URIs (RFC 8693 §3) and the JWT ``typ`` live here, so both roles (IdP side: token
exchange; resource side: jwt-bearer) name them the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from adapters import jose
from adapters.errors import InvalidRequest
from broker.runtime import Broker, TenantView
from broker.tokens import IssuedToken
from tenants import grants, revocation_cutoffs
from tenants.models import User
from tenants.scope import tenant_scope

ID_JAG_TYP = "oauth-id-jag+jwt"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"
SAML2 = "urn:ietf:params:oauth:token-type:saml2"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
MAX_LIFETIME = 300
# from the identity assertion into the ID-JAG; minimised (id-jag draft §3, the MCP extension):
# no e-mail address and no tessera-specific claims, the subject identifies the user
CARRIED = ("auth_time", "acr", "amr")


async def verify_id_token(
    broker: Broker, tenant: TenantView, token: str, client_id: str
) -> dict[str, Any]:
    """An ID token issued to ``client_id`` by **this tenant**; ``InvalidRequest`` otherwise
    (RFC 8693 §2.2.2: a bad or unacceptable subject token).

    The IdP side asserts only its own users: an ID token of any other issuer (a peer tenant, a
    partner, an upstream IdP) is refused, whatever trust links exist. Users of an upstream IdP
    become this tenant's users by logging in; their ID tokens are then this tenant's."""
    try:
        claims = await _signed_by_tenant(broker, tenant, token)
        jose.check_times(claims, broker.clock.now(), leeway=30)
    except jose.JWTError as exc:
        raise InvalidRequest(f"subject_token is not a valid ID token: {exc}") from exc
    if claims.get("iss") != tenant.issuer:
        raise InvalidRequest("subject_token must be an ID token issued by this tenant")
    if not jose.audience_matches(claims, client_id):
        raise InvalidRequest("subject_token was not issued to this client")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise InvalidRequest("subject_token azp is another client")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidRequest("subject_token has no sub")
    iat = claims.get("iat")  # the tenant's own user: disabled or revoked since?
    if await revocation_cutoffs.subject_refused(
            broker.hot, tenant.id, claims["sub"], iat if isinstance(iat, int | float) else 0):
        raise InvalidRequest("subject_token: the user is disabled or was revoked")
    return claims


async def _signed_by_tenant(broker: Broker, tenant: TenantView, token: str) -> dict[str, Any]:
    """The claims of an ID token (``typ`` JWT) signed by a key this tenant publishes and that
    is not compromised (read on every call). A token this process verified before with the
    very key object the key service still publishes for its ``kid`` is not parsed and verified
    again (``broker.verified_id_tokens``, the rules of ``broker.verified_tokens``): ~15 % of a
    SAML-out exchange, where an agent presents one ID token for several exchanges. Times,
    audience and the user's state are checked by the caller every time."""
    hit = await broker.verified_id_tokens.recall(broker.keys, tenant.id, token,
                                                 check_compromised=True)
    if hit is not None:
        return hit[1]
    header = jose.unverified_header(token)
    if str(header.get("typ", "JWT")).lower() not in ("jwt", "application/jwt"):
        raise jose.JWTError("typ of an ID token is JWT")
    if jose.unverified_claims(token).get("iss") != tenant.issuer:
        raise InvalidRequest("subject_token must be an ID token issued by this tenant: an "
                             "identity of another issuer is not this tenant's to assert")
    kid = header.get("kid")
    key = await broker.keys.verification_key(tenant.id, kid) if isinstance(kid, str) else None
    claims = jose.verify_jws(token, lambda _h: key).claims
    if isinstance(kid, str):
        broker.verified_id_tokens.put(tenant.id, token, kid, key, claims)
    return claims


async def verify_refresh_token(
    broker: Broker, tenant: TenantView, token: str, client_id: str, jkt: str | None
) -> dict[str, Any]:
    """The identity behind a refresh token this tenant issued to ``client_id`` (id-jag draft
    §4.3: "the ID Token or Refresh Token"): its grant's user, as the login asserted them. The
    refresh token is not rotated; a DPoP-bound one needs its key's proof. ``InvalidRequest``
    otherwise (RFC 8693 §2.2.2)."""
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        grant = await grants.held_refresh_token(scope, token, client_id=client_id, jkt=jkt,
                                                now=now)
        user = await scope.get(User, grant.user_id) if grant is not None else None
    if grant is None:
        raise InvalidRequest("subject_token is not an active refresh token of this client")
    if user is None or user.status != "active":
        raise InvalidRequest("subject_token: the user is no longer active")
    if await revocation_cutoffs.subject_refused(broker.hot, tenant.id, user.id,
                                                grant.created_at):
        raise InvalidRequest("subject_token: the user is disabled or was revoked")
    auth = {k: v for k, v in (grant.auth or {}).items() if k in ("auth_time", "acr", "amr")}
    return {"sub": user.id, **auth}


async def mint_id_token(
    broker: Broker, tenant: TenantView, *, subject: str, client_id: str, lifetime: int = 300,
    **extra: Any,
) -> str:
    """An OpenID Connect ID token signed by the tenant (used until the login flows land, and
    by tests that need a user's identity at a tenant)."""
    now = int(broker.clock.now())
    claims = {"iss": tenant.issuer, "sub": subject, "aud": client_id, "iat": now,
              "exp": now + lifetime, "auth_time": now, **extra}
    return await broker.keys.sign(tenant.id, {"typ": "JWT"}, claims)


async def mint_id_jag(
    broker: Broker, tenant: TenantView, *, identity: dict[str, Any], audience: str,
    remote_client_id: str, scope: Sequence[str], lifetime: int, now: float,
    resource: str | None = None, jkt: str | None = None, act: dict[str, Any] | None = None,
    authorization_details: Sequence[dict[str, Any]] = (),
) -> IssuedToken:
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": tenant.issuer,
        "sub": identity["sub"],
        "aud": audience,
        "client_id": remote_client_id,
        "jti": secrets.token_urlsafe(16),
        "iat": iat,
        "exp": iat + min(lifetime, MAX_LIFETIME),
    }
    claims.update({k: identity[k] for k in CARRIED if k in identity})
    if scope:
        claims["scope"] = " ".join(scope)
    if resource:
        claims["resource"] = resource
    if act:
        claims["act"] = act
    if authorization_details:
        claims["authorization_details"] = list(authorization_details)
    if jkt:
        claims["cnf"] = {"jkt": jkt}
    token = await broker.keys.sign(tenant.id, {"typ": ID_JAG_TYP}, claims)
    return IssuedToken(token, claims, claims["exp"] - iat)
