"""Refresh tokens of tessera's OpenID Provider role (OAuth 2.1 §4.3, RFC 9700 §4.14.2): rotation,
reuse detection revoking the grant, scope only narrowing, client binding, DPoP binding for
public clients (RFC 9449 §5), and revocation (RFC 7009)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.dpop import jwk_thumbprint
from tests.broker.helpers import jwt_parts
from tests.conftest import TestClient, new_client
from tests.dpop_client import new_key, public_jwk
from tests.login.conftest import Login
from tests.login.flow import (
    APP_REDIRECT,
    code_for,
    dpop,
    introspect,
    login_tokens,
    redeem,
    refresh,
    request_for,
)

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
async def app(login: Login) -> TestClient:
    return await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])


@pytest.fixture(scope="module")
async def public(login: Login) -> TestClient:
    return await new_client(login.broker, login.tenant, auth_method="none",
                            redirect_uris=[APP_REDIRECT])


@pytest.fixture(scope="module")
async def browser(login: Login, app: TestClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in at login-corp (as alice): later codes come without the IdP."""
    async with login.browser() as b:
        await code_for(login, request_for(app), b)
        yield b


async def tokens(login: Login, client: TestClient, browser: httpx.AsyncClient) -> dict[str, Any]:
    return await login_tokens(login, client, request_for(client), browser)


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def error_of(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    error: str = r.json()["error"]
    return error


async def active(browser: httpx.AsyncClient, caller: TestClient, value: str) -> bool:
    result = await introspect(browser, caller, value)
    assert result["active"] or result == {"active": False}
    return bool(result["active"])


async def test_rotation(login: Login, app: TestClient, browser: httpx.AsyncClient) -> None:
    first = await tokens(login, app, browser)
    second = ok(await refresh(browser, app, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"] and "id_token" in second
    assert jwt_parts(second["access_token"])[1]["sub"] == jwt_parts(first["access_token"])[1]["sub"]
    third = ok(await refresh(browser, app, second["refresh_token"]))
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert error_of(await refresh(browser, app, second["refresh_token"])) == "invalid_grant"


async def test_reuse_revokes_the_whole_grant(login: Login, app: TestClient,
                                             browser: httpx.AsyncClient) -> None:
    first = await tokens(login, app, browser)
    second = ok(await refresh(browser, app, first["refresh_token"]))
    assert await active(browser, app, first["access_token"])
    assert await active(browser, app, second["access_token"])
    # the rotated token comes back: taken as theft
    assert error_of(await refresh(browser, app, first["refresh_token"])) == "invalid_grant"
    assert error_of(await refresh(browser, app, second["refresh_token"])) == "invalid_grant"
    assert not await active(browser, app, first["access_token"])
    assert not await active(browser, app, second["access_token"])
    # another grant of the same user and client lives on
    other = await tokens(login, app, browser)
    assert await active(browser, app, other["access_token"])
    ok(await refresh(browser, app, other["refresh_token"]))


async def test_scope_only_narrows(login: Login, app: TestClient,
                                  browser: httpx.AsyncClient) -> None:
    first = await tokens(login, app, browser)
    assert first["scope"] == "openid profile email groups"
    narrowed = ok(await refresh(browser, app, first["refresh_token"], scope="openid email"))
    assert narrowed["scope"] == "openid email"
    assert jwt_parts(narrowed["access_token"])[1]["scope"] == "openid email"
    assert "groups" not in jwt_parts(narrowed["id_token"])[1]
    latest = narrowed["refresh_token"]
    r = await refresh(browser, app, latest, scope="openid email read")
    assert error_of(r) == "invalid_scope"
    assert "read" in r.json()["error_description"]
    # the refusal rolled the rotation back: the presented token still works, with the
    # grant's whole scope (narrowing one refresh does not shrink the grant)
    again = ok(await refresh(browser, app, latest))
    assert again["scope"] == "openid profile email groups"


async def test_refresh_token_of_another_client(login: Login, app: TestClient,
                                               browser: httpx.AsyncClient) -> None:
    first = await tokens(login, app, browser)
    thief = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    assert error_of(await refresh(browser, thief, first["refresh_token"])) == "invalid_grant"
    ok(await refresh(browser, app, first["refresh_token"]))  # not rotated by the refusal


async def test_revoke_access_token(login: Login, app: TestClient,
                                   browser: httpx.AsyncClient) -> None:
    first = await tokens(login, app, browser)
    revoke = f"{app.issuer}/revoke"
    r = await browser.post(revoke, data={"token": first["access_token"],
                                         "token_type_hint": "access_token"}, auth=app.basic)
    assert r.status_code == 200, r.text
    assert not await active(browser, app, first["access_token"])
    info = await browser.get(f"{app.issuer}/userinfo",
                             headers={"Authorization": f"Bearer {first['access_token']}"})
    assert info.status_code == 401
    # only that token: the grant and its refresh token live on
    ok(await refresh(browser, app, first["refresh_token"]))


async def test_revoke_refresh_token_revokes_the_grant(login: Login, app: TestClient,
                                                      browser: httpx.AsyncClient) -> None:
    first = await tokens(login, app, browser)
    second = ok(await refresh(browser, app, first["refresh_token"]))
    revoke = f"{app.issuer}/revoke"
    other = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    r = await browser.post(revoke, auth=other.basic, data={"token": second["refresh_token"]})
    assert error_of(r) == "unauthorized_client"
    assert await active(browser, app, second["access_token"])
    r = await browser.post(revoke, auth=app.basic, data={
        "token": second["refresh_token"], "token_type_hint": "refresh_token"})
    assert r.status_code == 200, r.text
    assert not await active(browser, app, first["access_token"])
    assert not await active(browser, app, second["access_token"])
    assert error_of(await refresh(browser, app, second["refresh_token"])) == "invalid_grant"
    # unknown tokens are fine (RFC 7009 §2.2)
    r = await browser.post(revoke, auth=app.basic, data={"token": "no-such-token"})
    assert r.status_code == 200, r.text


async def test_dpop_bound_refresh_token_of_a_public_client(
    login: Login, public: TestClient, browser: httpx.AsyncClient
) -> None:
    key = new_key()
    jkt = jwk_thumbprint(public_jwk(key))
    req = request_for(public)
    first = ok(await redeem(browser, public, req, await code_for(login, req, browser),
                            headers=dpop(login, key, public.token_url)))
    assert first["token_type"] == "DPoP"
    value = first["refresh_token"]
    assert error_of(await refresh(browser, public, value)) == "invalid_grant"
    r = await refresh(browser, public, value, headers=dpop(login, new_key(), public.token_url))
    assert error_of(r) == "invalid_grant"
    # neither refusal rotated it; the same key refreshes
    second = ok(await refresh(browser, public, value, headers=dpop(login, key,
                                                                   public.token_url)))
    assert second["token_type"] == "DPoP"
    assert jwt_parts(second["access_token"])[1]["cnf"] == {"jkt": jkt}
    # the rotated successor is bound to the same key
    assert error_of(await refresh(browser, public, second["refresh_token"])) == "invalid_grant"
    ok(await refresh(browser, public, second["refresh_token"],
                     headers=dpop(login, key, public.token_url)))


async def test_public_client_without_dpop_rotates(login: Login, public: TestClient,
                                                  browser: httpx.AsyncClient) -> None:
    first = await tokens(login, public, browser)
    assert first["token_type"] == "Bearer"
    second = ok(await refresh(browser, public, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert error_of(await refresh(browser, public, first["refresh_token"])) == "invalid_grant"
    assert error_of(await refresh(browser, public, second["refresh_token"])) == "invalid_grant"


async def test_confidential_refresh_tokens_are_not_key_bound(
    login: Login, app: TestClient, browser: httpx.AsyncClient
) -> None:
    key, other = new_key(), new_key()
    req = request_for(app)
    first = ok(await redeem(browser, app, req, await code_for(login, req, browser),
                            headers=dpop(login, key, app.token_url)))
    assert first["token_type"] == "DPoP"
    plain = ok(await refresh(browser, app, first["refresh_token"]))
    assert plain["token_type"] == "Bearer"
    assert "cnf" not in jwt_parts(plain["access_token"])[1]
    moved = ok(await refresh(browser, app, plain["refresh_token"],
                             headers=dpop(login, other, app.token_url)))
    assert moved["token_type"] == "DPoP"
    assert jwt_parts(moved["access_token"])[1]["cnf"] == {
        "jkt": jwk_thumbprint(public_jwk(other))}
