"""The token endpoint (RFC 6749 §3.2) with DPoP (RFC 9449 §5) for every grant.

Order of checks, cheapest and least revealing first:
  1. tenant exists and is active                      404 not_found
  2. form body well-formed, no repeated parameters    invalid_request
  3. DPoP proof, if present, passes every §4.3 check  invalid_dpop_proof / use_dpop_nonce
  4. exactly one client authentication, and it holds  invalid_client / invalid_request
  5. grant_type known                                  unsupported_grant_type
  6. DPoP required by the client is present           invalid_dpop_proof
  7. the grant's own rules (scope, resource, ...)     invalid_scope / invalid_target / ...
  8. one-time values (proof jti, assertion jti) unused, recorded with the audit event
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.errors import InvalidClient, InvalidDPoPProof, OAuthError, UnsupportedGrantType
from broker.client_auth import AuthenticatedClient, authenticate
from broker.dpop_check import check_proof, nonce_headers
from broker.errors import NO_STORE, error_response
from broker.forms import Form, read_form
from broker.grants.base import Grant, TokenRequest
from broker.grants.client_credentials import ClientCredentialsGrant
from broker.runtime import Broker
from tenants import audit

GRANTS: dict[str, Grant] = {g.grant_type: g for g in (ClientCredentialsGrant(),)}


class _Replayed(InvalidDPoPProof):
    """Marker: the refusal's audit event was written together with the replay check."""


async def token_endpoint(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    client: AuthenticatedClient | None = None
    form: Form | None = None
    try:
        form = await read_form(request, broker.settings.max_body_bytes)
        checked = check_proof(broker, tenant, request)
        client = await authenticate(
            broker, tenant, request, form, {f"{tenant.issuer}/token", tenant.issuer}
        )
        grant = GRANTS.get(form.require("grant_type"))
        if grant is None:
            raise UnsupportedGrantType(f"grant_type {form.get('grant_type')!r} is not supported")
        if client.client.dpop_bound_access_tokens and checked is None:
            raise InvalidDPoPProof("this client must present a DPoP proof")
        result = await grant.issue(TokenRequest(
            broker, tenant, client, form, checked.proof if checked else None, broker.clock.now()
        ))
        token = result.access_token
        event = audit.Event(
            "token.issued", "granted", client.client.client_id, result.subject,
            {"grant_type": grant.grant_type, "jti": token.jti, "scope": list(result.scope),
             "dpop_jkt": checked.proof.jkt if checked else None, **result.detail},
        )
        claims = (*client.claims, *((checked.claim,) if checked else ()))
        reused = await broker.journal.record(
            tenant.id, claims=claims, granted=[event],
            refused=[_refusal(client, form, "replayed one-time value")],
        )
        if reused is not None:
            if reused.kind == "dpop":
                raise _Replayed("DPoP proof replayed")
            raise _ReplayedAssertion("client assertion replayed")
    except OAuthError as exc:
        if not isinstance(exc, _Replayed | _ReplayedAssertion):
            await broker.journal.record(tenant.id, granted=[_refusal(client, form, exc)])
        response = error_response(exc)
        response.headers.update(nonce_headers(broker, tenant, exc))
        return response
    body = {
        "access_token": token.token,
        "token_type": "DPoP" if checked else "Bearer",
        "expires_in": token.expires_in,
    }
    if result.scope:
        body["scope"] = " ".join(result.scope)
    return JSONResponse(body, headers={**NO_STORE, **nonce_headers(broker, tenant)})


class _ReplayedAssertion(InvalidClient):
    """Marker: a client assertion's jti was used before."""


def _refusal(
    client: AuthenticatedClient | None, form: Form | None, reason: OAuthError | str
) -> audit.Event:
    detail: dict[str, object] = {"grant_type": form.get("grant_type") if form else None}
    if isinstance(reason, OAuthError):
        detail.update(error=reason.error, description=reason.description)
    else:
        detail.update(error="replay", description=reason)
    return audit.Event(
        "token.refused", "refused", client.client.client_id if client else None, None, detail
    )
