"""Who is calling the admin API over HTTP: the operator (the super-admin bearer) or an admin
client of a tenant (an access token that tenant issued for audience ``{issuer}/admin``,
DPoP-bound, presented with its proof: tessera's own token endpoint and resource checks).

    401 invalid_token       no credential, the admin bearer wrong, a token not valid (bad
                            signature, expired, revoked, not for ``{issuer}/admin``, not
                            DPoP-bound) — one answer, no hint which
    401 invalid_dpop_proof  the token is fine but its proof is missing or wrong
    401 use_dpop_nonce      the tenant requires a server nonce: retry with ``DPoP-Nonce``
    403 access_denied       a valid admin client that holds no administrative role
"""

from __future__ import annotations

from starlette.requests import Request

from adapters import jose
from adapters.errors import (
    AccessDenied,
    InvalidDPoPProof,
    InvalidToken,
    NotFound,
    OAuthError,
    UseDPoPNonce,
)
from broker import bearer
from broker.admin import roles
from broker.config import StartupError
from broker.dpop_check import nonce_headers
from broker.errors import challenge
from broker.runtime import Broker
from tenants import admin_credentials, role_assignments
from tenants.scope import scoped

ADMIN_AUDIENCE = "/admin"  # appended to the tenant's issuer


class ProofRefused(InvalidDPoPProof):
    """A protected resource answers a bad proof with 401 (RFC 9449 §7.1)."""

    status = 401


class NonceRequired(UseDPoPNonce):
    """The tenant wants a server nonce in the proof: 401 with a fresh ``DPoP-Nonce``
    (RFC 9449 §9); the client retries with it."""

    status = 401


def refused(description: str) -> InvalidToken:
    return InvalidToken(description, headers={"WWW-Authenticate": ", ".join((
        challenge("Bearer", {"realm": "tessera-admin", "error": "invalid_token"}),
        challenge("DPoP", {"realm": "tessera-admin", "algs": "ES256 EdDSA RS256 PS256"})))})


def admin_audience(issuer: str) -> str:
    return issuer + ADMIN_AUDIENCE


def _tenant_of(broker: Broker, token: str) -> str:
    """The tenant whose issuer the (still unverified) token names."""
    try:
        issuer = jose.unverified_claims(token).get("iss")
    except (jose.JWTError, ValueError):
        raise refused("admin bearer token or admin client access token required") from None
    prefix = broker.settings.base_url.rstrip("/") + "/t/"
    if not isinstance(issuer, str) or not issuer.startswith(prefix):
        raise refused("the token was not issued by a tenant of this broker")
    return issuer[len(prefix):]


async def _operator_token(broker: Broker, token: str) -> bool:
    """The configured admin token, or after a rotation the stored one (and the previous one
    during its overlap), read on every request (``tenants.admin_credentials``)."""
    try:
        configured = broker.settings.admin_token_value()
    except StartupError:
        configured = ""
    return await admin_credentials.accepts(broker.sessions, configured, token,
                                           broker.clock.now())


async def caller(request: Request, broker: Broker) -> roles.AdminPrincipal:
    try:
        creds = bearer.credentials(request)
    except OAuthError as exc:
        raise refused(exc.description or "malformed credential") from None
    if creds is None:
        raise refused("admin bearer token or admin client access token required")
    scheme, token = creds
    if scheme == "bearer" and await _operator_token(broker, token):
        return roles.OPERATOR
    tenant_id = _tenant_of(broker, token)
    try:
        tenant = await broker.tenant(tenant_id)
    except NotFound:
        raise refused("the token's tenant is not active") from None
    try:
        claims, scheme = await bearer.authenticate(broker, tenant, request)
    except InvalidDPoPProof as exc:
        raise ProofRefused(exc.description, headers={
            "WWW-Authenticate": challenge("DPoP", {"realm": "tessera-admin",
                                                   "error": "invalid_dpop_proof"}),
            **nonce_headers(broker, tenant)}) from None
    except UseDPoPNonce as exc:
        raise NonceRequired(exc.description, headers={
            "WWW-Authenticate": challenge("DPoP", {"realm": "tessera-admin",
                                                   "error": "use_dpop_nonce"}),
            **nonce_headers(broker, tenant, exc)}) from None
    except (OAuthError, bearer.Unauthenticated) as exc:
        raise refused(getattr(exc, "description", None) or "invalid token") from None
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience or []
    if admin_audience(tenant.issuer) not in audiences:
        raise refused(f"the token is not for {admin_audience(tenant.issuer)}")
    if scheme != "dpop":
        raise refused("admin clients must use DPoP-bound tokens")
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or claims.get("sub") != client_id:
        raise refused("only an admin client's own token (client credentials) is accepted")
    async with broker.sessions() as session:
        held = await role_assignments.roles_of(scoped(session, tenant.id), "client", client_id)
    if not held:
        raise AccessDenied("this client holds no administrative role")
    return roles.client(tenant.id, client_id, held)
