"""The consent page of third-party clients: what it shows, Allow and Deny, its CSRF and browser
binding, remembered grants, prompt=consent and prompt=none."""

from __future__ import annotations

import json
from html import escape
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from adapters import rar
from tests import admin_ops as login_admin
from tests.broker.helpers import last_event
from tests.conftest import TestClient, new_client
from tests.login.conftest import Login
from tests.login.flow import (
    APP_REDIRECT,
    AuthRequest,
    code_form,
    follow_local,
    query,
    redirected_to,
    token,
)
from tests.peers.oidc_idp import login_at_idp

pytestmark = pytest.mark.interop

TRANSFER = "consent_transfer"
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["type", "amount"],
    "properties": {"type": {"const": TRANSFER},
                   "actions": {"type": "array", "items": {"type": "string"}},
                   "locations": {"type": "array", "items": {"type": "string"}},
                   "amount": {"type": "string"}, "creditorName": {"type": "string"}}}
DETAIL = {"type": TRANSFER, "actions": ["initiate"], "locations": ["https://bank.example/pay"],
          "amount": "42.00 EUR", "creditorName": "Café <Merchant>"}
SCOPE = "openid email profile"


class HiddenFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = attr.get("action", "")
        elif tag == "input" and attr.get("type") == "hidden":
            self.fields[attr["name"]] = attr.get("value", "")


def form_of(page: httpx.Response) -> tuple[str, dict[str, str]]:
    parser = HiddenFields()
    parser.feed(page.text)
    assert set(parser.fields) == {"flow", "csrf"}, parser.fields
    return parser.action, parser.fields


@pytest.fixture
async def third(login: Login) -> TestClient:
    await login_admin.register_detail_type(login.broker, login.tenant, {
        "type": TRANSFER, "schema": SCHEMA, "description": "Money transfer"})
    return await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                            first_party=False, authorization_details_types=[TRANSFER])


def request(client: TestClient, **extra: str) -> AuthRequest:
    return AuthRequest(client.tenant, client.client_id, scope=SCOPE,
                       extra={"login_hint": "alice@corp.example", **extra})


async def sign_in(login: Login, browser: httpx.AsyncClient, url: str) -> httpx.Response:
    """/authorize through the OIDC IdP (as alice) and back: the broker's last answer."""
    idp_url = redirected_to(await follow_local(browser, url))
    assert idp_url.startswith(login.oidc_idp.issuer), idp_url
    async with login.idp_browser() as idp:
        callback = await login_at_idp(idp, idp_url, "alice")
    return await follow_local(browser, callback)


def consent_url(tenant: str) -> str:
    return f"/t/{tenant}/consent"


def assert_consent_page(page: httpx.Response) -> None:
    assert page.status_code == 200, (page.status_code, page.headers.get("location"))
    assert page.headers["content-type"].startswith("text/html")
    assert "Allow access?" in page.text and "<script" not in page.text.lower()
    assert page.headers["x-frame-options"] == "DENY"


async def test_page_shows_scopes_and_details_then_allow(login: Login,
                                                        third: TestClient) -> None:
    req = request(third, authorization_details=json.dumps([DETAIL]))
    async with login.browser() as browser:
        page = await sign_in(login, browser, req.url())
        assert_consent_page(page)
        for words in ("sign you in", "see your e-mail address", "see your name and profile"):
            assert f"<li>{words}</li>" in page.text
        described = rar.describe(DETAIL, {TRANSFER: rar.DetailType(TRANSFER, SCHEMA,
                                                                   "Money transfer")})
        assert described.startswith("Money transfer: initiate at https://bank.example/pay")
        assert f"<li>{escape(described)}</li>" in page.text
        assert "<Merchant>" not in page.text and "&lt;Merchant&gt;" in page.text
        action, fields = form_of(page)
        assert action == f"{third.issuer}/consent"
        location = redirected_to(await browser.post(
            consent_url(login.tenant), data={**fields, "decision": "allow"}))
        got = query(location)
        assert location.startswith(APP_REDIRECT + "?") and got["code"]
        assert got["state"] == req.state and got["iss"] == third.issuer
        event = await last_event(login.broker, login.tenant)
        assert event.action == "authorization.code_issued"
        assert event.detail["authorization_details"] == [DETAIL]
        # the decision is one use
        again = await browser.post(consent_url(login.tenant), data={**fields, "decision": "allow"})
        assert again.status_code == 400 and "location" not in again.headers


async def test_deny(login: Login, third: TestClient) -> None:
    req = request(third)
    async with login.browser() as browser:
        _, fields = form_of(await sign_in(login, browser, req.url()))
        location = redirected_to(await browser.post(
            consent_url(login.tenant), data={**fields, "decision": "deny"}))
        late = await browser.post(consent_url(login.tenant), data={**fields, "decision": "allow"})
        assert late.status_code == 400 and "location" not in late.headers
    got = query(location)
    assert location.startswith(APP_REDIRECT + "?")
    assert got["error"] == "access_denied" and "code" not in got
    assert got["state"] == req.state and got["iss"] == third.issuer
    event = await last_event(login.broker, login.tenant)
    assert (event.action, event.outcome) == ("authorization.denied", "refused")
    assert event.client_id == third.client_id and event.subject


async def test_consent_post_needs_csrf_and_the_browser(login: Login, third: TestClient) -> None:
    async with login.browser() as browser, login.browser() as other:
        page = await sign_in(login, browser, request(third).url())
        _, fields = form_of(page)
        url = consent_url(login.tenant)
        for data in ({**fields, "csrf": "0" * 64}, {"flow": fields["flow"]}):
            r = await browser.post(url, data={**data, "decision": "allow"})
            assert r.status_code == 400 and "location" not in r.headers, r.headers
            assert "<code>invalid_request</code>" in r.text
        r = await other.post(url, data={**fields, "decision": "allow"})
        assert r.status_code == 400 and "location" not in r.headers
        r = await other.get(f"{url}?flow={fields['flow']}")
        assert r.status_code == 400 and "another browser" in r.text
        # the refusals left the flow intact for its own browser
        location = redirected_to(await browser.post(url, data={**fields, "decision": "allow"}))
        assert "code" in query(location)


async def test_grant_remembered_and_prompts(login: Login, third: TestClient) -> None:
    req = request(third)
    async with login.browser() as browser:
        _, fields = form_of(await sign_in(login, browser, req.url()))
        got = query(redirected_to(await browser.post(
            consent_url(login.tenant), data={**fields, "decision": "allow"})))
        # a code alone is no grant yet: the consent page comes back until the code is redeemed
        assert_consent_page(await follow_local(browser, request(third).url()))
        r = await token(browser, login.tenant, code_form(req, got["code"]), auth=third.basic)
        assert r.status_code == 200, r.text

        same = request(third)
        location = redirected_to(await follow_local(browser, same.url()))
        assert location.startswith(APP_REDIRECT + "?") and "code" in query(location)
        narrower = request(third, prompt="none")
        narrower.scope = "openid"
        assert "code" in query(redirected_to(await follow_local(browser, narrower.url())))

        assert_consent_page(await follow_local(browser, request(third, prompt="consent").url()))

        broader = request(third, prompt="none", authorization_details=json.dumps([DETAIL]))
        got = query(redirected_to(await follow_local(browser, broader.url())))
        assert got["error"] == "consent_required" and got["iss"] == third.issuer
        assert got["state"] == broader.state and "code" not in got

        stranger = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                                    first_party=False)
        got = query(redirected_to(await follow_local(browser,
                                                     request(stranger, prompt="none").url())))
        assert got["error"] == "consent_required"


async def test_first_party_never_asks(login: Login, third: TestClient) -> None:
    own = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    async with login.browser() as browser:
        first = await sign_in(login, browser, request(own).url())
        assert "code" in query(redirected_to(first))
        again = request(own, prompt="consent")
        assert "code" in query(redirected_to(await follow_local(browser, again.url())))
        assert_consent_page(await follow_local(browser, request(third).url()))
