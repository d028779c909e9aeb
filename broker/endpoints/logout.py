"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the browser's session at
the tenant. ``post_logout_redirect_uri`` is honoured only when it is registered for the client
named by ``id_token_hint`` or ``client_id``; otherwise the user sees a signed-out page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters import jose
from adapters.errors import OAuthError
from broker import login_flow, pages
from broker.authorization_request import redirect_uri_matches
from broker.forms import read_params
from broker.runtime import Broker, TenantView
from tenants import audit, login_sessions
from tenants.scope import tenant_scope


async def _hint(broker: Broker, tenant: TenantView, token: str | None) -> dict[str, Any] | None:
    """The claims of an ID token this tenant issued (expired is fine: RP-Initiated §2)."""
    if not token:
        return None
    try:
        header = jose.unverified_header(token)
        kid = header.get("kid")
        key = await broker.keys.verification_key(tenant.id, kid) if isinstance(kid, str) else None
        claims = jose.verify_jws(token, lambda _h: key).claims
    except jose.JWTError:
        return None
    return claims if claims.get("iss") == tenant.issuer else None


async def logout(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
        params = await read_params(request, broker.settings.max_body_bytes)
    except OAuthError as exc:
        return pages.error_page(exc.error, exc.description, status=exc.status)
    hint = await _hint(broker, tenant, params.get("id_token_hint"))
    if params.get("id_token_hint") and hint is None:
        return pages.error_page("invalid_request", "The id_token_hint was not issued here.")
    client_id = params.get("client_id")
    hinted = hint.get("aud") if hint else None
    hinted = hinted[0] if isinstance(hinted, list) and hinted else hinted
    if client_id and hinted and client_id != hinted:
        return pages.error_page("invalid_request", "client_id and id_token_hint disagree.")
    client_id = client_id or (hinted if isinstance(hinted, str) else None)
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        _, client = await broker.lookup(tenant.id, client_id) if client_id else (None, None)
        if client is None or not client.live(broker.clock.now()) or not redirect_uri_matches(
                client.post_logout_redirect_uris, target):
            return pages.error_page("invalid_request", "post_logout_redirect_uri is not "
                                    "registered for this client.")
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        ended = await login_sessions.end(scope, now=now,
                                         value=request.cookies.get(login_flow.SESSION_COOKIE))
        if hint and isinstance(hint.get("sid"), str):
            ended += await login_sessions.end(scope, now=now, sid=hint["sid"])
        await audit.record(scope.session, tenant.id, [audit.Event(
            "logout", "revoked", client_id, hint.get("sub") if hint else None,
            {"sessions_ended": ended})], now)
    if target is not None:
        state = params.get("state")
        sep = "&" if "?" in target else "?"
        response: Response = RedirectResponse(
            target + (sep + urlencode({"state": state}) if state else ""), status_code=303)
    else:
        response = pages.logged_out()
    options = login_flow.cookie_options(broker, tenant)
    response.delete_cookie(login_flow.SESSION_COOKIE, path=options["path"],
                           secure=options["secure"], httponly=True, samesite=options["samesite"])
    return response
