"""Per-tenant discovery (RFC 8414, OpenID Connect Discovery) and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.dpop import SUPPORTED_ALGS as DPOP_ALGS
from adapters.errors import OAuthError
from adapters.jose import ASYMMETRIC_ALGS
from broker.endpoints.token import GRANTS
from broker.errors import error_response
from broker.id_jag import ACCESS_TOKEN, ID_JAG, ID_JAG_PROFILE
from broker.runtime import Broker, TenantView


def server_metadata(tenant: TenantView, signing_alg: str) -> dict[str, Any]:
    """Only what works today; later grants and endpoints add their fields as they land."""
    issuer = tenant.issuer
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "grant_types_supported": sorted(GRANTS),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGS),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGS),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGS),
        "dpop_signing_alg_values_supported": sorted(DPOP_ALGS),
        "access_token_signing_alg_values_supported": [signing_alg],
        "identity_chaining_requested_token_types_supported": [ID_JAG, ACCESS_TOKEN],
        "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
    }


async def _tenant(request: Request) -> TenantView:
    broker: Broker = request.app.state.broker
    return await broker.tenant(request.path_params["tenant"])


async def discovery(request: Request) -> Response:
    try:
        tenant = await _tenant(request)
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse(
        server_metadata(tenant, tenant.settings.key_alg),
        headers={"Cache-Control": "public, max-age=300"},
    )


async def jwks(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await _tenant(request)
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse(
        await broker.keys.jwks(tenant.id),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=60"},
    )
