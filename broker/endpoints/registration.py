"""The registry's public doors for partners (no admin token): self-registration with an
invitation code (a JSON API call or a plain HTML form), and a registered partner's own status
and key refresh, authenticated by an ``entity-request+jwt`` it signs with its federation keys.

    GET  /registry/register   the registration form
    POST /registry/register   entity_id, invitation_code[, display_name]  -> 201 pending
    POST /registry/status     request=<entity-request+jwt>                -> its status
    POST /registry/refresh    request=<entity-request+jwt>                -> keys re-read now
"""

from __future__ import annotations

from html import escape
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from adapters import json_reader
from adapters.errors import InvalidRequest, OAuthError
from broker import pages, partner_registration
from broker.errors import error_response
from broker.forms import Form, parse_form
from broker.json_response import JSONResponse
from broker.runtime import Broker
from tenants import audit
from tenants.models import Partner

FIELDS = ("entity_id", "invitation_code", "display_name")
NO_STORE = {"Cache-Control": "no-store"}


async def _read(request: Request, limit: int) -> tuple[dict[str, str], bool]:
    """The parameters (JSON object of strings, or a form) and whether a form sent them."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise InvalidRequest("request body too large")
    except ClientDisconnect:
        raise InvalidRequest("client disconnected before the body was complete") from None
    if ctype == "application/x-www-form-urlencoded":
        form = Form(parse_form(bytes(body)))
        return {name: value for name in (*FIELDS, "request")
                if (value := form.get(name)) is not None}, True
    if ctype != "application/json":
        raise InvalidRequest("body must be application/json or a form")
    try:
        document = json_reader.load_object(bytes(body), max_bytes=limit)
    except ValueError as exc:
        raise InvalidRequest(f"body: {exc}") from None
    out: dict[str, str] = {}
    for name, value in document.items():
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string")
        out[name] = value
    return out, False


def status_of(partner: Partner) -> dict[str, Any]:
    fed = partner.federation_jwks or {"keys": []}
    return {
        "partner_id": partner.id, "entity_id": partner.issuer, "status": partner.status,
        "display_name": partner.display_name,
        "federation_kids": [k.get("kid") for k in fed.get("keys", [])],
        "jwks_uri": partner.jwks_uri,
        "token_kids": [k.get("kid") for k in (partner.jwks or {}).get("keys", [])],
        "keys_refreshed_at": None if partner.keys_refreshed_at is None
        else int(partner.keys_refreshed_at),
        "created_at": int(partner.created_at), "updated_at": int(partner.updated_at),
    }


def form_page(message: str = "", *, status: int = 200) -> Response:
    note = f"<p role=status><strong>{escape(message)}</strong></p>" if message else ""
    return pages.page("Register with the trust registry", (
        f"{note}<p>Your organisation publishes an OpenID Federation Entity Configuration at "
        "<code>{entity id}/.well-known/openid-federation</code>. Give its entity id and the "
        "invitation code a registry administrator sent you.</p>"
        "<form method=post action='/registry/register'>"
        "<p><label for=entity_id>Entity id (https URL)</label><br>"
        "<input id=entity_id name=entity_id type=url required size=48></p>"
        "<p><label for=invitation_code>Invitation code</label><br>"
        "<input id=invitation_code name=invitation_code required size=48 "
        "autocomplete=off></p>"
        "<p><label for=display_name>Organisation name (optional)</label><br>"
        "<input id=display_name name=display_name size=48 maxlength=200></p>"
        "<button>Register</button></form>"), status=status)


async def register_form(_request: Request) -> Response:
    return form_page()


async def register(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    is_form = False
    try:
        params, is_form = await _read(request, broker.settings.max_body_bytes)
        unknown = set(params) - set(FIELDS)
        if unknown and not is_form:
            raise InvalidRequest(f"unknown member {sorted(unknown)[0]!r}")
        entity_id, code = params.get("entity_id"), params.get("invitation_code")
        if not entity_id or not code:
            raise InvalidRequest("entity_id and invitation_code are required")
        name = params.get("display_name")
        if name is not None and (not 0 < len(name.strip()) <= 200
                                 or not name.isprintable()):
            raise InvalidRequest("display_name: 1 to 200 printable characters")
        with audit.acting_as(f"entity {entity_id}"):  # holding an invitation code
            partner = await partner_registration.register(
                broker, entity_id, invitation_code=code, display_name=name)
    except OAuthError as exc:
        if is_form:
            return form_page(exc.description or exc.error, status=exc.status)
        return error_response(exc)
    if is_form:
        return form_page(f"Registered as {partner.id}: pending until a registry administrator "
                         "approves it.", status=201)
    return JSONResponse(status_of(partner), status_code=201, headers=NO_STORE)


async def _signed(request: Request) -> Partner:
    broker: Broker = request.app.state.broker
    params, _ = await _read(request, broker.settings.max_body_bytes)
    token = params.get("request")
    if not token or set(params) - {"request"}:
        raise InvalidRequest("send exactly one parameter: request (an entity-request+jwt)")
    return await partner_registration.authenticate(broker, token)


async def status(request: Request) -> Response:
    try:
        partner = await _signed(request)
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse(status_of(partner), headers=NO_STORE)


async def refresh(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        partner = await _signed(request)
        with audit.acting_as(f"entity {partner.issuer}"):
            partner, changed = await partner_registration.refresh(broker, partner.id)
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse({**status_of(partner), "changed": changed}, headers=NO_STORE)
