"""A resource server that requires certificate-bound tokens (RFC 8705 §3): tessera refuses to
issue one without a client certificate, and the toolkit's middleware accepts the token only
over the certificate it names (the TLS terminator hands the thumbprint to ``cert_thumbprint``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker.app import create_app
from broker.resource_server import RemoteJWKS, ResourceConfig, TokenVerifier
from broker.resource_server.asgi import TesseraAuthMiddleware
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.conftest import BASE_URL, OffsetClock, new_client, new_tenant
from tests.mtls_pki import SPIFFE_ID, make_pki

PKI = make_pki()
PROXY = ("10.9.8.7", 44321)
MCP = "https://mcp.mtls.example/mcp"


@pytest.fixture(scope="module")
async def via_proxy(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """tessera behind a TLS-terminating proxy that forwards the client certificate."""
    other = Broker.build(broker.settings.replace(trusted_proxies=("10.0.0.0/8",)),
                         clock=OffsetClock())
    app = create_app(other, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=PROXY),
                                 base_url=BASE_URL) as http:
        yield http
    await other.close()


def forwarded_thumbprint(scope: Any) -> str | None:
    """What the resource's own TLS terminator tells it (here: a header it would set)."""
    for name, value in scope.get("headers", []):
        if name == b"x-client-cert-x5t":
            return value.decode()
    return None


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.state.tessera_token.subject})


async def test_certificate_bound_token_at_the_resource(via_proxy, broker):
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant, auth_method="tls_client_auth",
                              tls_client_auth_san_uri=SPIFFE_ID, scopes=["read"], audiences=[])
    await ops.create_resource(broker, tenant, name="mtls", identifier=MCP,
                              scopes={"read": ""}, default_scopes=["read"], require_mtls=True)
    form = {"grant_type": "client_credentials", "client_id": client.client_id, "resource": MCP}
    r = await via_proxy.post(client.token_url, data=form,
                             headers={"Client-Cert": PKI.spiffe.header})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    # the same client authenticated another way cannot get an unbound token for it
    secret_client = await new_client(broker, tenant, name="secret", scopes=["read"])
    r = await via_proxy.post(client.token_url, auth=secret_client.basic, data={
        "grant_type": "client_credentials", "resource": MCP})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text

    issuer = broker.issuer(tenant)
    verifier = TokenVerifier(ResourceConfig(MCP, issuer), RemoteJWKS(f"{issuer}/jwks", via_proxy),
                             None)
    app = TesseraAuthMiddleware(Starlette(routes=[Route("/mcp", ok)]), verifier,
                                cert_thumbprint=forwarded_thumbprint)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://mcp.mtls.example") as rs:
        bearer = {"Authorization": f"Bearer {token}"}
        r = await rs.get("/mcp", headers={**bearer, "X-Client-Cert-X5t": PKI.spiffe.x5t})
        assert r.status_code == 200, r.text
        r = await rs.get("/mcp", headers=bearer)
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        r = await rs.get("/mcp", headers={**bearer, "X-Client-Cert-X5t": PKI.dn.x5t})
        assert r.status_code == 401
