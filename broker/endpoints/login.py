"""Login at a tenant through its upstream IdPs: the chooser (home-realm discovery), the start
of an upstream login, the OIDC callback, the SAML ACS and the SP metadata.

Every upstream login is tied to a parked authorization request (``?flow=``) and to the
browser that started it (the ``tessera_flow`` cookie); the upstream's answer is accepted once
(the OIDC ``state`` or the SAML ``RelayState`` is a one-use handle, a SAML assertion ID is
recorded until it expires).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters.errors import AccessDenied, OAuthError
from adapters.oidc_upstream import UpstreamError
from adapters.saml_assertion import SAMLError
from adapters.saml_upstream import authn_request, consume_response, sp_metadata
from broker import claim_mapping, login_flow, pages, saml_bearer, upstreams
from broker.endpoints import saml_idp
from broker.forms import read_form
from broker.runtime import Broker, TenantView
from broker.upstreams import UpstreamView
from tenants import audit, login_sessions, pending, users
from tenants.scope import tenant_scope

UPSTREAM_FAILED = "The sign-in at your organisation could not be completed."
FINISH_WITHIN = 120  # seconds from the SAML ACS to the browser's same-site GET




async def _bound_flow(broker: Broker, tenant: TenantView, request: Request,
                      handle: str | None) -> login_flow.Parked | None:
    found = await login_flow.parked(broker, tenant, handle)
    return found if found is not None and found.bound_to(request) else None


_EXPIRED = ("invalid_request", "This sign-in has expired or was started in another browser. "
            "Return to the application and start again.")


@pages.tenant_page
async def chooser(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """GET /login?flow=: straight to the upstream home-realm discovery picks, else a list."""
    handle = request.query_params.get("flow")
    flow = await _bound_flow(broker, tenant, request, handle)
    if flow is None:
        return pages.error_page(*_EXPIRED)
    available = await upstreams.active(broker, tenant.id)
    if not available:
        return pages.error_page("server_error", "No sign-in method is configured for this "
                                "organisation.", status=503)
    picked = upstreams.choose(available, idp=flow.idp, login_hint=flow.login_hint)
    if picked is not None:
        return RedirectResponse(f"{tenant.issuer}/login/{picked.name}?flow={flow.handle}",
                                status_code=303)
    return pages.chooser(tenant.id, [(u.display_name, f"{tenant.issuer}/login/{u.name}"
                                      f"?flow={quote(flow.handle)}") for u in available])


@pages.tenant_page
async def start(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """GET /login/{upstream}?flow=: send the browser to the upstream IdP."""
    flow = await _bound_flow(broker, tenant, request, request.query_params.get("flow"))
    if flow is None:
        return pages.error_page(*_EXPIRED)
    upstream = await upstreams.get(broker, tenant.id, request.path_params["upstream"])
    if upstream is None:
        return pages.error_page("invalid_request", "Unknown sign-in method.", status=404)
    now = broker.clock.now()
    try:
        if upstream.kind == "oidc":
            config = upstreams.oidc_config(broker, tenant.id, upstream)
            metadata = await broker.oidc.metadata(config)
            begun = broker.oidc.begin(config, metadata,
                                      upstreams.oidc_redirect_uri(tenant.issuer, upstream.name),
                                      login_hint=flow.login_hint)
            key, payload, url = begun.state, {"nonce": begun.nonce,
                                              "verifier": begun.code_verifier}, begun.url
        else:
            relay = pending.new_value()[:40]
            request_id, url = authn_request(upstreams.saml_config(tenant, upstream), now=now,
                                            relay_state=relay)
            key, payload = relay, {"request_id": request_id}
    except (UpstreamError, SAMLError, ValueError) as exc:
        await _login_failed(broker, tenant, upstream.name, flow, str(exc))
        return pages.error_page("temporarily_unavailable", UPSTREAM_FAILED, status=502)
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        await pending.put(scope, upstream.kind, key, client_id=flow.client_id,
                          payload={**payload, "flow": flow.handle, "upstream": upstream.name},
                          expires_at=now + login_flow.FLOW_LIFETIME)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def _take(
    broker: Broker, request: Request, tenant: TenantView, kind: str, key: str | None,
    upstream: str, *, bind: bool = True,
) -> tuple[dict[str, Any], login_flow.Parked] | None:
    """Use up the one-use handle ``key`` of this upstream and return it with its parked flow;
    with ``bind``, only in the browser that started the flow (another browser's attempt
    leaves the handle alone, so it cannot end the real user's login)."""
    if not key or len(key) > 200:
        return None
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        row = await pending.peek(scope, kind, key, now)
    if row is None or row.payload.get("upstream") != upstream:
        return None
    flow = await login_flow.parked(broker, tenant, row.payload["flow"])
    if flow is None or (bind and not flow.bound_to(request)):
        return None
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        taken = await pending.take(scope, kind, key, now)
    return (dict(taken.payload), flow) if taken is not None else None


async def _expired(broker: Broker, tenant: TenantView, upstream: str, why: str) -> Response:
    """The expired page, audited: a stale, foreign or replayed upstream answer."""
    async with broker.sessions() as session, session.begin():
        await audit.record(session, tenant.id, [audit.Event(
            "login.refused", "refused", None, None, {"upstream": upstream[:64], "reason": why})],
            broker.clock.now())
    return pages.error_page(*_EXPIRED)


@pages.tenant_page
async def oidc_callback(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """GET /login/{upstream}/callback: the OIDC IdP's authorization response."""
    name = request.path_params["upstream"]
    params = dict(request.query_params)
    found = await _take(broker, request, tenant, "oidc", params.get("state"), name)
    upstream = await upstreams.get(broker, tenant.id, name)
    if found is None or upstream is None:
        return await _expired(broker, tenant, name, "unknown, used or foreign OIDC state")
    taken, flow = found
    try:
        config = upstreams.oidc_config(broker, tenant.id, upstream)
        metadata = await broker.oidc.metadata(config)

        async def signer(header: dict[str, Any], claims: dict[str, Any]) -> str:
            return await broker.keys.sign(tenant.id, header, claims)

        identity = await broker.oidc.finish(
            config, metadata, upstreams.oidc_redirect_uri(tenant.issuer, name),
            callback_params=params, expected_state=params["state"], nonce=taken["nonce"],
            code_verifier=taken["verifier"], signer=signer)
        profile = claim_mapping.profile(identity.claims, upstream.mapping,
                                        claim_mapping.OIDC_DEFAULT)
    except (UpstreamError, claim_mapping.MappingError, ValueError) as exc:
        return await _refuse_login(broker, tenant, name, flow, str(exc))
    auth = {"auth_time": identity.auth_time or int(broker.clock.now()), "acr": identity.acr,
            "amr": list(identity.amr) or None}
    return await _complete(broker, request, tenant, upstream, flow, profile, auth)


@pages.tenant_page
async def saml_acs(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """POST /saml/{upstream}/acs: the SAML IdP's Response over the HTTP-POST binding."""
    try:
        form = await read_form(request, 512 * 1024)
    except OAuthError as exc:
        return pages.error_page(exc.error, exc.description, status=exc.status)
    name = request.path_params["upstream"]
    # the ACS is a cross-site POST: SameSite=Lax cookies do not come with it, so the answer is
    # checked here and the browser binding at the same-site GET it is sent on to (``finish``)
    found = await _take(broker, request, tenant, "saml", form.get("RelayState"), name,
                        bind=False)
    upstream = await upstreams.get(broker, tenant.id, name)
    if found is None or upstream is None or upstream.kind != "saml":
        return await _expired(broker, tenant, name, "unknown or used RelayState")
    taken, flow = found
    now = broker.clock.now()
    try:
        config = upstreams.saml_config(tenant, upstream)
        config = dataclasses.replace(
            config, idp=await saml_bearer.without_compromised(broker, config.idp))
        identity = consume_response(config,
                                    form.get("SAMLResponse") or "",
                                    expected_in_response_to=taken["request_id"], now=now)
        source = {**identity.attributes, "NameID": identity.name_id}
        profile = claim_mapping.profile(source, upstream.mapping, claim_mapping.SAML_DEFAULT)
    except (SAMLError, claim_mapping.MappingError, ValueError) as exc:
        return await _refuse_login(broker, tenant, name, flow, str(exc))
    # one use, shared with the SAML bearer grant (an assertion is good at one of them, once)
    reused = await broker.journal.record(tenant.id, claims=[saml_bearer.replay_claim(identity)])
    if reused is not None:
        return await _refuse_login(broker, tenant, name, flow, "assertion replayed")
    auth = claim_mapping.saml_auth(identity.authn_context_class_ref, identity.authn_instant)
    auth["auth_time"] = auth["auth_time"] or int(now)
    value = pending.new_value()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        await pending.put(scope, "saml_ok", value, client_id=flow.client_id,
                          payload={"flow": flow.handle, "upstream": name, "auth": auth,
                                   "profile": dataclasses.asdict(profile)},
                          expires_at=now + FINISH_WITHIN)
    return RedirectResponse(f"{tenant.issuer}/login/{name}/finish?r={value}", status_code=303,
                            headers={"Cache-Control": "no-store"})


@pages.tenant_page
async def finish(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """GET /login/{upstream}/finish?r=: a verified upstream answer, completed in the browser
    that started the flow (the ``tessera_flow`` cookie comes with a same-site GET)."""
    name = request.path_params["upstream"]
    found = await _take(broker, request, tenant, "saml_ok", request.query_params.get("r"), name)
    upstream = await upstreams.get(broker, tenant.id, name)
    if found is None or upstream is None:
        return await _expired(broker, tenant, name, "unknown, used or foreign login result")
    taken, flow = found
    profile = users.Profile(**{**taken["profile"], "groups": tuple(taken["profile"]["groups"])})
    return await _complete(broker, request, tenant, upstream, flow, profile, taken["auth"])


@pages.tenant_page
async def saml_metadata(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """GET /saml/{upstream}/metadata: our SP metadata for the IdP's administrator."""
    upstream = await upstreams.get(broker, tenant.id, request.path_params["upstream"])
    if upstream is None or upstream.kind != "saml":
        return pages.error_page("not_found", "Unknown SAML upstream.", status=404)
    xml = sp_metadata(upstreams.saml_config(tenant, upstream))
    return Response(xml, media_type="application/samlmetadata+xml",
                    headers={"Cache-Control": "public, max-age=300"})


async def _login_failed(broker: Broker, tenant: TenantView, upstream: str,
                        flow: login_flow.Parked, reason: str) -> None:
    async with broker.sessions() as session, session.begin():
        await audit.record(session, tenant.id, [audit.Event(
            "login.failed", "refused", flow.client_id, None,
            {"upstream": upstream, "reason": reason[:300]})], broker.clock.now())


async def _refuse_login(broker: Broker, tenant: TenantView, upstream: str,
                        flow: login_flow.Parked, reason: str) -> Response:
    """The upstream's answer was not acceptable: audited, and the client learns
    ``access_denied`` (the flow ends)."""
    await _login_failed(broker, tenant, upstream, flow, reason)
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        await pending.take(scope, "authz", flow.handle, broker.clock.now())
    if flow.return_to is not None:
        return pages.error_page("access_denied", UPSTREAM_FAILED, status=403)
    if flow.request is None:
        return await saml_idp.refuse(broker, tenant, flow, UPSTREAM_FAILED)
    return login_flow.error_redirect(tenant, flow.request, AccessDenied(UPSTREAM_FAILED))


async def _complete(broker: Broker, request: Request, tenant: TenantView,
                    upstream: UpstreamView, flow: login_flow.Parked, profile: users.Profile,
                    auth: dict[str, Any]) -> Response:
    """Link the user, start the session, and carry on with the parked request."""
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        user = await users.link(scope, upstream.name, profile, now)
        if user.status != "active":
            cookie = None
        else:
            cookie, session = await login_sessions.start(
                scope, user_id=user.id, upstream=upstream.name, auth=auth, now=now,
                lifetime=tenant.settings.session_lifetime)
        await audit.record(scope.session, tenant.id, [audit.Event(
            "login.succeeded" if cookie else "login.refused",
            "granted" if cookie else "refused", flow.client_id, user.id,
            {"upstream": upstream.name, "acr": auth.get("acr"), "amr": auth.get("amr")})], now)
    if cookie is None:
        if flow.return_to is not None:
            return pages.error_page("access_denied", "This user is disabled.", status=403)
        if flow.request is None:
            return await saml_idp.refuse(broker, tenant, flow, "this user is disabled")
        return login_flow.error_redirect(tenant, flow.request,
                                         AccessDenied("this user is disabled"))
    if flow.return_to is not None:  # a page of tessera (approvals) waited for this login
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            await pending.take(scope, "authz", flow.handle, now)
        response = RedirectResponse(flow.return_to, status_code=303,
                                    headers={"Cache-Control": "no-store"})
    elif flow.request is None:  # a legacy app's SAML AuthnRequest
        response = await saml_idp.resume(broker, request, tenant, flow, session, user)
    else:
        _, client = await broker.lookup(tenant.id, flow.request.client_id)
        if client is None or not client.live(broker.clock.now()):
            return pages.error_page("invalid_client",
                                    "The application is no longer available.")
        response = await login_flow.proceed(broker, request, tenant, client, flow.request,
                                            handle=flow.handle, established=(session, user))
    response.set_cookie(login_flow.SESSION_COOKIE, cookie,
                        max_age=tenant.settings.session_lifetime,
                        **login_flow.cookie_options(broker, tenant))
    return response
