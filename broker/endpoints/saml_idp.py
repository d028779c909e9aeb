"""tessera as a SAML 2.0 IdP for a tenant's legacy apps: metadata and SP-initiated Web SSO
(Profiles §4.1), for users logged in through any of the tenant's upstreams.

    GET      /t/{tenant}/saml/idp/metadata[?sp=ENTITY_ID]   (Metadata §2.4.3)
    GET/POST /t/{tenant}/saml/idp/sso    AuthnRequest over HTTP-Redirect (Bindings §3.4) or
                                         HTTP-POST (Bindings §3.5), with RelayState

An AuthnRequest (Core §3.4.1) is parsed hardened (``adapters.saml_authn_request``); its Issuer
must be an active legacy app; an app that wants signed requests gets nothing for an unsigned or
badly signed one (Redirect: SigAlg/Signature over the query octets; POST: the enveloped
signature), checked against its registered certificates; a Destination must be this endpoint;
AssertionConsumerServiceURL (or Index) must be one of the app's registered ACS URLs: anything
wrong so far is an error PAGE, and nothing is ever posted to an unregistered URL. From here on
the app is told by a signed SAML error Response (InvalidNameIDPolicy, NoPassive, AuthnFailed).

A Redirect-bound request is a top-level GET, so the session cookie (SameSite=Lax) comes with
it: with a live tessera session (and no ForceAuthn) the answer is immediate; otherwise the
request is parked (``login_flow.park_sso``) and the browser sent to the tenant's login. A
POST-bound request is a cross-site POST that carries no Lax cookie: it is parked at once and
continued on a same-site GET (``/saml/idp/sso?flow=``, bound to the browser by the flow
cookie), which answers with the session or sends the browser to log in. ``resume`` /
``refuse`` finish a parked request after the login. IsPassive without a session is answered
NoPassive. The answer is the HTTP-POST binding's page (``broker.saml_post_binding``):
SAMLResponse (a signed Response with Destination and InResponseTo around a signed Assertion)
and RelayState. ``?sp=`` on the metadata gives that app's view (WantAuthnRequestsSigned as
registered), for SP libraries that insist the flag matches their own.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters.errors import OAuthError
from adapters.saml_assertion import SAMLError
from adapters.saml_authn_request import (
    MAX_RELAY_STATE,
    AuthnRequest,
    decode_post,
    decode_redirect,
    parse_authn_request,
    verify_post_signature,
    verify_redirect_signature,
)
from adapters.saml_issue import (
    BINDING_POST,
    NAMEID_FORMATS,
    STATUS_AUTHN_FAILED,
    STATUS_INVALID_NAMEID_POLICY,
    STATUS_NO_PASSIVE,
    STATUS_REQUESTER,
    STATUS_RESPONDER,
    idp_metadata,
    issue_response,
)
from broker import legacy_saml, login_flow, pages
from broker.forms import Form, parse_form, read_form
from broker.login_flow import Parked
from broker.runtime import Broker, TenantView
from broker.saml_post_binding import post_page
from tenants import audit, legacy_apps, pending
from tenants.legacy_apps import LegacyAppView
from tenants.models import LoginSession, User
from tenants.scope import tenant_scope

MAX_FORM = 256 * 1024
_ACCEPTED_FORMATS = (None, NAMEID_FORMATS["unspecified"])




async def _app(broker: Broker, tenant: TenantView, entity_id: str) -> LegacyAppView | None:
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        return await legacy_apps.get(scope, entity_id, active=True)


async def _audit(broker: Broker, tenant: TenantView, action: str, outcome: str,
                 app: str | None, user: str | None, detail: dict[str, Any]) -> None:
    async with broker.sessions() as session, session.begin():
        await audit.record(session, tenant.id, [audit.Event(
            action, outcome, app[:128] if app else None, user, detail)], broker.clock.now())


async def _refused_page(broker: Broker, tenant: TenantView, app: str | None, reason: str,
                        status: int = 400) -> Response:
    await _audit(broker, tenant, "saml.sso_refused", "refused", app, None,
                 {"reason": reason[:300]})
    return pages.error_page("invalid_request", f"The application's sign-in request was refused: "
                            f"{reason}", status=status)


@pages.tenant_page
async def metadata(request: Request, broker: Broker, tenant: TenantView) -> Response:
    want_signed = False
    if sp := request.query_params.get("sp"):
        app = await _app(broker, tenant, sp)
        if app is None:
            return pages.error_page("not_found", "Unknown application.", status=404)
        want_signed = app.want_authn_requests_signed
    try:
        await legacy_saml.idp_key(broker, tenant)  # gives a new tenant its keys, checks the alg
    except SAMLError as exc:
        return pages.error_page("not_found", str(exc), status=404)
    certs = [pem for key, pem in await broker.keys.certificates(tenant.id)
             if key.alg in ("ES256", "RS256")]
    xml = idp_metadata(entity_id=legacy_saml.idp_entity_id(tenant),
                       sso_url=legacy_saml.sso_url(tenant), certificates=certs,
                       want_authn_requests_signed=want_signed)
    return Response(xml, media_type="application/samlmetadata+xml",
                    headers={"Cache-Control": "public, max-age=300"})


def _acs(app: LegacyAppView, req: AuthnRequest) -> str | None:
    """The registered ACS the answer goes to (Profiles §4.1.4.1), or None."""
    if req.acs_url is not None:
        return req.acs_url if req.acs_url in app.acs_urls else None
    if req.acs_index is not None:
        return app.acs_urls[req.acs_index] if req.acs_index < len(app.acs_urls) else None
    return app.acs_urls[0]


def _checked(redirect: bool, raw_query: str, params: Form, req: AuthnRequest,
             app: LegacyAppView, tenant: TenantView) -> tuple[str, int] | str:
    """The registered ACS to answer at, or (why the request is refused, HTTP status)."""
    try:
        # required: verified; offered and verifiable (certificates registered): verified too
        signed = "Signature" in params if redirect else req.signed
        if app.want_authn_requests_signed or (signed and app.sp_certs):
            if redirect:
                verify_redirect_signature(raw_query, app.sp_certs)
            else:
                verify_post_signature(req, app.sp_certs)
    except SAMLError as exc:
        return str(exc), 403
    if req.destination is not None and req.destination != legacy_saml.sso_url(tenant):
        return "Destination is not this IdP", 400
    acs = _acs(app, req)
    if acs is None:
        return "the AssertionConsumerService is not registered", 403
    if req.protocol_binding not in (None, BINDING_POST):
        return "only the HTTP-POST binding is offered for responses", 400
    return acs


@pages.tenant_page
async def sso(request: Request, broker: Broker, tenant: TenantView) -> Response:
    redirect = request.method == "GET"
    try:
        params = (Form(parse_form(request.url.query.encode())) if redirect
                  else await read_form(request, MAX_FORM))
    except OAuthError as exc:
        return pages.error_page(exc.error, exc.description, status=exc.status)
    if redirect and "flow" in params and "SAMLRequest" not in params:
        return await _continue(request, broker, tenant, params.get("flow"))
    relay = params.get("RelayState") or ""
    try:
        raw = params.get("SAMLRequest")
        if raw is None or len(relay) > MAX_RELAY_STATE:
            raise SAMLError("a SAMLRequest (and a RelayState of at most 1024 characters)")
        req = parse_authn_request(decode_redirect(raw) if redirect else decode_post(raw))
    except SAMLError as exc:
        return await _refused_page(broker, tenant, None, str(exc))
    app = await _app(broker, tenant, req.issuer)
    if app is None:
        return await _refused_page(broker, tenant, req.issuer, "unknown application", 403)
    acs = _checked(redirect, request.url.query, params, req, app, tenant)
    if not isinstance(acs, str):
        return await _refused_page(broker, tenant, app.entity_id, *acs)
    flow = {"entity_id": app.entity_id, "request_id": req.id, "acs": acs, "relay_state": relay,
            "force_authn": req.force_authn, "is_passive": req.is_passive}
    if req.name_id_format not in (*_ACCEPTED_FORMATS, NAMEID_FORMATS[app.name_id_format]):
        return await _error_response(broker, tenant, flow, STATUS_INVALID_NAMEID_POLICY,
                                     "the app is registered for another NameID format",
                                     top=STATUS_REQUESTER)
    if redirect:  # a top-level GET: the session cookie (SameSite=Lax) came along
        found = None if req.force_authn else await login_flow.current_session(
            broker, tenant, request)
        if found is not None:
            return await _respond(broker, tenant, app, flow, *found)
        if req.is_passive:
            return await _error_response(broker, tenant, flow, STATUS_NO_PASSIVE,
                                         "no session and the app asked for no interaction")
        step = f"{tenant.issuer}/login?flow="
    else:  # a cross-site POST carries no Lax cookie: look for the session on a same-site GET
        step = f"{legacy_saml.sso_url(tenant)}?flow="
    return await login_flow.park_sso(broker, tenant, flow,
                                     lambda h: RedirectResponse(step + h, status_code=303))


async def _continue(request: Request, broker: Broker, tenant: TenantView,
                    handle: str | None) -> Response:
    """GET /saml/idp/sso?flow=: a POST-bound request, parked, in the browser that sent it:
    answer with its session, or send it to log in."""
    flow = await login_flow.parked(broker, tenant, handle)
    if flow is None or flow.sso is None or not flow.bound_to(request):
        return pages.error_page("invalid_request", "This sign-in has expired or was started in "
                                "another browser. Return to the application and start again.")
    found = (None if flow.sso.get("force_authn")
             else await login_flow.current_session(broker, tenant, request))
    if found is not None:
        return await resume(broker, request, tenant, flow, *found)
    if flow.sso.get("is_passive"):
        return await refuse(broker, tenant, flow, "no session and the app asked for no "
                            "interaction", STATUS_NO_PASSIVE)
    return RedirectResponse(f"{tenant.issuer}/login?flow={flow.handle}", status_code=303)


async def _respond(broker: Broker, tenant: TenantView, app: LegacyAppView,
                   flow: dict[str, Any], session: LoginSession, user: User) -> Response:
    """The signed Response with the Assertion about ``user``, posted to the registered ACS."""
    now = broker.clock.now()
    try:
        key = await legacy_saml.idp_key(broker, tenant)
        assertion = await legacy_saml.assertion_for(
            broker, tenant, app, user, session.auth, recipient=flow["acs"], now=now,
            in_response_to=flow["request_id"], session_index=session.sid, key=key)
        xml = issue_response(key, assertion, issuer=legacy_saml.idp_entity_id(tenant),
                             destination=flow["acs"], now=now,
                             in_response_to=flow["request_id"])
    except SAMLError as exc:
        return await _error_response(broker, tenant, flow, STATUS_AUTHN_FAILED, str(exc))
    await _audit(broker, tenant, "saml.sso_issued", "granted", app.entity_id, user.id, {
        "acs": flow["acs"], "assertion_id": assertion.get("ID"), "upstream": session.upstream,
        "name_id_format": app.name_id_format})
    return post_page(flow["acs"], xml, flow.get("relay_state") or "")


async def _error_response(broker: Broker, tenant: TenantView, flow: dict[str, Any],
                          sub_status: str, reason: str, *, top: str = STATUS_RESPONDER,
                          ) -> Response:
    """Tell the app (Core §3.2.2.2) with a signed error Response to its registered ACS."""
    await _audit(broker, tenant, "saml.sso_refused", "refused", flow["entity_id"], None,
                 {"reason": reason[:300], "status": sub_status})
    try:
        key = await legacy_saml.idp_key(broker, tenant)
    except SAMLError:
        return pages.error_page("access_denied", reason, status=403)
    xml = issue_response(key, None, issuer=legacy_saml.idp_entity_id(tenant),
                         destination=flow["acs"], now=broker.clock.now(),
                         in_response_to=flow["request_id"], status=top, sub_status=sub_status,
                         message=reason)
    return post_page(flow["acs"], xml, flow.get("relay_state") or "")


async def _still_valid(broker: Broker, tenant: TenantView, flow: Parked,
                       ) -> tuple[dict[str, Any], LegacyAppView] | Response:
    """Use up the parked request; its app must still be active with the same ACS."""
    sso_ = dict(flow.sso or {})
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        taken = await pending.take(scope, "authz", flow.handle, broker.clock.now())
        app = await legacy_apps.get(scope, str(sso_.get("entity_id")), active=True)
    if taken is None:
        return pages.error_page("invalid_request", "This sign-in was already completed.")
    if app is None or sso_.get("acs") not in app.acs_urls:
        return pages.error_page("invalid_request", "The application is no longer available.")
    return sso_, app


async def resume(broker: Broker, request: Request, tenant: TenantView, flow: Parked,
                 session: LoginSession, user: User) -> Response:
    """Answer the parked AuthnRequest now that the user has logged in."""
    found = await _still_valid(broker, tenant, flow)
    if isinstance(found, Response):
        return found
    return await _respond(broker, tenant, found[1], found[0], session, user)


async def refuse(broker: Broker, tenant: TenantView, flow: Parked, reason: str,
                 status: str = STATUS_AUTHN_FAILED) -> Response:
    """The login failed: tell the legacy app (a SAML error Response) or, if it is gone, the
    user."""
    sso_ = dict(flow.sso or {})
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        await pending.take(scope, "authz", flow.handle, broker.clock.now())
        app = await legacy_apps.get(scope, str(sso_.get("entity_id")), active=True)
    if app is None or sso_.get("acs") not in app.acs_urls:
        return pages.error_page("access_denied", reason, status=403)
    return await _error_response(broker, tenant, sso_, status, reason)
