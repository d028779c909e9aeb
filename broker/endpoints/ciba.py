"""POST /t/{tenant}/bc-authorize: the backchannel authentication endpoint (OpenID CIBA Core
1.0 §7). Client-authenticated as at the token endpoint; confidential clients only.

Checks, in order (first failure answers):
  client authentication                                  invalid_client (401)
  a public client                                        unauthorized_client
  ``scope`` given / includes ``openid`` / allowed         invalid_request / invalid_scope
  exactly one of login_hint, id_token_hint, login_hint_token   invalid_request
  login_hint_token (not supported)                       invalid_request
  the hinted user (e-mail or ``sub``; an ID token of this tenant) unknown_user_id
  ``binding_message`` (≤ 64 printable characters)        invalid_binding_message
  ``requested_expiry`` (positive integer seconds)        invalid_request
  ``authorization_details`` (RFC 9396)                   invalid_authorization_details
  ping/push: ``client_notification_token`` (≤ 1024)      invalid_request
Answer 200 ``{auth_req_id, expires_in, interval}``; the user (the approver) then decides at
/t/{tenant}/approvals, and a tenant webhook ``approval.pending`` tells them so. ``user_code``
is not supported and ignored (``backchannel_user_code_parameter_supported`` false);
``acr_values`` is recorded, not enforced.
"""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from adapters import jose, rar
from adapters.errors import InvalidRequest, InvalidScope, OAuthError, UnauthorizedClient
from broker import ciba_notify
from broker.authorization_request import OIDC_SCOPES
from broker.endpoints.client_request import ClientRequest, authenticate_request, refuse
from broker.errors import NO_STORE
from broker.forms import Form
from broker.json_response import JSONResponse
from broker.runtime import Broker, ClientView, TenantView
from tenants import audit, ciba
from tenants.models import User
from tenants.scope import tenant_scope

MAX_BINDING_MESSAGE: Final = 64
MAX_NOTIFICATION_TOKEN: Final = 1024
# printable characters, no control characters (shown verbatim on the approver's screen)
_BINDING: Final = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,64}")


class UnknownUserId(OAuthError):
    error = "unknown_user_id"
    status = 400


class InvalidBindingMessage(OAuthError):
    error = "invalid_binding_message"
    status = 400


def _scope(form: Form, client: ClientView) -> tuple[str, ...]:
    raw = form.get("scope")
    if not raw:
        raise InvalidRequest("scope is required")
    scope = tuple(dict.fromkeys(raw.split()))
    if "openid" not in scope:
        raise InvalidScope("scope must include openid")
    outside = [s for s in scope if s not in OIDC_SCOPES and s not in client.scopes]
    if outside:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(outside)[:200]}")
    return scope


def _binding_message(form: Form) -> str | None:
    message = form.get("binding_message")
    if message is None:
        return None
    if not _BINDING.fullmatch(message) or message != message.strip():
        raise InvalidBindingMessage(f"binding_message: 1-{MAX_BINDING_MESSAGE} printable "
                                    "characters, no surrounding spaces")
    return message


def _lifetime(form: Form, tenant: TenantView) -> int:
    default = tenant.settings.ciba_request_lifetime
    raw = form.get("requested_expiry")
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidRequest("requested_expiry must be a positive number of seconds")
    return min(int(raw), default)


async def _hinted_user(broker: Broker, tenant: TenantView, form: Form) -> User:
    hints = [n for n in ("login_hint", "id_token_hint", "login_hint_token") if n in form]
    if len(hints) != 1:
        raise InvalidRequest("give exactly one of login_hint, id_token_hint, login_hint_token")
    if hints[0] == "login_hint_token":
        raise InvalidRequest("login_hint_token is not supported; use login_hint or "
                             "id_token_hint")
    value = form.get(hints[0]) or ""
    if hints[0] == "id_token_hint":
        try:
            kid = jose.unverified_header(value).get("kid")
            key = (await broker.keys.verification_key(tenant.id, kid)
                   if isinstance(kid, str) else None)
            claims = jose.verify_jws(value, lambda _h: key).claims
        except jose.JWTError as exc:
            raise InvalidRequest("id_token_hint is not an ID token of this tenant") from exc
        if claims.get("iss") != tenant.issuer or not isinstance(claims.get("sub"), str):
            raise InvalidRequest("id_token_hint is not an ID token of this tenant")
        value = claims["sub"]
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        user = await ciba.find_user(scope, value)
    if user is None:
        raise UnknownUserId("no active user of this tenant matches the hint")
    return user


def _delivery(form: Form, client: ClientView) -> tuple[str, str | None]:
    mode = client.backchannel_token_delivery_mode or "poll"
    token = form.get("client_notification_token")
    if mode == "poll":
        return mode, None
    if not client.backchannel_client_notification_endpoint:
        raise UnauthorizedClient(f"{mode} mode needs a registered notification endpoint")
    if not token or len(token) > MAX_NOTIFICATION_TOKEN:
        raise InvalidRequest(f"{mode} mode needs a client_notification_token of 1-"
                             f"{MAX_NOTIFICATION_TOKEN} characters")
    return mode, token


async def bc_authorize(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    state = ClientRequest(request.path_params["tenant"])
    try:
        authenticated = await authenticate_request(broker, request, state, "bc-authorize")
        assert state.tenant is not None and state.form is not None
        tenant, form, client = state.tenant, state.form, authenticated.client
        if client.public:
            raise UnauthorizedClient("CIBA is for confidential clients")
        scope = _scope(form, client)
        user = await _hinted_user(broker, tenant, form)
        message = _binding_message(form)
        lifetime = _lifetime(form, tenant)
        details = rar.parse(form.get("authorization_details"))
        if details:
            rar.validate(details, await broker.detail_types(tenant.id),
                         allowed=client.authorization_details_types)
        mode, notification_token = _delivery(form, client)
    except OAuthError as exc:
        refused = await refuse(broker, state, exc, action="ciba.refused")
        assert refused is not None
        return refused
    now = broker.clock.now()
    auth_req_id = ciba.new_auth_req_id()
    context: dict[str, Any] = {"kind": "ciba"}
    if form.get("acr_values"):
        context["acr_values"] = (form.get("acr_values") or "")[:200]
    sealed_token = None
    if notification_token is not None:
        sealed_token = ciba_notify.sealed(broker, tenant.id, client.client_id, "cnt",
                                          notification_token)
        context["auth_req_id_sealed"] = ciba_notify.sealed(broker, tenant.id, client.client_id,
                                                           "id", auth_req_id)
        context["notification_endpoint"] = client.backchannel_client_notification_endpoint
    interval = tenant.settings.ciba_poll_interval
    async with tenant_scope(broker.sessions, tenant.id) as db:
        _, row = await ciba.create(
            db, client_id=client.client_id, user_id=user.id, approver=user.id, scope_=scope,
            details=details, binding_message=message, delivery_mode=mode,
            notification_token_sealed=sealed_token, context=context, interval=interval,
            now=now, lifetime=lifetime, auth_req_id=auth_req_id)
        await audit.record(db.session, tenant.id, [audit.Event(
            "ciba.requested", "granted", client.client_id, user.id,
            {"request": row.handle[:16], "scope": list(scope), "delivery_mode": mode,
             "binding_message": message, "authorization_details": list(details),
             "expires_in": lifetime})], now)
    ciba_notify.announce(broker, tenant, row.handle, client.client_id, user.id, user.id, scope,
                         message, now + lifetime)
    return JSONResponse({"auth_req_id": auth_req_id, "expires_in": lifetime,
                         "interval": interval}, headers=NO_STORE)

