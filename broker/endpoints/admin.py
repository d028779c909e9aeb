"""The JSON admin API under ``/admin/v1/``, guarded by the super-admin bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters import json_reader
from adapters.errors import InvalidRequest, InvalidToken, OAuthError
from broker import login_admin
from broker import management as ops
from broker.endpoints import admin_anomaly, admin_api_keys, admin_legacy_apps, admin_runtime
from broker.errors import challenge, error_response
from broker.runtime import Broker

Handler = Callable[[Request, Broker, dict[str, Any]], Awaitable[Any]]


def _authorized(request: Request, broker: Broker) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = broker.settings.admin_token_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                             expected.encode()):
        raise InvalidToken("admin bearer token required",
                           headers={"WWW-Authenticate": challenge(
                               "Bearer", {"realm": "tessera-admin", "error": "invalid_token"})})


async def _body(request: Request) -> dict[str, Any]:
    if request.method not in ("POST", "PUT"):
        return {}
    raw = await request.body()
    limit = request.app.state.broker.settings.max_body_bytes
    if len(raw) > limit:
        raise InvalidRequest("request body too large")
    if not raw.strip():
        return {}
    try:
        return json_reader.load_object(raw, max_bytes=limit)
    except json_reader.JSONInputError as exc:
        raise InvalidRequest(f"body must be a JSON object: {exc}") from None


def endpoint(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        try:
            _authorized(request, broker)
            result = await handler(request, broker, await _body(request))
        except OAuthError as exc:
            return error_response(exc)
        return JSONResponse(result, status_code=status, headers={"Cache-Control": "no-store"})

    return run


def _str_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{name} must be a list of strings")
    return value


async def _create_tenant(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidRequest("name is required")
    settings = body.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise InvalidRequest("settings must be an object")
    return await ops.create_tenant(broker, name, display_name=body.get("display_name"),
                                   settings=settings)


async def _create_client(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("name is required")
    lifetime = body.get("access_token_lifetime", 300)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool):
        raise InvalidRequest("access_token_lifetime must be an integer")
    jwks = body.get("jwks")
    if jwks is not None and not isinstance(jwks, dict):
        raise InvalidRequest("jwks must be an object")
    return await ops.create_client(
        broker, request.path_params["tenant"], name=name, client_id=body.get("client_id"),
        auth_method=str(body.get("token_endpoint_auth_method", "client_secret_basic")),
        scopes=_str_list(body, "scopes"), audiences=_str_list(body, "audiences"), jwks=jwks,
        access_token_lifetime=lifetime,
        dpop_bound_access_tokens=bool(body.get("dpop_bound_access_tokens", False)),
        redirect_uris=_str_list(body, "redirect_uris"),
        post_logout_redirect_uris=_str_list(body, "post_logout_redirect_uris"),
        first_party=bool(body.get("first_party", True)),
        require_par=bool(body.get("require_pushed_authorization_requests", False)),
        authorization_details_types=_str_list(body, "authorization_details_types"),
        **{name: _opt_str(body, name) for name in (
            "tls_client_auth_subject_dn", "tls_client_auth_san_uri", "tls_client_auth_san_dns")},
        tls_client_certificate_bound_access_tokens=bool(
            body.get("tls_client_certificate_bound_access_tokens", False)),
        **{name: _opt_str(body, name) for name in (
            "backchannel_token_delivery_mode", "backchannel_client_notification_endpoint")},
    )


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


def _opt_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise InvalidRequest(f"{name} must be a number")
    return value


async def _register_partner(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    issuer, name = _opt_str(body, "issuer"), _opt_str(body, "display_name")
    if not issuer or not name:
        raise InvalidRequest("issuer and display_name are required")
    jwks = body.get("jwks")
    if jwks is not None and not isinstance(jwks, dict):
        raise InvalidRequest("jwks must be an object")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object")
    return await ops.register_partner(
        broker, issuer=issuer, display_name=name, partner_id=_opt_str(body, "id"),
        jwks_uri=_opt_str(body, "jwks_uri"), jwks=jwks, contact=_opt_str(body, "contact") or "",
        metadata=metadata, expires_at=_opt_number(body, "expires_at"),
    )


async def _add_trust_link(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    ceiling = body.get("scope_ceiling")
    if ceiling is not None:
        ceiling = _str_list(body, "scope_ceiling")
    return await ops.add_trust_link(
        broker, request.path_params["tenant"], partner_id=_opt_str(body, "partner"),
        peer_tenant=_opt_str(body, "tenant"), scope_ceiling=ceiling,
        expires_at=_opt_number(body, "expires_at"), **_directions(body),
    )


def _directions(body: dict[str, Any]) -> dict[str, bool]:
    """``"directions": ["accept", "send"]`` (either or both)."""
    value = body.get("directions")
    if not isinstance(value, list) or not value or any(
            d not in ("accept", "send") for d in value):
        raise InvalidRequest('directions: a non-empty list of "accept" and "send"')
    return {"accept": "accept" in value, "send": "send" in value}


async def _trust_link_directions(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    flows = _directions(body)
    return await ops.set_trust_link_directions(
        broker, request.path_params["tenant"], request.path_params["link"], **flows)


async def _put_connection(request: Request, broker: Broker, body: dict[str, Any]) -> Any:
    rules = body.get("rules", {})
    if not isinstance(rules, dict):
        raise InvalidRequest("rules must be an object")
    lifetime = body.get("max_lifetime", 300)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool):
        raise InvalidRequest("max_lifetime must be an integer")
    return await ops.put_managed_connection(
        broker, request.path_params["tenant"], client_id=_opt_str(body, "client_id") or "",
        audience=_opt_str(body, "audience") or "", rules=rules,
        remote_client_id=_opt_str(body, "remote_client_id") or "",
        resources=_str_list(body, "resources"), max_lifetime=lifetime,
        default_rule=_opt_str(body, "default_rule") or "deny",
        approver=_opt_str(body, "approver"),
    )


def _status_route(path: str, status: str, fn: Callable[..., Awaitable[Any]],
                  *keys: str) -> Route:
    return Route(path, endpoint(
        lambda r, b, _: fn(b, *[r.path_params[k] for k in keys], status)), methods=["POST"])


def registry_routes() -> list[Route]:
    p = "/admin/v1/partners/{partner}"
    t = "/admin/v1/tenants/{tenant}"
    links = t + "/trust-links/{link}"
    return [
        Route("/admin/v1/partners", endpoint(lambda r, b, _: ops.list_partners(b)),
              methods=["GET"]),
        Route("/admin/v1/partners", endpoint(_register_partner, 201), methods=["POST"]),
        *[_status_route(f"{p}/{verb}", status, ops.set_partner_status, "partner")
          for verb, status in (("activate", "active"), ("suspend", "suspended"),
                               ("revoke", "revoked"))],
        Route(t + "/trust-links", endpoint(
            lambda r, b, _: ops.list_trust_links(b, r.path_params["tenant"])), methods=["GET"]),
        Route(t + "/trust-links", endpoint(_add_trust_link, 201), methods=["POST"]),
        Route(links + "/directions", endpoint(_trust_link_directions), methods=["PUT"]),
        *[_status_route(f"{links}/{verb}", status, ops.set_trust_link_status, "tenant", "link")
          for verb, status in (("suspend", "suspended"), ("resume", "active"),
                               ("revoke", "revoked"))],
        Route(t + "/managed-connections", endpoint(
            lambda r, b, _: ops.list_managed_connections(b, r.path_params["tenant"])),
            methods=["GET"]),
        Route(t + "/managed-connections", endpoint(_put_connection), methods=["PUT", "POST"]),
        Route(t + "/managed-connections/delete", endpoint(
            lambda r, b, body: ops.delete_managed_connection(
                b, r.path_params["tenant"], _opt_str(body, "client_id") or "",
                _opt_str(body, "audience") or "")), methods=["POST"]),
    ]


def routes() -> list[Route]:
    t = "/admin/v1/tenants/{tenant}"
    c = t + "/clients/{client_id}"
    return [
        Route("/admin/v1/tenants", endpoint(lambda r, b, _: ops.list_tenants(b)), methods=["GET"]),
        Route("/admin/v1/tenants", endpoint(_create_tenant, 201), methods=["POST"]),
        Route(t, endpoint(lambda r, b, _: ops.get_tenant(b, r.path_params["tenant"])),
              methods=["GET"]),
        Route(t + "/disable", endpoint(
            lambda r, b, _: ops.set_tenant_status(b, r.path_params["tenant"], "disabled")),
            methods=["POST"]),
        Route(t + "/enable", endpoint(
            lambda r, b, _: ops.set_tenant_status(b, r.path_params["tenant"], "active")),
            methods=["POST"]),
        Route(t + "/clients", endpoint(
            lambda r, b, _: ops.list_clients(b, r.path_params["tenant"])), methods=["GET"]),
        Route(t + "/clients", endpoint(_create_client, 201), methods=["POST"]),
        Route(c, endpoint(lambda r, b, _: ops.get_client(
            b, r.path_params["tenant"], r.path_params["client_id"])), methods=["GET"]),
        Route(c + "/disable", endpoint(lambda r, b, _: ops.set_client_status(
            b, r.path_params["tenant"], r.path_params["client_id"], "disabled")),
            methods=["POST"]),
        Route(c + "/enable", endpoint(lambda r, b, _: ops.set_client_status(
            b, r.path_params["tenant"], r.path_params["client_id"], "active")),
            methods=["POST"]),
        Route(t + "/keys", endpoint(lambda r, b, _: ops.list_keys(b, r.path_params["tenant"])),
              methods=["GET"]),
        Route(t + "/keys/rotate", endpoint(
            lambda r, b, _: ops.rotate_keys(b, r.path_params["tenant"])), methods=["POST"]),
        Route(t + "/audit/verify", endpoint(
            lambda r, b, _: ops.verify_audit(b, r.path_params["tenant"])), methods=["GET"]),
        *registry_routes(),
        *login_routes(),
        *admin_api_keys.routes(),
        *admin_legacy_apps.routes(),
        *admin_runtime.routes(),
        *admin_anomaly.routes(),
    ]


def login_routes() -> list[Route]:
    t = "/admin/v1/tenants/{tenant}"
    up = t + "/upstreams/{upstream}"
    return [
        Route(t + "/upstreams", endpoint(
            lambda r, b, _: login_admin.list_upstreams(b, r.path_params["tenant"])),
            methods=["GET"]),
        Route(t + "/upstreams", endpoint(
            lambda r, b, body: login_admin.create_upstream(b, r.path_params["tenant"], body),
            201), methods=["POST"]),
        *[Route(f"{up}/{verb}", endpoint(
            lambda r, b, _, status=status: login_admin.set_upstream_status(
                b, r.path_params["tenant"], r.path_params["upstream"], status)),
            methods=["POST"]) for verb, status in (("disable", "disabled"),
                                                   ("enable", "active"))],
        Route(t + "/authorization-details-types", endpoint(
            lambda r, b, _: login_admin.list_detail_types(b, r.path_params["tenant"])),
            methods=["GET"]),
        Route(t + "/authorization-details-types", endpoint(
            lambda r, b, body: login_admin.register_detail_type(
                b, r.path_params["tenant"], body), 201), methods=["POST", "PUT"]),
        Route(t + "/users", endpoint(
            lambda r, b, _: login_admin.list_users(b, r.path_params["tenant"])),
            methods=["GET"]),
    ]
