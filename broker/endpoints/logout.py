"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the browser's session at
the tenant. ``post_logout_redirect_uri`` is honoured only when it is registered for the client
named by ``id_token_hint`` or ``client_id``; otherwise the user sees a signed-out page.

Who may end a session (§2: the OP SHOULD ask the user when it cannot be sure the request
comes from the RP):

  valid ``id_token_hint`` of this tenant   the RP asks: the session ends at once (the hint's
                                           ``sid`` and the browser's cookie)
  no hint, no live session                 nothing to end: "you are signed out" (or back to
                                           a registered ``post_logout_redirect_uri``)
  no hint, a live session                  a confirmation page; only its form, POSTed back with
                                           a CSRF token bound to this session
                                           (``logout=confirm``), ends the session
  a POST with ``logout=confirm`` or a      400 page, nothing ends
  ``csrf`` but not this session's token

A logout request the RP POSTs (§2 allows GET and POST) with neither is asked about like a GET.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters import jose
from adapters.errors import InvalidRequest, OAuthError
from broker import login_flow, pages
from broker.authorization_request import redirect_uri_matches
from broker.forms import Form, read_params
from broker.runtime import Broker, TenantView
from tenants import audit, login_sessions
from tenants.models import LoginSession
from tenants.scope import tenant_scope

CONFIRM = "confirm"  # the value of ``logout`` in the confirmation form
CARRIED = ("client_id", "post_logout_redirect_uri", "state")  # through the confirmation page


def csrf_token(session: LoginSession) -> str:
    """The confirmation form's token: only a page shown to this session's browser has it."""
    return hmac.new(session.handle.encode(), f"logout|{session.sid}".encode(),
                    hashlib.sha256).hexdigest()


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


async def _client_and_target(broker: Broker, tenant: TenantView, params: Form,
                             hint: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The client the request names (``client_id`` or the hint's audience) and the validated
    ``post_logout_redirect_uri``; ``InvalidRequest`` when they disagree or it is unregistered."""
    client_id = params.get("client_id")
    hinted = hint.get("aud") if hint else None
    hinted = hinted[0] if isinstance(hinted, list) and hinted else hinted
    if client_id and hinted and client_id != hinted:
        raise InvalidRequest("client_id and id_token_hint disagree.")
    client_id = client_id or (hinted if isinstance(hinted, str) else None)
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        _, client = await broker.lookup(tenant.id, client_id) if client_id else (None, None)
        if client is None or not client.live(broker.clock.now()) or not redirect_uri_matches(
                client.post_logout_redirect_uris, target):
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client.")
    return client_id, target


async def logout(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
        params = await read_params(request, broker.settings.max_body_bytes)
        hint = await _hint(broker, tenant, params.get("id_token_hint"))
        if params.get("id_token_hint") and hint is None:
            raise InvalidRequest("The id_token_hint was not issued here.")
        client_id, target = await _client_and_target(broker, tenant, params, hint)
    except OAuthError as exc:
        return pages.error_page(exc.error, exc.description, status=exc.status)
    if hint is not None:
        return await _end(broker, request, tenant, params, hint, client_id, target)
    found = await login_flow.current_session(broker, tenant, request)
    if found is None:  # nothing to end; the cookie (if any) is stale
        return _finish(broker, tenant, params, target)
    session, _user = found
    if request.method == "POST" and (params.get("logout") == CONFIRM or "csrf" in params):
        if not hmac.compare_digest((params.get("csrf") or "").encode(),
                                   csrf_token(session).encode()):
            return pages.error_page("invalid_request", "The sign-out form was not ours; "
                                    "nothing was signed out.")
        return await _end(broker, request, tenant, params, None, client_id, target, session)
    carried = {name: value for name in CARRIED if (value := params.get(name)) is not None}
    return pages.logout_confirm(tenant.id, f"{tenant.issuer}/logout",
                                {**carried, "csrf": csrf_token(session)}, CONFIRM)


async def _end(broker: Broker, request: Request, tenant: TenantView, params: Form,
               hint: dict[str, Any] | None, client_id: str | None, target: str | None,
               session: LoginSession | None = None) -> Response:
    """End the browser's session (and the hint's ``sid``), audit, and say goodbye."""
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        ended = await login_sessions.end(scope, now=now,
                                         value=request.cookies.get(login_flow.SESSION_COOKIE))
        if hint and isinstance(hint.get("sid"), str):
            ended += await login_sessions.end(scope, now=now, sid=hint["sid"])
        subject = hint.get("sub") if hint else (session.user_id if session else None)
        await audit.record(scope.session, tenant.id, [audit.Event(
            "logout", "revoked", client_id, subject,
            {"sessions_ended": ended, "confirmed_by_user": hint is None})], now)
    return _finish(broker, tenant, params, target)


def _finish(broker: Broker, tenant: TenantView, params: Form, target: str | None) -> Response:
    """Back to the registered ``post_logout_redirect_uri`` (with ``state``), or the signed-out
    page; either way the browser forgets the session cookie."""
    if target is not None:
        state = params.get("state")
        sep = "&" if "?" in target else "?"
        response: Response = RedirectResponse(
            target + (sep + urlencode({"state": state}) if state else ""), status_code=303,
            headers={"Cache-Control": "no-store"})
    else:
        response = pages.logged_out()
    options = login_flow.cookie_options(broker, tenant)
    response.delete_cookie(login_flow.SESSION_COOKIE, path=options["path"],
                           secure=options["secure"], httponly=True, samesite=options["samesite"])
    return response
