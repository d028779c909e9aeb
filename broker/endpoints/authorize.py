"""The authorization endpoint (RFC 6749 §3.1, OpenID Connect Core §3.1.2) and PAR (RFC 9126).

/authorize takes either the parameters themselves (GET query or POST form) or ``client_id``
+ ``request_uri`` from PAR (one use, bound to the client, short-lived). Errors before the
client and redirect URI are trusted are shown as a page; later ones go back to the client
with ``error``, ``state`` and ``iss``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import (
    InvalidClient,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidRequestURI,
    OAuthError,
)
from broker import login_flow, pages
from broker.authorization_request import (
    MAX_PARAM,
    AuthorizationRequest,
    Unredirectable,
    validate,
)
from broker.dpop_check import check_proof
from broker.endpoints.client_request import ClientRequest, authenticate_request, refuse
from broker.errors import NO_STORE
from broker.forms import Form, read_params
from broker.json_response import JSONResponse
from broker.runtime import Broker, ClientView, TenantView
from tenants import pending
from tenants.scope import tenant_scope

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"


def _as_dict(form: Form, names: tuple[str, ...]) -> dict[str, str]:
    return {n: v for n in names if (v := form.get(n)) is not None}


PARAMS = ("client_id", "redirect_uri", "response_type", "response_mode", "scope", "state",
          "nonce", "code_challenge", "code_challenge_method", "prompt", "login_hint", "idp",
          "max_age", "authorization_details", "dpop_jkt", "request")



async def registered_resources(broker: Broker, tenant_id: str, client: ClientView | None,
                               resources: list[str]) -> frozenset[str]:
    """The requested resources that are resource servers of the tenant letting this client in
    (``broker.resources``); the others must be the client's audiences."""
    if client is None:
        return frozenset()
    found = set()
    for identifier in dict.fromkeys(resources[:10]):
        rs = await broker.resource_server(tenant_id, identifier=identifier)
        if rs is not None and rs.allows_client(client.client_id):
            found.add(identifier)
    return frozenset(found)

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
        if client is not None and not client.live(broker.clock.now()):
            client = None  # suspended, retired, disabled or expired: as if unknown
        if "request_uri" in form:
            req = await _pushed(broker, tenant, client, form)
        else:
            params = _as_dict(form, PARAMS)
            try:
                req = validate(client, params, form.all("resource"),
                               await broker.detail_types(tenant.id),
                               await registered_resources(broker, tenant.id, client,
                                                          form.all("resource")))
            except Unredirectable:
                raise
            except OAuthError:
                assert client is not None  # client and redirect URI passed: reply to them
                req = _reply_to(client, params)
                raise
            assert client is not None
            if tenant.settings.require_pushed_authorization_requests or client.require_par:
                raise InvalidRequest("this client must use pushed authorization requests")
        assert client is not None
        return await login_flow.proceed(broker, request, tenant, client, req)
    except Unredirectable as exc:
        await login_flow.audit_refusal(broker, tenant, None, exc)
        return pages.error_page(exc.error, exc.description)
    except OAuthError as exc:
        if req is None:
            await login_flow.audit_refusal(broker, tenant, None, exc)
            return pages.error_page(exc.error, exc.description)
        return await login_flow.refused(broker, tenant, req, exc)


def _reply_to(client: ClientView, params: dict[str, str]) -> AuthorizationRequest:
    """Where the error of a request that failed after its client and redirect URI were
    verified goes back to (RFC 6749 §4.1.2.1), with its ``state`` if usable."""
    state = params.get("state")
    return AuthorizationRequest(
        client_id=client.client_id, redirect_uri=params["redirect_uri"], scope=(),
        code_challenge="", state=state if state and len(state) <= MAX_PARAM else None)


async def _pushed(broker: Broker, tenant: TenantView, client: ClientView | None,
                  form: Form) -> AuthorizationRequest:
    """The request pushed earlier (RFC 9126 §4); only client_id may accompany it."""
    uri = form.require("request_uri")
    if client is None:
        raise Unredirectable(InvalidRequest("unknown or disabled client_id"))
    if not uri.startswith(PAR_PREFIX):
        raise Unredirectable(InvalidRequestURI("request_uri was not issued by PAR here"))
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        value, now = uri[len(PAR_PREFIX):], broker.clock.now()
        live = await pending.peek(scope, "par", value, now)
        # another client's request_uri is refused without using it up
        row = (await pending.take(scope, "par", value, now)
               if live is not None and live.client_id == client.client_id else None)
    if row is None:
        raise Unredirectable(InvalidRequestURI("request_uri is unknown, used or expired"))
    return AuthorizationRequest.from_payload(row.payload["request"])


async def par(request: Request) -> Response:
    """RFC 9126 §2: client-authenticated like the token endpoint; 201 with a request_uri. A
    DPoP proof here binds the code to its key (RFC 9449 §10.1), like ``dpop_jkt``."""
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
        checked = check_proof(broker, tenant, request)
        params = {**_as_dict(form, PARAMS), "client_id": caller.client.client_id}
        if checked is not None:  # RFC 9449 §10.1: the proof's key binds the code
            if params.get("dpop_jkt", checked.proof.jkt) != checked.proof.jkt:
                raise InvalidRequest("dpop_jkt does not match the DPoP proof's key")
            params["dpop_jkt"] = checked.proof.jkt
        try:
            req = validate(caller.client, params, form.all("resource"),
                           await broker.detail_types(tenant.id),
                           await registered_resources(broker, tenant.id, caller.client,
                                                      form.all("resource")))
        except Unredirectable as exc:
            raise InvalidRequest(exc.description) from exc
        claims = (*caller.claims, *((checked.claim,) if checked else ()))
        reused = await broker.journal.record(tenant.id, claims=claims) if claims else None
        if reused is not None:
            if reused.kind == "dpop":
                raise InvalidDPoPProof("DPoP proof replayed")
            raise InvalidClient("client assertion replayed")
        value = pending.new_value()
        lifetime = tenant.settings.par_lifetime
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            await pending.put(scope, "par", value, client_id=req.client_id,
                              payload={"request": req.payload()},
                              expires_at=broker.clock.now() + lifetime)
    except OAuthError as exc:
        refused = await refuse(broker, state, exc, action="par.refused", nonce=True)
        assert refused is not None
        return refused
    return JSONResponse({"request_uri": PAR_PREFIX + value, "expires_in": lifetime},
                        status_code=201, headers=NO_STORE)
