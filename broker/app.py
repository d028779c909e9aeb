"""Starlette application factory: per-tenant routes under ``/t/{tenant}``, admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker import console, metrics
from broker.admin import http as admin
from broker.client_cert import ClientCertMiddleware
from broker.endpoints import (
    approvals,
    authorize,
    ciba,
    consent,
    demo,
    federation,
    health,
    introspect,
    login,
    logout,
    metadata,
    registration,
    resource_metadata,
    revocation_feed,
    revoke,
    saml_idp,
    token,
    userinfo,
)
from broker.json_response import JSONResponse
from broker.observe import ObserveMiddleware
from broker.request_context import RequestContextMiddleware
from broker.runtime import Broker
from tenants.migrate import upgrade

TENANT = "/t/{tenant}"


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "invalid_request"}.get(exc.status_code, "invalid_request")
    return JSONResponse({"error": code, "error_description": str(exc.detail)},
                        status_code=exc.status_code,
                        headers={**(exc.headers or {}), "Cache-Control": "no-store"})


def create_app(broker: Broker, *, background: bool = True, migrate: bool = True) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await upgrade(broker.engine)
        if background:
            broker.start_background()
        try:
            yield
        finally:
            await broker.close()

    routes = [
        Route("/healthz", health.liveness, methods=["GET"]),
        Route("/readyz", health.readiness, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route(TENANT + "/token", token.token_endpoint, methods=["POST"]),
        Route(TENANT + "/introspect", introspect.introspection_endpoint, methods=["POST"]),
        Route(TENANT + "/revoke", revoke.revocation_endpoint, methods=["POST"]),
        Route(TENANT + "/jwks", metadata.jwks, methods=["GET"]),
        Route(TENANT + "/authorize", authorize.authorize, methods=["GET", "POST"]),
        Route(TENANT + "/par", authorize.par, methods=["POST"]),
        Route(TENANT + "/bc-authorize", ciba.bc_authorize, methods=["POST"]),
        Route(TENANT + "/approvals", approvals.page, methods=["GET"]),
        Route(TENANT + "/approvals.json", approvals.api, methods=["GET", "POST"]),
        Route(TENANT + "/approvals/{id}/{decision}", approvals.decide_form, methods=["POST"]),
        Route(TENANT + "/consent", consent.consent, methods=["GET", "POST"]),
        Route(TENANT + "/login", login.chooser, methods=["GET"]),
        Route(TENANT + "/login/{upstream}", login.start, methods=["GET"]),
        Route(TENANT + "/login/{upstream}/callback", login.oidc_callback, methods=["GET"]),
        Route(TENANT + "/login/{upstream}/finish", login.finish, methods=["GET"]),
        # the IdP for legacy apps, before the upstream routes ("idp" is not an upstream name)
        Route(TENANT + "/saml/idp/metadata", saml_idp.metadata, methods=["GET"]),
        Route(TENANT + "/saml/idp/sso", saml_idp.sso, methods=["GET", "POST"]),
        Route(TENANT + "/saml/{upstream}/acs", login.saml_acs, methods=["POST"]),
        Route(TENANT + "/saml/{upstream}/metadata", login.saml_metadata, methods=["GET"]),
        Route(TENANT + "/userinfo", userinfo.userinfo, methods=["GET", "POST"]),
        Route(TENANT + "/logout", logout.logout, methods=["GET", "POST"]),
        Route(TENANT + "/.well-known/openid-configuration", metadata.discovery, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server" + TENANT, metadata.discovery,
              methods=["GET"]),
        # OpenID Connect Discovery by RFC 8414 §3.1 path insertion (what the MCP SDKs try)
        Route("/.well-known/openid-configuration" + TENANT, metadata.discovery,
              methods=["GET"]),
        Route(TENANT + "/resources/{name}/.well-known/oauth-protected-resource",
              resource_metadata.resource_metadata, methods=["GET"]),
        Route(TENANT + "/demo/whoami", demo.whoami, methods=["GET", "POST"]),
        Route("/registry/.well-known/openid-federation", federation.entity_configuration,
              methods=["GET"]),
        Route("/registry/fetch", federation.fetch, methods=["GET"]),
        Route(TENANT + "/.well-known/openid-federation", federation.tenant_entity_configuration,
              methods=["GET"]),
        Route("/registry/list", federation.listing, methods=["GET"]),
        Route("/registry/register", registration.register_form, methods=["GET"]),
        Route("/registry/register", registration.register, methods=["POST"]),
        Route("/registry/status", registration.status, methods=["POST"]),
        Route("/registry/refresh", registration.refresh, methods=["POST"]),
        *revocation_feed.routes(),
        *admin.routes(),
        *console.routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.add_middleware(ClientCertMiddleware, trusted_proxies=broker.settings.trusted_proxies)
    app.add_middleware(ObserveMiddleware)  # access log, metrics, 503 for database trouble
    app.add_middleware(RequestContextMiddleware)  # added last: the outermost
    app.state.broker = broker
    return app
