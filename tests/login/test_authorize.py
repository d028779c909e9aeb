"""The authorization endpoint: what is shown as a page, what goes back to the client (always
with ``iss``, RFC 9207), upstream choice, the browser binding of a flow, and the session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from tenants.models import AuditEvent, Grant, LoginSession, PendingRequest, RevokedToken
from tests import admin_ops as ops
from tests.broker.helpers import last_event
from tests.conftest import OffsetClock, TestClient, new_client
from tests.login.conftest import OIDC, PLACEHOLDER_SAML_SSO, SAML, Login
from tests.login.flow import APP_REDIRECT, AuthRequest, follow_local, query, redirected_to
from tests.peers.oidc_idp import login_at_idp

pytestmark = pytest.mark.interop

LOOPBACK = "http://127.0.0.1/cb"


async def rows(login: Login) -> dict[str, int]:
    """What a refusal could write in the tenant."""
    out = {}
    async with login.broker.sessions() as session:
        for model in (AuditEvent, PendingRequest, LoginSession, Grant, RevokedToken):
            out[model.__tablename__] = (await session.execute(
                select(func.count()).select_from(model)
                .where(model.tenant_id == login.tenant))).scalar_one()
    return out


async def assert_refusal_audited(login: Login, before: dict[str, int], error: str) -> None:
    after = await rows(login)
    assert after == {**before, "audit_events": before["audit_events"] + 1}
    event = await last_event(login.broker, login.tenant)
    assert (event.action, event.outcome) == ("authorization.refused", "refused")
    assert event.detail["error"] == error


def assert_page(r: httpx.Response, error: str) -> None:
    assert r.status_code == 400, (r.status_code, r.headers.get("location"))
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert f"Error code: <code>{error}</code>" in r.text


@pytest.fixture
async def app(login: Login) -> TestClient:
    return await new_client(login.broker, login.tenant, scopes=["read"],
                            redirect_uris=[APP_REDIRECT, LOOPBACK])


@pytest.fixture
async def later(login: Login) -> AsyncIterator[OffsetClock]:
    """The shared clock, moved back where it was after the test."""
    clock: OffsetClock = login.broker.clock  # type: ignore[assignment]
    assert hasattr(clock, "advance")  # the session's OffsetClock (imported as conftest too)
    start = clock.offset
    yield clock
    clock.offset = start


async def sign_in(login: Login, browser: httpx.AsyncClient, url: str) -> httpx.Response:
    """From /authorize through the OIDC IdP (as alice) and back: the broker's last answer."""
    idp_url = redirected_to(await follow_local(browser, url))
    assert idp_url.startswith(login.oidc_idp.issuer), idp_url
    async with login.idp_browser() as idp:
        callback = await login_at_idp(idp, idp_url, "alice")
    return await follow_local(browser, callback)


def authorize_url(tenant: str, params: dict[str, str]) -> str:
    return f"/t/{tenant}/authorize?{urlencode(params)}"


# -- shown as a page, never redirected -------------------------------------------------------

@pytest.mark.parametrize("case", ["unknown-client", "no-client-id", "no-redirect-uri",
                                  "unregistered", "trailing-slash", "loopback-path",
                                  "loopback-host", "loopback-scheme", "disabled", "no-uris"])
async def test_untrusted_client_or_redirect_is_a_page(login: Login, app: TestClient,
                                                      case: str) -> None:
    req = AuthRequest(login.tenant, app.client_id)
    params = req.params()
    if case == "unknown-client":
        params["client_id"] = "no-such-client"
    elif case == "no-client-id":
        del params["client_id"]
    elif case == "no-redirect-uri":
        del params["redirect_uri"]
    elif case == "disabled":
        await ops.set_client_status(login.broker, login.tenant, app.client_id, "disabled")
    elif case == "no-uris":
        params["client_id"] = (await new_client(login.broker, login.tenant)).client_id
    else:
        params["redirect_uri"] = {
            "unregistered": "https://evil.example/cb", "trailing-slash": APP_REDIRECT + "/",
            "loopback-path": "http://127.0.0.1:5555/other",
            "loopback-host": "http://localhost:5555/cb",
            "loopback-scheme": "https://127.0.0.1:5555/cb"}[case]
    before = await rows(login)
    async with login.browser() as browser:
        r = await browser.get(authorize_url(login.tenant, params))
    assert_page(r, "invalid_request")
    await assert_refusal_audited(login, before, "invalid_request")


async def test_repeated_parameter_is_a_page(login: Login, app: TestClient) -> None:
    """Repeats are found while parsing, before the client is known."""
    req = AuthRequest(login.tenant, app.client_id)
    before = await rows(login)
    async with login.browser() as browser:
        r = await browser.get(req.url() + "&state=again")
    assert_page(r, "invalid_request")
    await assert_refusal_audited(login, before, "invalid_request")


async def test_unknown_tenant_is_a_404_page(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        r = await browser.get(AuthRequest("no-such-tenant", app.client_id).url())
    assert r.status_code == 404 and "location" not in r.headers


# -- sent back to the client with error, state and iss ----------------------------------------

REDIRECTED = {
    "token": ({"response_type": "token"}, "unsupported_response_type"),
    "no-response-type": ({"response_type": None}, "invalid_request"),
    "no-challenge": ({"code_challenge": None}, "invalid_request"),
    "plain": ({"code_challenge_method": "plain"}, "invalid_request"),
    "no-method": ({"code_challenge_method": None}, "invalid_request"),
    "bad-challenge": ({"code_challenge": "too-short"}, "invalid_request"),
    "scope": ({"scope": "openid admin"}, "invalid_scope"),
    "request-object": ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    "resource": ({"resource": "https://other.example/api"}, "invalid_target"),
    "resource-fragment": ({"resource": "https://api.example#x"}, "invalid_target"),
    "fragment-mode": ({"response_mode": "fragment"}, "invalid_request"),
    "bad-prompt": ({"prompt": "none login"}, "invalid_request"),
    "bad-max-age": ({"max_age": "-1"}, "invalid_request"),
}


@pytest.mark.parametrize("case", sorted(REDIRECTED))
async def test_errors_go_back_to_the_client(login: Login, app: TestClient, case: str) -> None:
    change, error = REDIRECTED[case]
    req = AuthRequest(login.tenant, app.client_id)
    params = {k: v for k, v in {**req.params(), **change}.items() if v is not None}
    before = await rows(login)
    async with login.browser() as browser:
        r = await browser.get(authorize_url(login.tenant, params))
    location = redirected_to(r)
    assert location.startswith(APP_REDIRECT + "?"), location
    got = query(location)
    assert got["error"] == error, got
    assert got["state"] == req.state and got["iss"] == app.issuer
    assert "code" not in got
    await assert_refusal_audited(login, before, error)
    assert (await last_event(login.broker, login.tenant)).client_id == app.client_id


async def test_prompt_none_without_session_is_login_required(login: Login,
                                                              app: TestClient) -> None:
    req = AuthRequest(login.tenant, app.client_id, extra={"prompt": "none"})
    before = await rows(login)
    async with login.browser() as browser:
        got = query(redirected_to(await browser.get(req.url())))
    assert got == {"error": "login_required", "error_description": got["error_description"],
                   "state": req.state, "iss": app.issuer}
    assert (await rows(login))["pending_requests"] == before["pending_requests"]


async def test_loopback_may_vary_only_the_port(login: Login, app: TestClient) -> None:
    req = AuthRequest(login.tenant, app.client_id, redirect_uri="http://127.0.0.1:5555/cb",
                      extra={"prompt": "none"})
    async with login.browser() as browser:
        location = redirected_to(await browser.get(req.url()))
    assert location.startswith("http://127.0.0.1:5555/cb?"), location
    assert query(location)["iss"] == app.issuer


# -- the upstream chooser and the flow's browser binding ---------------------------------------

async def test_chooser_lists_both_upstreams(login: Login, app: TestClient) -> None:
    async with login.browser() as browser:
        page = await follow_local(browser, AuthRequest(login.tenant, app.client_id).url())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Corp (OIDC)" in page.text and "Corp (SAML)" in page.text
    assert f"/login/{OIDC}?flow=" in page.text and f"/login/{SAML}?flow=" in page.text
    assert "<script" not in page.text


@pytest.mark.parametrize("hint", ["login_hint", "idp"])
async def test_hints_pick_the_upstream(login: Login, app: TestClient, hint: str) -> None:
    extra = {"login_hint": "alice@corp.example"} if hint == "login_hint" else {"idp": SAML}
    async with login.browser() as browser:
        target = redirected_to(await follow_local(
            browser, AuthRequest(login.tenant, app.client_id, extra=extra).url()))
    expected = login.oidc_idp.issuer if hint == "login_hint" else PLACEHOLDER_SAML_SSO
    assert target.startswith(expected), target


async def test_login_needs_the_flow_and_its_browser(login: Login, app: TestClient) -> None:
    base = f"/t/{login.tenant}/login"
    async with login.browser() as browser, login.browser() as other:
        to_login = redirected_to(await browser.get(
            AuthRequest(login.tenant, app.client_id).url()))
        flow = query(to_login)["flow"]
        assert browser.cookies.get("tessera_flow")
        for url in (f"{base}?flow=not-a-flow", base, f"{base}/{OIDC}?flow=not-a-flow"):
            assert_page(await browser.get(url), "invalid_request")
            assert "expired" in (await browser.get(url)).text
        for url in (f"{base}?flow={flow}", f"{base}/{OIDC}?flow={flow}"):
            r = await other.get(url)
            assert_page(r, "invalid_request")
            assert "another browser" in r.text
        assert (await browser.get(f"{base}?flow={flow}")).status_code == 200


# -- the session at the tenant ---------------------------------------------------------------

async def test_session_prompt_login_and_max_age(login: Login, app: TestClient,
                                                later: OffsetClock) -> None:
    hint = {"login_hint": "alice@corp.example"}
    async with login.browser() as browser:
        first = AuthRequest(login.tenant, app.client_id, extra=hint)
        got = query(redirected_to(await sign_in(login, browser, first.url())))
        assert got["state"] == first.state and got["iss"] == app.issuer and got["code"]

        again = AuthRequest(login.tenant, app.client_id)
        location = redirected_to(await follow_local(browser, again.url()))
        assert location.startswith(APP_REDIRECT + "?"), location
        assert query(location)["state"] == again.state and query(location)["code"]

        quiet = AuthRequest(login.tenant, app.client_id, extra={"prompt": "none"})
        assert "code" in query(redirected_to(await follow_local(browser, quiet.url())))

        forced = AuthRequest(login.tenant, app.client_id, extra={**hint, "prompt": "login"})
        target = redirected_to(await follow_local(browser, forced.url()))
        assert target.startswith(login.oidc_idp.issuer), target

        later.advance(5)
        recent = AuthRequest(login.tenant, app.client_id, extra={**hint, "max_age": "3600"})
        assert "code" in query(redirected_to(await follow_local(browser, recent.url())))
        stale = AuthRequest(login.tenant, app.client_id, extra={**hint, "max_age": "0"})
        target = redirected_to(await follow_local(browser, stale.url()))
        assert target.startswith(login.oidc_idp.issuer), target
        back = query(redirected_to(await sign_in(login, browser, stale.url())))
        assert back["code"] and back["iss"] == app.issuer

    async with login.browser() as stranger:
        quiet = AuthRequest(login.tenant, app.client_id, extra={"prompt": "none"})
        assert query(redirected_to(await stranger.get(quiet.url())))["error"] == "login_required"
