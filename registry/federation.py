"""The registry as a trust anchor, in OpenID Federation 1.0 shapes: its Entity Configuration
and Subordinate Statements about every active partner and tenant (``entity-statement+jwt``).

A third party verifies a statement with the registry's federation keys, published in the
registry's own (self-signed) Entity Configuration at ``{registry}/.well-known/openid-federation``.
Suspended, revoked or expired subordinates get no statement.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from registry import partners
from tenants.models import Partner, Tenant

STATEMENT_TYP = "entity-statement+jwt"
STATEMENT_LIFETIME = 3_600
REGISTRY_KEYS = "_registry"  # the key service's slot for the registry's federation keys


def entity_configuration(
    registry_id: str, jwks: dict[str, Any], now: float
) -> dict[str, Any]:
    iat = int(now)
    return {
        "iss": registry_id,
        "sub": registry_id,
        "iat": iat,
        "exp": iat + STATEMENT_LIFETIME,
        "jwks": jwks,
        "metadata": {
            "federation_entity": {
                "federation_fetch_endpoint": f"{registry_id}/fetch",
                "federation_list_endpoint": f"{registry_id}/list",
                "organization_name": "tessera trust registry",
            }
        },
    }


def tenant_keys(tenant_id: str) -> str:
    """The key service's slot for a tenant's federation keys (distinct from its token keys;
    system slots start with ``_`` and fit the 64 characters a slot name has)."""
    return "_fed-" + hashlib.sha256(tenant_id.encode()).hexdigest()[:32]


def tenant_entity_configuration(
    issuer: str, jwks: dict[str, Any], server_metadata: dict[str, Any], now: float, *,
    authority_hints: list[str], organization_name: str,
) -> dict[str, Any]:
    """A tenant's Entity Configuration: its federation keys, its authorization server (and
    OpenID provider) metadata, so another registry can register it as a partner."""
    iat = int(now)
    return {
        "iss": issuer,
        "sub": issuer,
        "iat": iat,
        "exp": iat + STATEMENT_LIFETIME,
        "jwks": jwks,
        "authority_hints": authority_hints,
        "metadata": {
            "federation_entity": {"organization_name": organization_name},
            "oauth_authorization_server": server_metadata,
            "openid_provider": server_metadata,
        },
    }


def entity_request(issuer: str, audience: str, now: float, lifetime: int, jti: str
                   ) -> dict[str, Any]:
    """Claims of an ``entity-request+jwt``: the entity speaking to a registry it joined
    (``adapters.entity_statement.verify_signed_request`` checks them)."""
    iat = int(now)
    return {"iss": issuer, "sub": issuer, "aud": audience, "iat": iat, "exp": iat + lifetime,
            "jti": jti}


def subordinate_statement(
    registry_id: str, subject: str, metadata: dict[str, Any], now: float,
    jwks: dict[str, Any] | None = None, expires_at: float | None = None,
) -> dict[str, Any]:
    iat = int(now)
    exp = iat + STATEMENT_LIFETIME
    if expires_at is not None:
        exp = min(exp, int(expires_at))
    claims: dict[str, Any] = {
        "iss": registry_id,
        "sub": subject,
        "iat": iat,
        "exp": exp,
        "metadata": metadata,
        "constraints": {"max_path_length": 0},
    }
    if jwks is not None:
        claims["jwks"] = jwks
    return claims


async def active_subordinates(
    session: AsyncSession, issuer_of: Any, now: float
) -> dict[str, dict[str, Any]]:
    """Every entity the registry vouches for now: subject -> what to say about it."""
    out: dict[str, dict[str, Any]] = {}
    for partner in (await session.execute(select(Partner))).scalars():
        if not partners.is_active(partner, now):
            continue
        server: dict[str, Any] = {"issuer": partner.issuer, **(partner.metadata_ or {})}
        if partner.jwks_uri:
            server["jwks_uri"] = partner.jwks_uri
        statement_jwks = partner.jwks
        if partner.federation_jwks:  # self-registered: its federation keys, token keys inside
            statement_jwks = partner.federation_jwks
            if partner.jwks:
                server["jwks"] = partner.jwks
        out[partner.issuer] = {"metadata": {"oauth_authorization_server": server},
                               "jwks": statement_jwks, "expires_at": partner.expires_at}
    for tenant in (await session.execute(select(Tenant).where(Tenant.status == "active"))
                   ).scalars():
        issuer = issuer_of(tenant.id)
        out[issuer] = {"metadata": {"oauth_authorization_server": {
            "issuer": issuer, "jwks_uri": f"{issuer}/jwks"}}, "jwks": None, "expires_at": None,
            "tenant": tenant.id}  # its federation keys: the key service's (``tenant_keys``)
    return out
