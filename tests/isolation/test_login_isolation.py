"""Tenant isolation of the browser-facing flows: tenant B refuses tenant A's client_id at
/authorize, A's code and refresh token at its token endpoint, A's PAR request_uri, A's access
token at /userinfo, and A's session cookie. B's client ``app`` has the same client_id as A's
(its own secret); A's artefacts still work at A after B refused them.

The user's session at A is made directly (``users.link`` + ``login_sessions.start``, what an
upstream login does): no IdP peer is needed.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from broker.app import create_app
from broker.runtime import Broker
from tenants import login_sessions, users
from tenants.models import AuditEvent
from tenants.scope import tenant_scope
from tests.conftest import BASE_URL, new_client, new_tenant, unique
from tests.conftest import TestClient as Registered

APP = "https://app.example/cb"
SCOPE = "openid profile email"


@dataclass(frozen=True)
class World:
    a: str
    b: str
    a_app: Registered  # client_id shared with b_app
    a_only: Registered  # a client_id that exists only at A
    b_app: Registered
    cookie: str  # A's session cookie value (user alice)
    app: Any

    def browser(self, *, session: bool = True) -> httpx.AsyncClient:
        browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                    base_url=BASE_URL)
        if session:  # as the broker set it: path /t/A
            browser.cookies.set("tessera_session", self.cookie, domain="tessera.test",
                                path=f"/t/{self.a}")
        return browser


@pytest.fixture(scope="module")
async def w(broker: Broker) -> World:
    a, b = await new_tenant(broker), await new_tenant(broker)
    shared = unique("app")
    a_app = await new_client(broker, a, client_id=shared, redirect_uris=[APP])
    b_app = await new_client(broker, b, client_id=shared, redirect_uris=[APP])
    a_only = await new_client(broker, a, redirect_uris=[APP])
    assert a_app.secret != b_app.secret
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, a) as scope:
        user = await users.link(scope, "corp", users.Profile(
            subject="alice", email="alice@corp.example", name="Alice"), now)
        cookie, _ = await login_sessions.start(scope, user_id=user.id, upstream="corp",
                                               auth={"auth_time": int(now)}, now=now,
                                               lifetime=3600)
    return World(a, b, a_app, a_only, b_app, cookie,
                 create_app(broker, background=False, migrate=False))


@pytest.fixture
async def browser(w: World) -> AsyncIterator[httpx.AsyncClient]:
    async with w.browser() as b:
        yield b


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(client_id: str, challenge: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": APP,
            "scope": SCOPE, "state": secrets.token_urlsafe(8), "code_challenge": challenge,
            "code_challenge_method": "S256"}


async def code_at_a(w: World, browser: httpx.AsyncClient) -> tuple[str, str]:
    """(code, verifier) for A's ``app``: the session at A skips the login."""
    verifier, challenge = pkce()
    params = urlencode(authorize_params(w.a_app.client_id, challenge))
    r = await browser.get(f"/t/{w.a}/authorize?{params}")
    assert r.status_code == 303 and r.headers["location"].startswith(APP + "?"), r.text
    return query(r.headers["location"])["code"], verifier


def code_form(code: str, verifier: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": APP,
            "code_verifier": verifier}


async def tokens_at_a(w: World, browser: httpx.AsyncClient) -> dict[str, Any]:
    code, verifier = await code_at_a(w, browser)
    r = await browser.post(f"/t/{w.a}/token", data=code_form(code, verifier), auth=w.a_app.basic)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def last_seq(broker: Broker, tenant: str) -> int:
    async with broker.sessions() as session:
        seqs = (await session.execute(select(AuditEvent.seq).where(
            AuditEvent.tenant_id == tenant))).scalars().all()
    return max(seqs, default=0)


async def actions_after(broker: Broker, tenant: str, seq: int) -> list[str]:
    async with broker.sessions() as session:
        return list((await session.execute(select(AuditEvent.action).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq > seq)
            .order_by(AuditEvent.seq))).scalars())


def assert_error_page(r: httpx.Response, error: str) -> None:
    assert r.status_code == 400 and "location" not in r.headers, (r.status_code, r.headers)
    assert r.headers["content-type"].startswith("text/html")
    assert f"<code>{error}</code>" in r.text


async def test_a_client_id_at_b_authorize_is_error_page(
    broker: Broker, w: World, browser: httpx.AsyncClient,
) -> None:
    seq_a = await last_seq(broker, w.a)
    r = await browser.get(f"/t/{w.b}/authorize?"
                          + urlencode(authorize_params(w.a_only.client_id, pkce()[1])))
    assert_error_page(r, "invalid_request")
    assert "unknown or disabled client_id" in r.text
    assert await actions_after(broker, w.a, seq_a) == []


async def test_a_code_at_b_token_endpoint_is_refused(
    broker: Broker, w: World, browser: httpx.AsyncClient,
) -> None:
    code, verifier = await code_at_a(w, browser)
    form = code_form(code, verifier)
    for caller in (w.a_app, w.a_only):  # A's credentials are not B's
        r = await browser.post(f"/t/{w.b}/token", data=form, auth=caller.basic)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    seq_a = await last_seq(broker, w.a)
    r = await browser.post(f"/t/{w.b}/token", data=form, auth=w.b_app.basic)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert await actions_after(broker, w.a, seq_a) == []  # nothing revoked at A
    r = await browser.post(f"/t/{w.a}/token", data=form, auth=w.a_app.basic)
    assert r.status_code == 200 and "refresh_token" in r.json(), r.text


async def test_a_refresh_token_at_b_token_endpoint_is_refused(
    broker: Broker, w: World, browser: httpx.AsyncClient,
) -> None:
    refresh = (await tokens_at_a(w, browser))["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    r = await browser.post(f"/t/{w.b}/token", data=form, auth=w.a_app.basic)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    seq_a = await last_seq(broker, w.a)
    r = await browser.post(f"/t/{w.b}/token", data=form, auth=w.b_app.basic)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert await actions_after(broker, w.a, seq_a) == []
    r = await browser.post(f"/t/{w.a}/token", data=form, auth=w.a_app.basic)
    assert r.status_code == 200 and r.json()["refresh_token"] != refresh, r.text


async def test_a_par_request_uri_at_b_is_error_page(
    broker: Broker, w: World, browser: httpx.AsyncClient,
) -> None:
    verifier, challenge = pkce()
    params = authorize_params(w.a_app.client_id, challenge)
    pushed = await browser.post(f"/t/{w.a}/par", data=params, auth=w.a_app.basic)
    assert pushed.status_code == 201, pushed.text
    uri = pushed.json()["request_uri"]
    at_b = {"client_id": w.b_app.client_id, "request_uri": uri}  # same client_id at B
    r = await browser.get(f"/t/{w.b}/authorize?{urlencode(at_b)}")
    assert_error_page(r, "invalid_request_uri")
    # B's lookup did not consume it: A still honours its own request_uri
    r = await browser.get(f"/t/{w.a}/authorize?{urlencode(at_b)}")
    assert r.status_code == 303, r.text
    back = query(r.headers["location"])
    assert back["state"] == params["state"] and back["iss"] == f"{BASE_URL}/t/{w.a}"
    token = await browser.post(f"/t/{w.a}/token", data=code_form(back["code"], verifier),
                               auth=w.a_app.basic)
    assert token.status_code == 200, token.text


async def test_a_access_token_at_b_userinfo_is_401(w: World, browser: httpx.AsyncClient) -> None:
    access = (await tokens_at_a(w, browser))["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    r = await browser.get(f"/t/{w.b}/userinfo", headers=bearer)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = await browser.get(f"/t/{w.a}/userinfo", headers=bearer)
    assert r.status_code == 200 and r.json()["email"] == "alice@corp.example"


async def test_a_session_cookie_does_not_log_in_at_b(
    broker: Broker, w: World, browser: httpx.AsyncClient,
) -> None:
    seq_b = await last_seq(broker, w.b)
    query_b = urlencode(authorize_params(w.b_app.client_id, pkce()[1]))
    r = await browser.get(f"/t/{w.b}/authorize?{query_b}")  # the jar keeps it to /t/A
    assert r.status_code == 303 and r.headers["location"].startswith(
        f"{BASE_URL}/t/{w.b}/login?flow="), r.headers.get("location")
    async with w.browser(session=False) as bare:  # the cookie sent to B by hand
        r = await bare.get(f"/t/{w.b}/authorize?{query_b}",
                           headers={"Cookie": f"tessera_session={w.cookie}"})
    assert r.status_code == 303 and r.headers["location"].startswith(
        f"{BASE_URL}/t/{w.b}/login?flow="), r.headers.get("location")
    assert "authorization.code_issued" not in await actions_after(broker, w.b, seq_b)
    # and the same browser is logged in at A
    assert (await code_at_a(w, browser))[0]
