"""Pushed authorization requests (RFC 9126) and the checklist in shared/specs/par-rar-ciba.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.broker.helpers import last_event
from tests.conftest import OffsetClock, TestClient, new_client, new_tenant
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

PREFIX = "urn:ietf:params:oauth:request_uri:"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
async def later(login: Login) -> AsyncIterator[OffsetClock]:
    """The shared clock, moved back where it was after the test."""
    clock: OffsetClock = login.broker.clock  # type: ignore[assignment]
    start = clock.offset
    yield clock
    clock.offset = start


@pytest.fixture
async def app(login: Login) -> TestClient:
    """Confidential, first party (no consent page), PAR only."""
    return await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                            require_par=True)


async def push(http: httpx.AsyncClient, client: TestClient, req: AuthRequest,
               auth: tuple[str, str] | None = None, **extra: str) -> httpx.Response:
    params = {k: v for k, v in {**req.params(), **extra}.items() if v != ""}
    return await http.post(f"/t/{client.tenant}/par", data=params,
                           auth=auth or httpx.USE_CLIENT_DEFAULT)


def with_uri(client: TestClient, request_uri: str) -> str:
    query_ = urlencode({"client_id": client.client_id, "request_uri": request_uri})
    return f"/t/{client.tenant}/authorize?{query_}"


def assert_page(r: httpx.Response, error: str) -> None:
    assert r.status_code == 400 and "location" not in r.headers, r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert f"<code>{error}</code>" in r.text


async def test_push_answers_201_with_a_request_uri(login: Login, app: TestClient) -> None:
    async with login.browser() as http:
        req = AuthRequest(login.tenant, app.client_id)
        r = await push(http, app, req, auth=app.basic)
        assert r.status_code == 201, r.text
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert set(body) == {"request_uri", "expires_in"} and body["expires_in"] == 60
        assert body["request_uri"].startswith(PREFIX)
        assert len(body["request_uri"]) - len(PREFIX) >= 43  # 256 bits
        other = (await push(http, app, req, auth=app.basic)).json()["request_uri"]
        assert other != body["request_uri"]


@pytest.mark.parametrize("auth", ["none", "wrong-secret", "other-client"])
async def test_push_needs_client_authentication(login: Login, app: TestClient,
                                                auth: str) -> None:
    other = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    credentials = {"none": None, "wrong-secret": (app.client_id, "not-the-secret"),
                   "other-client": (app.client_id, other.basic[1])}[auth]
    async with login.browser() as http:
        r = await push(http, app, AuthRequest(login.tenant, app.client_id), auth=credentials)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    event = await last_event(login.broker, login.tenant)
    assert (event.action, event.outcome) == ("par.refused", "refused")


async def test_public_client_pushes_with_client_id_only(login: Login) -> None:
    public = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                              auth_method="none", first_party=False, require_par=True)
    async with login.browser() as http:
        r = await push(http, public, AuthRequest(login.tenant, public.client_id))
    assert r.status_code == 201, r.text
    assert r.json()["request_uri"].startswith(PREFIX)


@pytest.mark.parametrize("case", ["request_uri", "redirect_uri", "no-redirect", "client_id",
                                  "response_type", "scope"])
async def test_push_refusals_are_json(login: Login, app: TestClient, case: str) -> None:
    extra, error = {
        "request_uri": ({"request_uri": PREFIX + "x" * 43}, "invalid_request"),
        "redirect_uri": ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        "no-redirect": ({"redirect_uri": ""}, "invalid_request"),
        "client_id": ({"client_id": "someone-else"}, "invalid_request"),
        "response_type": ({"response_type": "token"}, "unsupported_response_type"),
        "scope": ({"scope": "openid admin"}, "invalid_scope"),
    }[case]
    async with login.browser() as http:
        r = await push(http, app, AuthRequest(login.tenant, app.client_id), auth=app.basic,
                       **extra)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == error and "location" not in r.headers
    event = await last_event(login.broker, login.tenant)
    assert event.action == "par.refused" and event.detail["error"] == error


async def test_request_uri_is_one_use_and_bound_to_the_client(login: Login,
                                                              app: TestClient) -> None:
    other = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    async with login.browser() as http, login.browser() as browser:
        uri = (await push(http, app, AuthRequest(login.tenant, app.client_id),
                          auth=app.basic)).json()["request_uri"]
        assert_page(await browser.get(with_uri(other, uri)), "invalid_request_uri")
        uri = (await push(http, app, AuthRequest(login.tenant, app.client_id),
                          auth=app.basic)).json()["request_uri"]
        first = redirected_to(await browser.get(with_uri(app, uri)))
        assert first.startswith(f"{app.issuer}/login?flow="), first
        assert_page(await browser.get(with_uri(app, uri)), "invalid_request_uri")
        assert_page(await browser.get(with_uri(app, PREFIX + "made-up")), "invalid_request_uri")
        assert_page(await browser.get(with_uri(app, "https://app.example/req")),
                    "invalid_request_uri")
    event = await last_event(login.broker, login.tenant)
    assert event.action == "authorization.refused" and event.detail["error"] == (
        "invalid_request_uri")


async def test_request_uri_expires(login: Login, app: TestClient, later: OffsetClock) -> None:
    async with login.browser() as http, login.browser() as browser:
        uri = (await push(http, app, AuthRequest(login.tenant, app.client_id),
                          auth=app.basic)).json()["request_uri"]
        later.advance(61)
        assert_page(await browser.get(with_uri(app, uri)), "invalid_request_uri")


async def test_client_requiring_par_refuses_plain_requests(login: Login,
                                                           app: TestClient) -> None:
    req = AuthRequest(login.tenant, app.client_id)
    async with login.browser() as browser:
        got = query(redirected_to(await browser.get(req.url())))
    assert got["error"] == "invalid_request" and got["state"] == req.state
    assert got["iss"] == app.issuer and "code" not in got
    plain = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    async with login.browser() as browser:
        location = redirected_to(await browser.get(AuthRequest(login.tenant,
                                                               plain.client_id).url()))
    assert location.startswith(f"{plain.issuer}/login?flow="), location


async def test_tenant_requiring_par(login: Login) -> None:
    tenant = await new_tenant(login.broker, require_pushed_authorization_requests=True)
    client = await new_client(login.broker, tenant, redirect_uris=[APP_REDIRECT])
    async with login.browser() as browser:
        meta = (await browser.get(f"/t/{tenant}/.well-known/openid-configuration")).json()
        assert meta["require_pushed_authorization_requests"] is True
        assert meta["pushed_authorization_request_endpoint"] == f"{client.issuer}/par"
        req = AuthRequest(tenant, client.client_id)
        got = query(redirected_to(await browser.get(req.url())))
        assert got["error"] == "invalid_request" and got["iss"] == client.issuer
        uri = (await push(browser, client, req, auth=client.basic)).json()["request_uri"]
        location = redirected_to(await browser.get(with_uri(client, uri)))
        assert location.startswith(f"{client.issuer}/login?flow="), location
        login_meta = (await browser.get(
            f"/t/{login.tenant}/.well-known/openid-configuration")).json()
        assert login_meta["require_pushed_authorization_requests"] is False


def assertion(key: ECKey, client_id: str, aud: str, now: float) -> str:
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": int(now),
              "exp": int(now) + 60, "jti": f"par-{now}"}
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)


async def test_private_key_jwt_at_par(login: Login) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    client = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                              auth_method="private_key_jwt",
                              jwks={"keys": [key.as_dict(private=False)]})
    signed = assertion(key, client.client_id, client.issuer, login.broker.clock.now())
    form = {"client_assertion_type": JWT_BEARER, "client_assertion": signed}
    async with login.browser() as http:
        req = AuthRequest(login.tenant, client.client_id)
        r = await push(http, client, req, **form)
        assert r.status_code == 201, r.text
        r = await push(http, client, req, **form)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        assert "replayed" in r.json()["error_description"]
        elsewhere = assertion(key, client.client_id, "https://elsewhere.example",
                              login.broker.clock.now() + 1)
        r = await push(http, client, req, client_assertion_type=JWT_BEARER,
                       client_assertion=elsewhere)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


async def test_full_flow_through_par(login: Login) -> None:
    public = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                              auth_method="none", require_par=True)
    req = AuthRequest(login.tenant, public.client_id,
                      extra={"login_hint": "alice@corp.example"})
    async with login.browser() as browser:
        uri = (await push(browser, public, req)).json()["request_uri"]
        idp_url = redirected_to(await follow_local(browser, with_uri(public, uri)))
        assert idp_url.startswith(login.oidc_idp.issuer), idp_url
        async with login.idp_browser() as idp:
            callback = await login_at_idp(idp, idp_url, "alice")
        got = query(redirected_to(await follow_local(browser, callback)))
        assert got["state"] == req.state and got["iss"] == public.issuer
        r = await token(browser, login.tenant,
                        code_form(req, got["code"], client_id=public.client_id))
        assert r.status_code == 200, r.text
        body = r.json()
        assert {"access_token", "id_token", "refresh_token"} <= set(body)
        assert body["scope"] == req.scope
