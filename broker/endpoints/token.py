"""The token endpoint (RFC 6749 §3.2) with DPoP (RFC 9449 §5) for every grant.

Order of checks, cheapest and least revealing first:
  1. form body well-formed, no repeated parameters    invalid_request
  2. exactly one client authentication presented       invalid_request / invalid_client
  3. tenant exists and is active (one read, with the client)   404 not_found
  4. the client's credentials hold                     invalid_client
  5. DPoP proof, if present, passes every §4.3 check   invalid_dpop_proof / use_dpop_nonce
  6. grant_type known                                   unsupported_grant_type
  7. public clients only for code and refresh grants   unauthorized_client
     DPoP required by the client is present            invalid_dpop_proof
  8. the grant's own rules (scope, resource, ...)      invalid_scope / invalid_target / ...
  9. one-time values (proof jti, assertion jti) unused, recorded with the audit event
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters import mtls
from adapters.errors import (
    InvalidClient,
    InvalidDPoPProof,
    InvalidGrant,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from broker import anomaly, metrics
from broker.client_cert import binding_thumbprint, client_certificate
from broker.dpop_check import check_proof, nonce_headers
from broker.endpoints.client_request import (
    ClientRequest,
    authenticate_request,
    refusal_event,
    refuse,
)
from broker.errors import NO_STORE
from broker.grants.authorization_code import AuthorizationCodeGrant
from broker.grants.base import Grant, TokenRequest
from broker.grants.ciba import CibaGrant
from broker.grants.client_credentials import ClientCredentialsGrant
from broker.grants.jwt_bearer import JWTBearerGrant
from broker.grants.refresh_token import RefreshTokenGrant
from broker.grants.saml2_bearer import SAML2BearerGrant
from broker.grants.token_exchange import TokenExchangeGrant
from broker.json_response import JSONResponse
from broker.runtime import Broker
from tenants import audit
from tenants.journal import STALE

GRANTS: dict[str, Grant] = {
    g.grant_type: g for g in (ClientCredentialsGrant(), TokenExchangeGrant(), JWTBearerGrant(),
                              AuthorizationCodeGrant(), RefreshTokenGrant(), SAML2BearerGrant(),
                              CibaGrant())
}


class _DecideFresh(Exception):
    """A stateful grant (code, refresh token) must not be decided on a cached view."""


class _Replayed(InvalidDPoPProof):
    """A proof jti was used before; the refusal event is already written."""


class _ReplayedAssertion(InvalidClient):
    """A client assertion jti was used before; the refusal event is already written."""


class _ReplayedGrant(InvalidGrant):
    """An authorization grant (an ID-JAG's jti) was redeemed before; already audited."""


_AUDITED = (_Replayed, _ReplayedAssertion, _ReplayedGrant)


async def token_endpoint(request: Request) -> Response:
    """Decide on the process's cached view of the tenant and client; the journal refuses to
    record a decision whose view went stale, and then the request is decided again on a fresh
    read (a disabled client or tenant counts on the very next request, on every replica)."""
    broker: Broker = request.app.state.broker
    form = None
    for cached in (True, False):
        state = ClientRequest(request.path_params["tenant"], form=form, cached=cached)
        try:
            response = await _decide(broker, request, state)
        except _DecideFresh:
            form = state.form
            continue
        if response is not None:
            return response
        form = state.form
        broker.forget_directory(state.tenant_id)
    raise RuntimeError("a fresh read cannot be stale")


async def _decide(broker: Broker, request: Request, state: ClientRequest) -> Response | None:
    checked = None
    try:
        client = await authenticate_request(broker, request, state, "token")
        assert state.tenant is not None and state.form is not None
        tenant, form = state.tenant, state.form
        anomaly.count_token_request(broker, tenant, client.client, first_pass=state.cached)
        checked = check_proof(broker, tenant, request)
        grant = GRANTS.get(form.require("grant_type"))
        if grant is None:
            raise UnsupportedGrantType(f"grant_type {form.get('grant_type')!r} is not supported")
        if grant.stateful and state.cached:
            raise _DecideFresh
        if client.client.public and not grant.public:
            raise UnauthorizedClient("public clients may only use the authorization code and "
                                     "refresh token grants")
        if client.client.dpop_bound_access_tokens and checked is None:
            raise InvalidDPoPProof("this client must present a DPoP proof")
        x5t = binding_thumbprint(request, client.client)
        presented = client_certificate(request)
        result = await grant.issue(TokenRequest(
            broker, tenant, client, form, checked.proof if checked else None, broker.clock.now(),
            cert_thumbprint=x5t, presented_x5t=mtls.x5t_s256(presented) if presented else None,
        ))
        token = result.access_token
        event = audit.Event(
            result.action, "granted", client.client.client_id, result.subject,
            {"grant_type": grant.grant_type, "jti": token.jti, "scope": list(result.scope),
             "dpop_jkt": checked.proof.jkt if checked else None,
             **({"x5t#S256": x5t} if x5t else {}), **result.detail},
        )
        claims = (*client.claims, *((checked.claim,) if checked else ()), *result.claims)
        reused = await broker.journal.record(
            tenant.id, claims=claims, granted=[event],
            refused=[refusal_event(state, "replayed one-time value")], expect=state.expect,
        )
        if reused is STALE:
            return None
        if reused is not None:
            if reused.kind == "dpop":
                raise _Replayed("DPoP proof replayed")
            if reused.kind == "grant":
                raise _ReplayedGrant("the assertion was already redeemed")
            if reused.kind == "saml_assertion":
                raise _ReplayedGrant("the SAML assertion was already used")
            raise _ReplayedAssertion("client assertion replayed")
    except OAuthError as exc:
        action = None if isinstance(exc, _AUDITED) else "token.refused"
        return await refuse(broker, state, exc, action=action, nonce=True)
    metrics.TOKENS.labels(tenant.id, grant.grant_type).inc()
    bound = "jkt" in (token.claims.get("cnf") or {})
    body: dict[str, object] = {"access_token": token.token}
    if result.issued_token_type:
        body["issued_token_type"] = result.issued_token_type
    body["token_type"] = result.token_type or ("DPoP" if bound else "Bearer")
    body["expires_in"] = token.expires_in
    if result.scope and result.report_scope:
        body["scope"] = " ".join(result.scope)
    body.update(result.extra)
    return JSONResponse(body, headers={**NO_STORE, **nonce_headers(broker, tenant)})
