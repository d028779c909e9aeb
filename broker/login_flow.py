"""The authorization code flow between /authorize and the redirect back to the client:
session, login through an upstream, consent, code (OpenID Connect Core §3.1.2, RFC 9207).

A request that cannot finish at once (no session, consent needed) is parked as a pending
``authz`` handle; the browser carries the handle in the URL and a binding secret in the
``tessera_flow`` cookie, so that a flow can only be resumed by the browser that started it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters import rar
from adapters.errors import AccessDenied, ConsentRequired, LoginRequired, OAuthError
from broker import pages
from broker.authorization_request import AuthorizationRequest
from broker.runtime import Broker, ClientView, TenantView
from tenants import audit, login_sessions, pending
from tenants.models import Grant, LoginSession, User
from tenants.scope import TenantScope, tenant_scope

FLOW_COOKIE = "tessera_flow"
SESSION_COOKIE = "tessera_session"
FLOW_LIFETIME = 900  # a login at the upstream must finish within 15 minutes


def cookie_options(broker: Broker, tenant: TenantView) -> dict[str, Any]:
    """HttpOnly, SameSite=Lax, scoped to the tenant's path, Secure on https. Every step that
    needs a cookie is a same-site request or a top-level GET (the SAML ACS, a cross-site
    POST, hands over to a same-site GET instead)."""
    return {"path": f"/t/{tenant.id}", "httponly": True,
            "secure": broker.settings.base_url.startswith("https://"), "samesite": "lax"}


def client_redirect(tenant: TenantView, req: AuthorizationRequest,
                    params: dict[str, str]) -> RedirectResponse:
    """Back to the client's registered redirect URI with ``state`` and ``iss`` (RFC 9207)."""
    values = {**params, **({"state": req.state} if req.state else {}), "iss": tenant.issuer}
    sep = "&" if "?" in req.redirect_uri else "?"
    return RedirectResponse(req.redirect_uri + sep + urlencode(values), status_code=303,
                            headers={"Cache-Control": "no-store"})


def error_redirect(tenant: TenantView, req: AuthorizationRequest,
                   exc: OAuthError) -> RedirectResponse:
    params = {"error": exc.error}
    if exc.description:
        params["error_description"] = exc.description
    return client_redirect(tenant, req, params)


async def audit_refusal(broker: Broker, tenant: TenantView, client_id: str | None,
                        exc: OAuthError) -> None:
    async with broker.sessions() as session, session.begin():
        await audit.record(session, tenant.id, [audit.Event(
            "authorization.refused", "refused", client_id, None,
            {"error": exc.error, "description": exc.description})], broker.clock.now())


async def refused(broker: Broker, tenant: TenantView, req: AuthorizationRequest,
                  exc: OAuthError) -> RedirectResponse:
    """Audit the refusal, then send it back to the client."""
    await audit_refusal(broker, tenant, req.client_id, exc)
    return error_redirect(tenant, req, exc)


@dataclass(frozen=True)
class Parked:
    """A pending request waiting for a login, with the browser binding it was parked with:
    an OAuth authorization request, or (``sso``) a SAML AuthnRequest of a legacy app."""

    handle: str
    request: AuthorizationRequest | None
    binding: str  # hash of the flow cookie's value
    sso: dict[str, Any] | None = None
    return_to: str | None = None  # a page of this tenant at tessera (``park_return``)

    @property
    def client_id(self) -> str | None:
        """The OAuth client, or the legacy app's entity ID."""
        if self.request is not None:
            return self.request.client_id
        return str(self.sso["entity_id"]) if self.sso else None

    @property
    def idp(self) -> str | None:
        return self.request.idp if self.request else None

    @property
    def login_hint(self) -> str | None:
        return self.request.login_hint if self.request else None

    def bound_to(self, request: Request) -> bool:
        cookie = request.cookies.get(FLOW_COOKIE)
        return cookie is not None and hmac.compare_digest(pending.handle_of(cookie),
                                                          self.binding)


async def park(broker: Broker, tenant: TenantView, req: AuthorizationRequest,
               response_for: Any) -> Response:
    """Store the request, set the binding cookie, and answer ``response_for(handle)``."""
    return await _park(broker, tenant, {"request": req.payload()}, req.client_id, response_for)


async def park_sso(broker: Broker, tenant: TenantView, sso: dict[str, Any],
                   response_for: Any) -> Response:
    """Park a legacy app's SAML AuthnRequest (``sso`` holds ``entity_id`` and what the
    response needs) until the user has logged in."""
    return await _park(broker, tenant, {"sso": sso}, str(sso["entity_id"]), response_for)


async def park_return(broker: Broker, tenant: TenantView, return_to: str,
                      response_for: Any) -> Response:
    """Park a page of this tenant (``return_to``: a path under ``/t/{tenant}/``, e.g. the
    approvals page) until the user has logged in; the login then redirects there."""
    if not return_to.startswith(f"/t/{tenant.id}/"):
        raise ValueError("return_to must be a page of this tenant")
    return await _park(broker, tenant, {"return_to": return_to}, "tessera", response_for)


async def _park(broker: Broker, tenant: TenantView, payload: dict[str, Any],
                client_id: str, response_for: Any) -> Response:
    handle, binding = pending.new_value(), pending.new_value()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        await pending.put(scope, "authz", handle, client_id=client_id[:128],
                          payload={**payload, "binding": pending.handle_of(binding)},
                          expires_at=broker.clock.now() + FLOW_LIFETIME)
    response: Response = response_for(handle)
    response.set_cookie(FLOW_COOKIE, binding, max_age=FLOW_LIFETIME,
                        **cookie_options(broker, tenant))
    return response


async def parked(broker: Broker, tenant: TenantView, handle: str | None) -> Parked | None:
    if not handle or len(handle) > 100:
        return None
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        row = await pending.peek(scope, "authz", handle, broker.clock.now())
    if row is None:
        return None
    raw = row.payload.get("request")
    return Parked(handle, AuthorizationRequest.from_payload(raw) if raw else None,
                  row.payload["binding"], row.payload.get("sso"),
                  row.payload.get("return_to"))


async def current_session(
    broker: Broker, tenant: TenantView, request: Request
) -> tuple[LoginSession, User] | None:
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        return await login_sessions.current(scope, request.cookies.get(SESSION_COOKIE),
                                            broker.clock.now())


def _needs_login(req: AuthorizationRequest, session: LoginSession | None, now: float,
                 fresh: bool) -> bool:
    if session is None:
        return True
    if fresh:
        return False
    if "login" in req.prompt:
        return True
    auth_time = session.auth.get("auth_time")
    return req.max_age is not None and (auth_time is None or now - auth_time > req.max_age)


async def _consented(scope: TenantScope, client: ClientView, user_id: str,
                     req: AuthorizationRequest) -> bool:
    """A live grant of this user to this client already covers what is asked."""
    grants = (await scope.session.execute(select(Grant).where(
        Grant.client_id == client.client_id, Grant.user_id == user_id,
        Grant.status == "active"))).scalars().all()
    return any(set(req.scope) <= set(g.scope)
               and rar.covered(req.authorization_details, g.authorization_details)
               for g in grants)


async def proceed(
    broker: Broker, request: Request, tenant: TenantView, client: ClientView,
    req: AuthorizationRequest, *, handle: str | None = None,
    established: tuple[LoginSession, User] | None = None, consent_given: bool = False,
) -> Response:
    """Take the request as far as it can go now: to the login chooser, to the consent page,
    or back to the client with a code. ``handle``: the request is parked already;
    ``established``: the session a login just created."""
    now = broker.clock.now()
    found = established or await current_session(broker, tenant, request)
    session, user = found if found else (None, None)
    if _needs_login(req, session, now, fresh=established is not None):
        if "none" in req.prompt:
            return await refused(broker, tenant, req, LoginRequired("no session at the tenant"))
        login = f"{tenant.issuer}/login?flow="
        if handle is not None:
            return RedirectResponse(login + handle, status_code=303)
        return await park(broker, tenant, req,
                          lambda h: RedirectResponse(login + h, status_code=303))
    assert session is not None and user is not None
    if not client.first_party and not consent_given:
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            known = "consent" not in req.prompt and await _consented(scope, client, user.id, req)
        if not known:
            if "none" in req.prompt:
                return await refused(broker, tenant, req,
                                     ConsentRequired("the user must consent"))
            consent = f"{tenant.issuer}/consent?flow="
            if handle is not None:
                return RedirectResponse(consent + handle, status_code=303)
            return await park(broker, tenant, req,
                              lambda h: RedirectResponse(consent + h, status_code=303))
    return await issue_code(broker, tenant, req, session, user, handle=handle)


async def issue_code(
    broker: Broker, tenant: TenantView, req: AuthorizationRequest, session: LoginSession,
    user: User, *, handle: str | None,
) -> Response:
    now = broker.clock.now()
    code = pending.new_value()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        if handle is not None and await pending.take(scope, "authz", handle, now) is None:
            return pages.error_page("invalid_request", "This sign-in was already completed.")
        await pending.put(scope, "code", code, client_id=req.client_id, payload={
            "request": req.payload(), "user_id": user.id, "sid": session.sid,
            "auth": session.auth}, expires_at=now + tenant.settings.code_lifetime)
        await audit.record(scope.session, tenant.id, [audit.Event(
            "authorization.code_issued", "granted", req.client_id, user.id,
            {"scope": list(req.scope), "upstream": session.upstream,
             "authorization_details": list(req.authorization_details)})], now)
    return client_redirect(tenant, req, {"code": code})


async def deny(broker: Broker, tenant: TenantView, parked_: Parked, user_id: str | None,
               ) -> Response:
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        await pending.take(scope, "authz", parked_.handle, now)
        await audit.record(scope.session, tenant.id, [audit.Event(
            "authorization.denied", "refused", parked_.request.client_id, user_id,
            {"scope": list(parked_.request.scope), "reason": "user denied consent"})], now)
    return error_redirect(tenant, parked_.request, AccessDenied("the user denied access"))
