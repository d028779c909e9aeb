"""Approvers decide CIBA requests (and a managed connection's ``approve`` scopes) here.

  GET  /t/{tenant}/approvals                     the logged-in user's pending requests (HTML);
                                                 no session: log in through the tenant's
                                                 upstream IdP first, then back here
  POST /t/{tenant}/approvals/{id}/approve|deny   a form with a CSRF token bound to the session
  GET  /t/{tenant}/approvals.json                the same list as JSON (session cookie), or
                                                 every pending request (admin bearer)
  POST /t/{tenant}/approvals.json                ``{"id", "decision": "approve"|"deny"}``
                                                 (JSON only: a cross-site form cannot send it)

A user decides only requests addressed to them (approver = their user id, or ``group:<g>``
of a group they belong to). Every decision is audited (``ciba.approved`` / ``ciba.denied``)
with who, when and exactly what the approver was shown; ping and push clients are notified.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters import json_reader, rar
from adapters.errors import AccessDenied, InvalidRequest, InvalidToken, NotFound, OAuthError
from broker import ciba_notify, login_flow, pages
from broker.endpoints.consent import SCOPE_WORDS
from broker.errors import NO_STORE, error_response
from broker.forms import read_form
from broker.json_response import JSONResponse
from broker.runtime import Broker, TenantView
from tenants import audit, ciba
from tenants.models import CibaRequest, LoginSession, User
from tenants.scope import tenant_scope

DECISIONS = {"approve": True, "deny": False}
MAX_BODY_BYTES = 16 * 1024


def _csrf(session: LoginSession, handle: str) -> str:
    return hmac.new(session.handle.encode(), f"approvals|{handle}".encode(),
                    hashlib.sha256).hexdigest()


def shown(row: CibaRequest, types: dict[str, rar.DetailType]) -> dict[str, Any]:
    """What an approver sees of a request (also what the audit records they saw)."""
    ctx = row.context or {}
    return {
        "id": row.handle, "client_id": row.client_id, "user_id": row.user_id,
        "approver": row.approver, "kind": ctx.get("kind", "ciba"),
        "audience": ctx.get("audience"),
        "scope": list(row.scope),
        "scope_words": [SCOPE_WORDS.get(s, f"use {s}") for s in row.scope],
        "binding_message": row.binding_message,
        "authorization_details": [rar.describe(d, types) for d in row.authorization_details],
        "expires_at": int(row.expires_at),
    }


def _page(tenant: TenantView, user: User, session: LoginSession,
          items: list[dict[str, Any]]) -> Response:
    blocks = []
    for item in items:
        words = "".join(f"<li>{escape(w)}</li>" for w in item["scope_words"])
        details = "".join(f"<li>{escape(d)}</li>" for d in item["authorization_details"])
        message = (f"<p>Code shown by the application: <strong class=binding>"
                   f"{escape(item['binding_message'])}</strong></p>"
                   if item["binding_message"] else "")
        where = (f"<p class=muted>at {escape(item['audience'])}</p>"
                 if item.get("audience") else "")
        base = f"{tenant.issuer}/approvals/{escape(item['id'])}"
        csrf = escape(_csrf(session, item["id"]))
        blocks.append(
            f"<li class=request data-id='{escape(item['id'])}'>"
            f"<p><strong>{escape(item['client_id'])}</strong> asks to:</p><ul>{words}{details}"
            f"</ul>{where}{message}"
            f"<form method=post action='{base}/approve'><input type=hidden name=csrf "
            f"value='{csrf}'><button name=decision value=approve>Approve</button></form>"
            f"<form method=post action='{base}/deny'><input type=hidden name=csrf "
            f"value='{csrf}'><button name=decision value=deny>Deny</button></form></li>")
    who = escape(user.email or user.name or user.id)
    body = (f"<p class=muted>Signed in as {who}.</p>"
            + (f"<ul>{''.join(blocks)}</ul>" if blocks else "<p id=none>Nothing is waiting "
               "for your approval.</p>"))
    return pages.page("Pending approvals", body)


async def _pending(broker: Broker, tenant: TenantView, user: User) -> list[dict[str, Any]]:
    types = await broker.detail_types(tenant.id)
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        rows = await ciba.pending_for(scope, user, broker.clock.now())
    return [shown(r, types) for r in rows]


async def decide(broker: Broker, tenant: TenantView, handle: str, approve: bool,
                 user: User | None, via: str) -> dict[str, Any]:
    """Record the decision of ``user`` (None: the tenant administrator) on request
    ``handle``; raise ``NotFound`` / ``AccessDenied`` when it is not theirs to decide."""
    now = broker.clock.now()
    types = await broker.detail_types(tenant.id)
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        row = await ciba.by_handle(scope, handle)
        if row is None or ciba.effective_status(row, now) != "pending":
            raise NotFound("no such pending request")
        if user is not None and not ciba.may_decide(row, user):
            raise AccessDenied("this request is not addressed to you")
        seen = shown(row, types)
        by = user.id if user is not None else (audit.current_actor() or "admin")[:64]
        if not await ciba.decide(scope, row, approve=approve, by=by, now=now):
            raise NotFound("no such pending request")
        await audit.record(scope.session, tenant.id, [audit.Event(
            "ciba.approved" if approve else "ciba.denied", "granted" if approve else "refused",
            row.client_id, row.user_id,
            {"decided_by": by, "decided_by_email": user.email if user else None,
             "decided_at": now, "via": via, "shown": seen})], now)
        mode = row.delivery_mode
    if mode in ("ping", "push"):
        ciba_notify.notify(broker, tenant, handle)
    return {"id": handle, "status": "approved" if approve else "denied"}


@pages.tenant_page
async def page(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """GET /approvals."""
    found = await login_flow.current_session(broker, tenant, request)
    if found is None:
        login = f"{tenant.issuer}/login?flow="
        return await login_flow.park_return(
            broker, tenant, f"/t/{tenant.id}/approvals",
            lambda h: RedirectResponse(login + h, status_code=303))
    session, user = found
    return _page(tenant, user, session, await _pending(broker, tenant, user))


@pages.tenant_page
async def decide_form(request: Request, broker: Broker, tenant: TenantView) -> Response:
    """POST /approvals/{id}/approve|deny."""
    found = await login_flow.current_session(broker, tenant, request)
    action = request.path_params["decision"]
    handle = request.path_params["id"]
    if found is None or action not in DECISIONS:
        return pages.error_page("invalid_request", "Sign in again to decide.", status=400)
    session, user = found
    try:
        form = await read_form(request, 16 * 1024)
        if not hmac.compare_digest((form.get("csrf") or "").encode(),  # bytes: any input
                                   _csrf(session, handle).encode()):
            raise InvalidRequest("The approval form was not ours.")
        await decide(broker, tenant, handle, DECISIONS[action], user, "page")
    except OAuthError as exc:
        return pages.error_page(exc.error, exc.description, status=exc.status)
    return RedirectResponse(f"{tenant.issuer}/approvals", status_code=303,
                            headers={"Cache-Control": "no-store"})


def _admin(request: Request, broker: Broker) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    if not hmac.compare_digest(token.strip().encode(),
                               broker.settings.admin_token_value().encode()):
        raise InvalidToken("unknown bearer token")
    return True


async def api(request: Request) -> Response:
    """GET/POST /approvals.json."""
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
        admin = _admin(request, broker)
        user = None
        if not admin:
            found = await login_flow.current_session(broker, tenant, request)
            if found is None:
                raise InvalidToken("log in at the approvals page, or use an admin bearer")
            user = found[1]
        if request.method == "GET":
            return JSONResponse({"pending": await every_pending(broker, tenant) if admin
                                 else await _pending(broker, tenant, user)}, headers=NO_STORE)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise InvalidRequest("send application/json")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidRequest("body too large")
        try:
            body = json_reader.load_object(raw, max_bytes=MAX_BODY_BYTES)
        except json_reader.JSONInputError as exc:
            raise InvalidRequest(f"body must be a JSON object: {exc}") from None
        if body.get("decision") not in DECISIONS or not isinstance(body.get("id"), str):
            raise InvalidRequest('give {"id": ..., "decision": "approve" | "deny"}')
        with audit.acting_as("operator" if admin else f"user:{tenant.id}/{user.id}"):
            result = await decide(broker, tenant, body["id"], DECISIONS[body["decision"]],
                                  user, "admin_api" if admin else "api")
        return JSONResponse(result, headers=NO_STORE)
    except OAuthError as exc:
        return error_response(exc)


async def every_pending(broker: Broker, tenant: TenantView) -> list[dict[str, Any]]:
    """Every pending request of the tenant (the administrator's view)."""
    now = broker.clock.now()
    types = await broker.detail_types(tenant.id)
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        rows = (await scope.session.execute(select(CibaRequest).where(
            CibaRequest.status == "pending", CibaRequest.expires_at > now)
            .order_by(CibaRequest.created_at))).scalars().all()
    return [shown(r, types) for r in rows]
