"""The authorization code grant of tessera's OpenID Provider role, driven through a real login
at the oidc-provider IdP: PKCE (RFC 7636), one-use codes bound to client, redirect URI, tenant
and DPoP key (RFC 9449 §10), public clients, RFC 9068 access tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.dpop import jwk_thumbprint
from tenants.models import AuditEvent
from tests.broker.helpers import jwt_parts
from tests.conftest import TestClient, new_client, new_tenant
from tests.dpop_client import new_key, public_jwk
from tests.login.conftest import Login
from tests.login.flow import (
    APP_REDIRECT,
    AuthRequest,
    code_for,
    code_form,
    dpop,
    introspect,
    redeem,
    refresh,
    request_for,
    token,
)

pytestmark = pytest.mark.interop

OTHER_REDIRECT = "https://app.example/other-cb"
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture(scope="module")
async def app(login: Login) -> TestClient:
    return await new_client(login.broker, login.tenant,
                            redirect_uris=[APP_REDIRECT, OTHER_REDIRECT])


@pytest.fixture(scope="module")
async def browser(login: Login, app: TestClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in at login-corp (as alice): later codes come without the IdP."""
    async with login.browser() as b:
        await code_for(login, request_for(app), b)
        yield b


def error_of(r: httpx.Response, status: int = 400) -> str:
    assert r.status_code == status, r.text
    error: str = r.json()["error"]
    return error


async def test_pkce_rfc7636_test_vector(login: Login, app: TestClient,
                                        browser: httpx.AsyncClient) -> None:
    req = request_for(app, verifier=RFC7636_VERIFIER, challenge=RFC7636_CHALLENGE)
    assert req.params()["code_challenge"] == RFC7636_CHALLENGE
    r = await redeem(browser, app, req, await code_for(login, req, browser))
    assert r.status_code == 200, r.text
    assert {"access_token", "id_token", "refresh_token"} <= set(r.json())


@pytest.mark.parametrize(("verifier", "error"), [
    ("x" * 43, "invalid_grant"),  # well formed, not the one of the challenge
    (None, "invalid_request"),  # missing
    (RFC7636_VERIFIER[:42], "invalid_request"),  # too short
    ("a" * 129, "invalid_request"),  # too long
    ("+" + RFC7636_VERIFIER[1:], "invalid_request"),  # outside [A-Za-z0-9-._~]
    (RFC7636_VERIFIER[:-1] + "/", "invalid_request"),
])
async def test_bad_code_verifier(login: Login, app: TestClient, browser: httpx.AsyncClient,
                                 verifier: str | None, error: str) -> None:
    req = request_for(app, verifier=RFC7636_VERIFIER, challenge=RFC7636_CHALLENGE)
    form: dict[str, Any] = code_form(req, await code_for(login, req, browser))
    if verifier is None:
        del form["code_verifier"]
    else:
        form["code_verifier"] = verifier
    assert error_of(await token(browser, login.tenant, form, auth=app.basic)) == error


async def test_code_used_twice_revokes_the_first_tokens(
    login: Login, app: TestClient, browser: httpx.AsyncClient
) -> None:
    req = request_for(app)
    code = await code_for(login, req, browser)
    first = await redeem(browser, app, req, code)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert (await introspect(browser, app, tokens["access_token"]))["active"] is True
    assert error_of(await redeem(browser, app, req, code)) == "invalid_grant"
    assert await introspect(browser, app, tokens["access_token"]) == {"active": False}
    r = await refresh(browser, app, tokens["refresh_token"])
    assert error_of(r) == "invalid_grant"
    async with login.broker.sessions() as session:
        revoked = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == login.tenant, AuditEvent.action == "grant.revoked",
            AuditEvent.client_id == app.client_id))).scalars().all()
    assert [e.detail["reason"] for e in revoked] == ["authorization code used twice"]


async def test_expired_code(login: Login, app: TestClient, browser: httpx.AsyncClient) -> None:
    req = request_for(app)
    code = await code_for(login, req, browser)
    login.broker.clock.advance(61)
    try:
        assert error_of(await redeem(browser, app, req, code)) == "invalid_grant"
    finally:
        login.broker.clock.advance(-61)


async def test_code_of_another_client(login: Login, app: TestClient,
                                      browser: httpx.AsyncClient) -> None:
    other = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    req = request_for(app)
    code = await code_for(login, req, browser)
    assert error_of(await redeem(browser, other, req, code)) == "invalid_grant"


@pytest.mark.parametrize("given", [OTHER_REDIRECT, None])
async def test_redirect_uri_must_be_the_authorization_requests(
    login: Login, app: TestClient, browser: httpx.AsyncClient, given: str | None
) -> None:
    req = request_for(app)
    form: dict[str, Any] = code_form(req, await code_for(login, req, browser))
    if given is None:
        del form["redirect_uri"]
    else:
        form["redirect_uri"] = given
    assert error_of(await token(browser, login.tenant, form, auth=app.basic)) == "invalid_grant"


async def test_public_client(login: Login, browser: httpx.AsyncClient) -> None:
    public = await new_client(login.broker, login.tenant, auth_method="none",
                              redirect_uris=[APP_REDIRECT])
    assert public.secret is None
    req = request_for(public)
    r = await redeem(browser, public, req, await code_for(login, req, browser))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer" and "refresh_token" in r.json()
    r = await token(browser, login.tenant, {"grant_type": "client_credentials",
                                            "client_id": public.client_id})
    assert error_of(r) == "unauthorized_client"


async def test_confidential_client_must_authenticate(
    login: Login, app: TestClient, browser: httpx.AsyncClient
) -> None:
    req = request_for(app)
    form = code_form(req, await code_for(login, req, browser), client_id=app.client_id)
    assert error_of(await token(browser, login.tenant, form), 401) == "invalid_client"
    # the refusal did not consume the code
    assert (await redeem(browser, app, req, form["code"])).status_code == 200


@pytest.mark.parametrize("proof", ["none", "other-key", "bound-key"])
async def test_dpop_jkt_binds_the_code(login: Login, app: TestClient,
                                       browser: httpx.AsyncClient, proof: str) -> None:
    key = new_key()
    jkt = jwk_thumbprint(public_jwk(key))
    req = request_for(app, extra={"dpop_jkt": jkt})
    code = await code_for(login, req, browser)
    headers = {} if proof == "none" else dpop(
        login, key if proof == "bound-key" else new_key(), app.token_url)
    r = await redeem(browser, app, req, code, headers=headers)
    if proof != "bound-key":
        assert error_of(r) == "invalid_grant"
        return
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    assert jwt_parts(r.json()["access_token"])[1]["cnf"] == {"jkt": jkt}
    assert (await introspect(browser, app, r.json()["access_token"]))["cnf"] == {"jkt": jkt}


@pytest.mark.parametrize("resource", [None, "https://api.example"])
async def test_access_token_is_rfc9068(login: Login, app: TestClient,
                                       browser: httpx.AsyncClient, resource: str | None) -> None:
    req = request_for(app, scope="openid email read",
                      extra={"resource": resource} if resource else {})
    code = await code_for(login, req, browser)
    r = await redeem(browser, app, req, code)
    assert r.status_code == 200, r.text
    header, claims = jwt_parts(r.json()["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] != "none" and header["kid"]
    assert claims["iss"] == app.issuer and claims["client_id"] == app.client_id
    assert claims["sub"] == jwt_parts(r.json()["id_token"])[1]["sub"]
    assert claims["sub"] != app.client_id
    assert claims["aud"] == (resource or f"{app.issuer}/demo")
    assert claims["scope"] == "openid email read" == r.json()["scope"]
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert claims["exp"] - claims["iat"] == r.json()["expires_in"] > 0
    assert abs(claims["iat"] - login.broker.clock.now()) < 30


async def test_code_is_tenant_bound(login: Login, app: TestClient,
                                    browser: httpx.AsyncClient) -> None:
    """A client of the same id and redirect URI at another tenant cannot redeem the code."""
    other = await new_tenant(login.broker)
    twin = await new_client(login.broker, other, client_id=app.client_id,
                            redirect_uris=[APP_REDIRECT])
    req = request_for(app)
    code = await code_for(login, req, browser)
    twin_req = AuthRequest(other, twin.client_id, verifier=req.verifier,
                           challenge=req.challenge)
    assert error_of(await redeem(browser, twin, twin_req, code)) == "invalid_grant"
    # untouched at its own tenant
    r = await redeem(browser, app, req, code)
    assert r.status_code == 200, r.text


async def test_resource_server_as_the_resource(login: Login, app: TestClient,
                                               browser: httpx.AsyncClient) -> None:
    """An MCP client's code flow names the MCP server (a registered resource server, not one
    of the client's audiences) as ``resource`` (RFC 8707): its tokens are for it; a resource
    server that does not let the client in is ``invalid_target``."""
    from tests import admin_ops as ops

    mcp, closed = "https://mcp.login.example/mcp", "https://closed.login.example/mcp"
    await ops.create_resource(login.broker, login.tenant, name="mcp-open", identifier=mcp,
                              scopes={"read": ""})
    other = await new_client(login.broker, login.tenant, name="someone else")
    await ops.create_resource(login.broker, login.tenant, name="mcp-closed", identifier=closed,
                              allowed_clients=[other.client_id])
    req = request_for(app, scope="openid read", extra={"resource": mcp})
    r = await redeem(browser, app, req, await code_for(login, req, browser))
    assert r.status_code == 200, r.text
    assert jwt_parts(r.json()["access_token"])[1]["aud"] == mcp
    refused = request_for(app, scope="openid read", extra={"resource": closed})
    location = (await browser.get(refused.url())).headers.get("location", "")
    assert "error=invalid_target" in location, location
