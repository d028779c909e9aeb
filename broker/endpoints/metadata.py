"""Per-tenant discovery (RFC 8414, OpenID Connect Discovery) and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from adapters.dpop import SUPPORTED_ALGS as DPOP_ALGS
from adapters.errors import OAuthError
from adapters.jose import ASYMMETRIC_ALGS
from broker.authorization_request import OIDC_SCOPES, PROMPTS
from broker.endpoints.token import GRANTS
from broker.errors import error_response
from broker.id_jag import ACCESS_TOKEN, ID_JAG, ID_JAG_PROFILE
from broker.json_response import JSONResponse
from broker.runtime import Broker, TenantView
from tenants.keys.lifecycle import JWKS_MAX_AGE


def server_metadata(tenant: TenantView, signing_alg: str,
                    detail_types: list[str] | None = None) -> dict[str, Any]:
    """Only what works today; later grants and endpoints add their fields as they land."""
    issuer = tenant.issuer
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt",
                    "tls_client_auth", "self_signed_tls_client_auth"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests":
            tenant.settings.require_pushed_authorization_requests,
        "userinfo_endpoint": f"{issuer}/userinfo",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": sorted(OIDC_SCOPES),
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [signing_alg],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr",
                             "amr", "azp", "sid", "at_hash", "name", "email", "groups"],
        "prompt_values_supported": sorted(PROMPTS),
        "authorization_details_types_supported": detail_types or [],
        "dpop_bound_access_tokens_supported": True,
        "tls_client_certificate_bound_access_tokens": True,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "grant_types_supported": sorted(GRANTS),
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGS),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGS),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGS),
        "dpop_signing_alg_values_supported": sorted(DPOP_ALGS),
        "access_token_signing_alg_values_supported": [signing_alg],
        "identity_chaining_requested_token_types_supported": [ID_JAG, ACCESS_TOKEN],
        "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
        "backchannel_authentication_endpoint": f"{issuer}/bc-authorize",
        "backchannel_token_delivery_modes_supported": ["poll", "ping", "push"],
        "backchannel_user_code_parameter_supported": False,
        "client_id_metadata_document_supported":
            tenant.settings.client_id_metadata_documents,
    }


async def _tenant(request: Request) -> TenantView:
    broker: Broker = request.app.state.broker
    return await broker.tenant(request.path_params["tenant"])


async def discovery(request: Request) -> Response:
    try:
        tenant = await _tenant(request)
    except OAuthError as exc:
        return error_response(exc)
    broker: Broker = request.app.state.broker
    types = sorted(await broker.detail_types(tenant.id))
    return JSONResponse(
        server_metadata(tenant, tenant.settings.key_alg, types),
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
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )
