"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at a tenant: the session at
tessera ends, the browser goes back only to a registered post_logout_redirect_uri."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from broker import id_jag
from broker.login_flow import SESSION_COOKIE
from broker.runtime import TenantView
from tenants.settings import TenantSettings
from tests.broker.helpers import jwt_parts, last_event
from tests.conftest import TestClient, new_client, new_tenant
from tests.login.conftest import Login
from tests.login.flow import APP_REDIRECT, follow_local, login_tokens, redirected_to, request_for

pytestmark = pytest.mark.interop

BYE = "https://app.example/bye"


@pytest.fixture(scope="module")
async def app(login: Login) -> TestClient:
    return await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                            post_logout_redirect_uris=[BYE])


async def logout(browser: httpx.AsyncClient, tenant: str, **params: str) -> httpx.Response:
    return await browser.get(f"/t/{tenant}/logout" + (f"?{urlencode(params)}" if params else ""))


async def goes_to_idp(login: Login, browser: httpx.AsyncClient, app: TestClient) -> bool:
    """Whether a new authorization request needs the IdP (False: a code came back at once)."""
    location = redirected_to(await follow_local(browser, request_for(app).url()))
    if location.startswith(login.oidc_idp.issuer):
        return True
    assert location.startswith(APP_REDIRECT) and "code=" in location, location
    return False


def cleared(response: httpx.Response) -> bool:
    return any(h.startswith(f"{SESSION_COOKIE}=") and ("Max-Age=0" in h or "expires=" in h)
               for h in response.headers.get_list("set-cookie"))


def is_error_page(response: httpx.Response) -> bool:
    return (response.status_code == 400 and "location" not in response.headers
            and response.headers["content-type"].startswith("text/html")
            and "invalid_request" in response.text)


async def test_rp_initiated_logout(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        body = await login_tokens(login, app, request_for(app), browser)
        assert not await goes_to_idp(login, browser, app)  # signed in: codes come at once
        session = browser.cookies.get(SESSION_COOKIE, path=f"/t/{login.tenant}")
        assert session
        r = await logout(browser, login.tenant, id_token_hint=body["id_token"],
                         post_logout_redirect_uri=BYE, state="s-1 2")
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"{BYE}?state=s-1+2"
        assert cleared(r) and SESSION_COOKIE not in browser.cookies
        event = await last_event(login.broker, login.tenant)
        assert event.action == "logout" and event.outcome == "revoked"
        assert event.client_id == app.client_id
        assert event.subject == jwt_parts(body["id_token"])[1]["sub"]
        assert event.detail["sessions_ended"] >= 1
        assert await goes_to_idp(login, browser, app)
    # the old cookie is dead at the server too
    async with login.browser() as replay:
        replay.cookies.set(SESSION_COOKIE, session, path=f"/t/{login.tenant}")
        assert await goes_to_idp(login, replay, app)


async def test_id_token_hint_ends_its_session(login: Login, app: TestClient) -> None:
    """The hint's sid names the session, whichever browser asks."""
    async with login.browser() as browser, login.browser() as elsewhere:
        body = await login_tokens(login, app, request_for(app), browser)
        r = await logout(elsewhere, login.tenant, id_token_hint=body["id_token"])
        assert r.status_code == 200 and "Signed out" in r.text
        assert await goes_to_idp(login, browser, app)


async def test_unregistered_post_logout_redirect_uri(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        body = await login_tokens(login, app, request_for(app), browser)
        for params in (
            {"id_token_hint": body["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
            {"client_id": app.client_id, "post_logout_redirect_uri": APP_REDIRECT},
            {"post_logout_redirect_uri": BYE},  # no client to check it against
        ):
            r = await logout(browser, login.tenant, **params)
            assert is_error_page(r), (params, r.status_code, r.text[:300])
            assert not cleared(r)
        assert not await goes_to_idp(login, browser, app)  # still signed in
        r = await logout(browser, login.tenant, client_id=app.client_id,
                         post_logout_redirect_uri=BYE)
        assert r.status_code == 303 and r.headers["location"] == BYE


async def test_id_token_hint_of_another_tenant(login: Login, app: TestClient) -> None:
    other = await new_tenant(login.broker)
    view = TenantView(other, login.broker.issuer(other), TenantSettings())
    foreign = await id_jag.mint_id_token(login.broker, view, subject="alice",
                                         client_id=app.client_id)
    async with login.browser() as browser:
        await login_tokens(login, app, request_for(app), browser)
        r = await logout(browser, login.tenant, id_token_hint=foreign,
                         post_logout_redirect_uri=BYE)
        assert is_error_page(r) and not cleared(r)
        assert not await goes_to_idp(login, browser, app)


async def test_client_id_and_hint_disagree(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        body = await login_tokens(login, app, request_for(app), browser)
        r = await logout(browser, login.tenant, id_token_hint=body["id_token"],
                         client_id="someone-else", post_logout_redirect_uri=BYE)
        assert is_error_page(r)


async def test_logout_without_parameters(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        await login_tokens(login, app, request_for(app), browser)
        r = await logout(browser, login.tenant)
        assert r.status_code == 200 and "location" not in r.headers
        assert "Signed out" in r.text and cleared(r)
        event = await last_event(login.broker, login.tenant)
        assert event.action == "logout" and event.detail["sessions_ended"] == 1
        assert event.subject is None
        assert await goes_to_idp(login, browser, app)
