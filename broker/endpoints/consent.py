"""The consent page for clients a tenant marks third-party (first-party clients never ask:
consent is enterprise policy). Shows the scopes and RAR details in words; the decision is a
POST carrying the flow handle and a token derived from the browser's flow cookie."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from adapters import rar
from adapters.errors import OAuthError
from broker import login_flow, pages
from broker.forms import read_form
from broker.runtime import Broker
from tenants import audit

SCOPE_WORDS = {
    "openid": "sign you in",
    "profile": "see your name and profile",
    "email": "see your e-mail address",
    "groups": "see the groups you belong to",
    "offline_access": "keep access while you are away",
}


def _csrf(flow: login_flow.Parked) -> str:
    return hmac.new(flow.binding.encode(), flow.handle.encode(), hashlib.sha256).hexdigest()


async def consent(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
        form = await read_form(request, 64 * 1024) if request.method == "POST" else None
    except OAuthError as exc:
        return pages.error_page(exc.error, exc.description, status=exc.status)
    handle = form.get("flow") if form is not None else request.query_params.get("flow")
    flow = await login_flow.parked(broker, tenant, handle)
    found = await login_flow.current_session(broker, tenant, request)
    if flow is None or flow.request is None or not flow.bound_to(request) or found is None:
        return pages.error_page("invalid_request", "This consent request has expired or "
                                "belongs to another browser.")
    req = flow.request
    _, client = await broker.lookup(tenant.id, req.client_id)
    if client is None or not client.live(broker.clock.now()):
        return pages.error_page("invalid_client", "The application is no longer available.")
    if form is None:
        types = await broker.detail_types(tenant.id)
        return pages.consent(
            client.client_id, f"{tenant.issuer}/consent",
            {"flow": flow.handle, "csrf": _csrf(flow)},
            [SCOPE_WORDS.get(s, f"use {s}") for s in req.scope],
            [rar.describe(d, types) for d in req.authorization_details])
    if not hmac.compare_digest((form.get("csrf") or "").encode(), _csrf(flow).encode()):
        return pages.error_page("invalid_request", "The consent form was not ours.")
    if form.get("decision") != "allow":
        return await login_flow.deny(broker, tenant, flow, found[1].id)
    async with broker.sessions() as session, session.begin():
        await audit.record(session, tenant.id, [audit.Event(
            "authorization.consented", "granted", client.client_id, found[1].id,
            {"scope": list(req.scope), "authorization_details": list(req.authorization_details)},
        )], broker.clock.now())
    return await login_flow.proceed(broker, request, tenant, client, req, handle=flow.handle,
                                    established=found, consent_given=True)
