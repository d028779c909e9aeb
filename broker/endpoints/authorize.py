"""The authorization endpoint (RFC 6749 §3.1, OpenID Connect Core §3.1.2) and PAR (RFC 9126).

/authorize takes either the parameters themselves (GET query or POST form) or ``client_id``
+ ``request_uri`` from PAR (one use, bound to the client, short-lived). Errors before the
client and redirect URI are trusted are shown as a page; later ones go back to the client
with ``error``, ``state`` and ``iss``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.errors import InvalidClient, InvalidRequest, InvalidRequestURI, OAuthError
from broker import login_flow, pages
from broker.authorization_request import AuthorizationRequest, Unredirectable, validate
from broker.endpoints.client_request import ClientRequest, authenticate_request, refuse
from broker.errors import NO_STORE
from broker.forms import Form, read_params
from broker.runtime import Broker, ClientView, TenantView
from tenants import audit, pending
from tenants.scope import tenant_scope

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"


def _as_dict(form: Form, names: tuple[str, ...]) -> dict[str, str]:
    return {n: v for n in names if (v := form.get(n)) is not None}


PARAMS = ("client_id", "redirect_uri", "response_type", "response_mode", "scope", "state",
          "nonce", "code_challenge", "code_challenge_method", "prompt", "login_hint", "idp",
          "max_age", "authorization_details", "dpop_jkt", "request")


async def authorize(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return pages.error_page(exc.error, "Unknown organisation.", status=404)
    req: AuthorizationRequest | None = None
    try:
        form = await read_params(request, broker.settings.max_body_bytes)
        client_id = form.get("client_id")
        if client_id is None:
            raise Unredirectable(InvalidRequest("client_id is required"))
        _, client = await broker.lookup(tenant.id, client_id)
        if "request_uri" in form:
            req = await _pushed(broker, tenant, client, form)
        else:
            req = validate(client, _as_dict(form, PARAMS), form.all("resource"),
                           await login_flow.detail_types(broker, tenant.id))
            assert client is not None
            if tenant.settings.require_pushed_authorization_requests or client.require_par:
                raise InvalidRequest("this client must use pushed authorization requests")
        assert client is not None
        return await login_flow.proceed(broker, request, tenant, client, req)
    except Unredirectable as exc:
        await _audit_refusal(broker, tenant, exc, form_client=None)
        return pages.error_page(exc.error, exc.description)
    except OAuthError as exc:
        if req is None:
            return pages.error_page(exc.error, exc.description)
        await _audit_refusal(broker, tenant, exc, form_client=req.client_id)
        return login_flow.error_redirect(tenant, req, exc)


async def _pushed(broker: Broker, tenant: TenantView, client: ClientView | None,
                  form: Form) -> AuthorizationRequest:
    """The request pushed earlier (RFC 9126 §4); only client_id may accompany it."""
    uri = form.require("request_uri")
    if client is None or client.status != "active":
        raise Unredirectable(InvalidRequest("unknown or disabled client_id"))
    if not uri.startswith(PAR_PREFIX):
        raise Unredirectable(InvalidRequestURI("request_uri was not issued by PAR here"))
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        row = await pending.take(scope, "par", uri[len(PAR_PREFIX):], broker.clock.now())
    if row is None or row.client_id != client.client_id:
        raise Unredirectable(InvalidRequestURI("request_uri is unknown, used or expired"))
    return AuthorizationRequest.from_payload(row.payload["request"])


async def _audit_refusal(broker: Broker, tenant: TenantView, exc: OAuthError,
                         form_client: str | None) -> None:
    async with broker.sessions() as session, session.begin():
        await audit.record(session, tenant.id, [audit.Event(
            "authorization.refused", "refused", form_client, None,
            {"error": exc.error, "description": exc.description})], broker.clock.now())


async def par(request: Request) -> Response:
    """RFC 9126 §2: client-authenticated like the token endpoint; 201 with a request_uri."""
    broker: Broker = request.app.state.broker
    state = ClientRequest(request.path_params["tenant"])
    try:
        caller = await authenticate_request(broker, request, state, "par")
        assert state.tenant is not None and state.form is not None
        tenant, form = state.tenant, state.form
        if "request_uri" in form:
            raise InvalidRequest("request_uri must not be pushed")
        if form.get("client_id") not in (None, caller.client.client_id):
            raise InvalidRequest("client_id does not match the authenticated client")
        params = {**_as_dict(form, PARAMS), "client_id": caller.client.client_id}
        try:
            req = validate(caller.client, params, form.all("resource"),
                           await login_flow.detail_types(broker, tenant.id))
        except Unredirectable as exc:
            raise InvalidRequest(exc.description) from exc
        if caller.claims and await broker.journal.record(tenant.id, claims=caller.claims):
            raise InvalidClient("client assertion replayed")
        value = pending.new_value()
        lifetime = tenant.settings.par_lifetime
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            await pending.put(scope, "par", value, client_id=req.client_id,
                              payload={"request": req.payload()},
                              expires_at=broker.clock.now() + lifetime)
    except OAuthError as exc:
        refused = await refuse(broker, state, exc, action="par.refused")
        assert refused is not None
        return refused
    return JSONResponse({"request_uri": PAR_PREFIX + value, "expires_in": lifetime},
                        status_code=201, headers=NO_STORE)
