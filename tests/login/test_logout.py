"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at a tenant: the session at
tessera ends, the browser goes back only to a registered post_logout_redirect_uri. Without an
``id_token_hint`` nobody vouches for the request (a cross-site link can make it), so the user
confirms on a page whose form carries a CSRF token bound to the session."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx
import pytest

from broker import id_jag, pages
from broker.login_flow import SESSION_COOKIE
from broker.runtime import TenantView
from tenants import login_sessions
from tenants.models import AuditEvent
from tenants.scope import tenant_scope
from tenants.settings import TenantSettings
from tests.broker.helpers import jwt_parts, last_event
from tests.conftest import TestClient, new_client, new_tenant
from tests.login.conftest import Login
from tests.login.flow import APP_REDIRECT, follow_local, login_tokens, redirected_to, request_for

pytestmark = pytest.mark.interop

BYE = "https://app.example/bye"
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/"}


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
        assert is_confirm_page(r)  # registered, but no hint: the user confirms first
        r = await browser.post(f"/t/{login.tenant}/logout", data={
            "client_id": app.client_id, "post_logout_redirect_uri": BYE, "csrf": csrf_of(r),
            "logout": "confirm"})
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


def csrf_of(page: httpx.Response) -> str:
    found = re.findall(r"<input type=hidden name='csrf' value='([^']*)'>", page.text)
    assert len(found) == 1, page.text
    return found[0]


def is_confirm_page(response: httpx.Response) -> bool:
    return (response.status_code == 200 and "location" not in response.headers
            and "Sign out?" in response.text and "<form method=post" in response.text)


async def session_live(login: Login, cookie: str) -> bool:
    """Whether the session row of this cookie value is still live (not ended, not expired)."""
    async with tenant_scope(login.broker.sessions, login.tenant) as scope:
        return await login_sessions.current(scope, cookie, login.broker.clock.now()) is not None


async def logout_events(login: Login) -> int:
    async with login.broker.sessions() as session:
        rows = (await session.execute(AuditEvent.__table__.select().where(
            AuditEvent.tenant_id == login.tenant, AuditEvent.action == "logout"))).all()
    return len(rows)


async def test_bare_cross_site_logout_asks_first(login: Login, app: TestClient) -> None:
    """A bare GET (an <img> or link on another site) shows a page; the session lives on."""
    async with login.browser() as browser:
        await login_tokens(login, app, request_for(app), browser)
        cookie = browser.cookies.get(SESSION_COOKIE, path=f"/t/{login.tenant}")
        assert cookie
        before = await logout_events(login)
        r = await browser.get(f"/t/{login.tenant}/logout", headers=CROSS_SITE)
        assert is_confirm_page(r), (r.status_code, r.text[:300])
        assert not cleared(r)
        assert r.headers["content-security-policy"] == pages.HEADERS["Content-Security-Policy"]
        assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none'
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        assert "<script" not in r.text.lower() and " on" not in r.text.lower().replace(
            " one", "")  # no inline script, no event handler attributes
        assert f"action='{login.broker.issuer(login.tenant)}/logout'" in r.text
        assert "name=logout value='confirm'" in r.text
        assert len(csrf_of(r)) == 64
        assert await session_live(login, cookie)
        assert not await goes_to_idp(login, browser, app)  # still signed in
        assert await logout_events(login) == before  # nothing ended, nothing audited
        # the same through POST (an RP may send its logout request as a form): asked too
        r = await browser.post(f"/t/{login.tenant}/logout", data={"client_id": app.client_id})
        assert is_confirm_page(r) and not cleared(r)
        assert await session_live(login, cookie)


async def test_confirmed_logout_ends_the_session(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        body = await login_tokens(login, app, request_for(app), browser)
        cookie = browser.cookies.get(SESSION_COOKIE, path=f"/t/{login.tenant}")
        assert cookie
        page = await browser.get(f"/t/{login.tenant}/logout")
        r = await browser.post(f"/t/{login.tenant}/logout",
                               data={"csrf": csrf_of(page), "logout": "confirm"})
        assert r.status_code == 200 and "Signed out" in r.text, r.text[:300]
        assert cleared(r) and SESSION_COOKIE not in browser.cookies
        event = await last_event(login.broker, login.tenant)
        assert event.action == "logout" and event.outcome == "revoked"
        assert event.detail == {"sessions_ended": 1, "confirmed_by_user": True}
        assert event.subject == jwt_parts(body["id_token"])[1]["sub"]
        assert not await session_live(login, cookie)  # the row ended, not only the cookie
        assert await goes_to_idp(login, browser, app)
    async with login.browser() as replay:  # the old cookie is dead at the server
        replay.cookies.set(SESSION_COOKIE, cookie, path=f"/t/{login.tenant}")
        assert await goes_to_idp(login, replay, app)


async def test_confirmation_carries_the_rp_parameters(login: Login, app: TestClient) -> None:
    """client_id, post_logout_redirect_uri and state survive the confirmation page."""
    async with login.browser() as browser:
        await login_tokens(login, app, request_for(app), browser)
        page = await logout(browser, login.tenant, client_id=app.client_id,
                            post_logout_redirect_uri=BYE, state="s 3")
        assert is_confirm_page(page) and not cleared(page)
        assert f"name='post_logout_redirect_uri' value='{BYE}'" in page.text
        fields = dict(re.findall(r"<input type=hidden name='([^']*)' value='([^']*)'>",
                                 page.text))
        assert fields == {"client_id": app.client_id, "post_logout_redirect_uri": BYE,
                          "state": "s 3", "csrf": csrf_of(page)}
        r = await browser.post(f"/t/{login.tenant}/logout", data={**fields, "logout": "confirm"})
        assert r.status_code == 303 and r.headers["location"] == f"{BYE}?state=s+3"
        assert cleared(r)
        assert await goes_to_idp(login, browser, app)
        # a tampered redirect in the confirmation form is checked again
        await login_tokens(login, app, request_for(app), browser)
        page = await logout(browser, login.tenant)
        r = await browser.post(f"/t/{login.tenant}/logout", data={
            "csrf": csrf_of(page), "logout": "confirm", "client_id": app.client_id,
            "post_logout_redirect_uri": "https://evil.example/"})
        assert is_error_page(r) and not cleared(r)
        assert not await goes_to_idp(login, browser, app)


async def test_confirmation_needs_this_sessions_token(login: Login, app: TestClient) -> None:
    """Missing, wrong, or another session's token: a 400 page, and nothing ends."""
    async with login.browser() as browser, login.browser() as other:
        await login_tokens(login, app, request_for(app), browser)
        await login_tokens(login, app, request_for(app), other, user="bob")
        cookie = browser.cookies.get(SESSION_COOKIE, path=f"/t/{login.tenant}")
        other_cookie = other.cookies.get(SESSION_COOKIE, path=f"/t/{login.tenant}")
        assert cookie and other_cookie and cookie != other_cookie
        mine = csrf_of(await logout(browser, login.tenant))
        theirs = csrf_of(await logout(other, login.tenant))
        assert mine != theirs
        before = await logout_events(login)
        for data in ({"logout": "confirm"},
                     {"logout": "confirm", "csrf": ""},
                     {"logout": "confirm", "csrf": "0" * 64},
                     {"logout": "confirm", "csrf": mine[:-1] + ("0" if mine[-1] != "0" else "1")},
                     {"logout": "confirm", "csrf": theirs},
                     {"csrf": theirs}):
            r = await browser.post(f"/t/{login.tenant}/logout", data=data)
            assert r.status_code == 400 and "invalid_request" in r.text, (data, r.status_code)
            assert r.headers["content-type"].startswith("text/html") and not cleared(r)
        # a cross-site form cannot send the cookie (SameSite=Lax): even the right token of
        # a session ends nothing without it
        async with login.browser() as attacker:
            r = await attacker.post(f"/t/{login.tenant}/logout",
                                    data={"logout": "confirm", "csrf": mine})
            assert r.status_code == 200 and "Signed out" in r.text
        assert await session_live(login, cookie) and await session_live(login, other_cookie)
        assert await logout_events(login) == before
        assert not await goes_to_idp(login, browser, app)
        assert not await goes_to_idp(login, other, app)
        # the right token still works afterwards
        r = await browser.post(f"/t/{login.tenant}/logout",
                               data={"logout": "confirm", "csrf": mine})
        assert r.status_code == 200 and "Signed out" in r.text and cleared(r)
        assert not await session_live(login, cookie) and await session_live(login, other_cookie)


async def test_logout_without_a_session(login: Login, app: TestClient) -> None:
    """Nothing to end: the signed-out page (no form), or back to a registered URI."""
    async with login.browser() as browser:
        r = await logout(browser, login.tenant)
        assert r.status_code == 200 and "Signed out" in r.text and "<form" not in r.text
        r = await logout(browser, login.tenant, client_id=app.client_id,
                         post_logout_redirect_uri=BYE, state="x")
        assert r.status_code == 303 and r.headers["location"] == f"{BYE}?state=x"
        r = await logout(browser, login.tenant, post_logout_redirect_uri="https://evil.example/")
        assert is_error_page(r)
        # a stale cookie (its session ended) is no session either
        await login_tokens(login, app, request_for(app), browser)
        cookie = browser.cookies.get(SESSION_COOKIE, path=f"/t/{login.tenant}")
        assert cookie
        async with tenant_scope(login.broker.sessions, login.tenant) as scope:
            await login_sessions.end(scope, now=login.broker.clock.now(), value=cookie)
        r = await logout(browser, login.tenant)
        assert r.status_code == 200 and "Signed out" in r.text and "<form" not in r.text
