"""OIDC upstream login edge cases end to end (oidc-provider as the enterprise IdP): the callback's
state is one-use and bound to the browser, an IdP error ends the flow with ``access_denied``,
IdP key rotation, an unknown user, a custom subject mapping, a disabled upstream.

The IdP's client accepts redirect URIs at ``login-corp``, ``login-saml`` and ``login-other``
only, and ``login-other`` belongs to test_id_token_userinfo.py (which creates it): the custom
subject mapping is shown with the SAML IdP in a fresh tenant, the disabled upstream in a fresh
tenant (its login never reaches the IdP)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from tenants.models import AuditEvent, FederatedIdentity
from tests import admin_ops as login_admin
from tests.conftest import BASE_URL, TestClient, new_client, new_tenant
from tests.login.conftest import OIDC, SAML, TENANT, Login
from tests.login.flow import (
    APP_REDIRECT,
    AuthRequest,
    code_form,
    follow_local,
    query,
    submit_acs,
    token,
)
from tests.login.flow import redirected_to as location_of
from tests.peers.oidc_idp import IdpLoginError, login_at_idp
from tests.peers.saml_idp import saml_login

pytestmark = pytest.mark.interop

ISSUED = {"login.succeeded", "authorization.code_issued"}
Browsers = Callable[[], httpx.AsyncClient]


def issuer(tenant: str) -> str:
    return f"{BASE_URL}/t/{tenant}"


def oidc_upstream(login: Login, name: str, **extra: object) -> dict[str, object]:
    # the secret the running IdP knows (tests.login.conftest imported again here would make
    # a new random RP_SECRET: pytest loads the conftest as another module)
    secret = login.oidc_idp.config["clients"][0]["client_secret"]
    return {"name": name, "kind": "oidc", "display_name": name, **extra,
            "oidc": {"issuer": login.oidc_idp.issuer, "client_id": "tessera",
                     "client_secret": secret, "scopes": ["openid", "email", "profile"]}}


@pytest.fixture(scope="module")
async def client(login: Login) -> TestClient:
    return await new_client(login.broker, TENANT, redirect_uris=[APP_REDIRECT])


@pytest.fixture(scope="module")
async def mail_client(login_saml: Login) -> TestClient:
    """A fresh tenant whose SAML upstream links users by their ``mail`` attribute, trusted by
    the SAML IdP."""
    tenant = await new_tenant(login_saml.broker)
    created = await login_admin.create_upstream(login_saml.broker, tenant, {
        "name": SAML, "kind": "saml", "mapping": {"subject": "mail"},
        "saml": {"metadata_xml": login_saml.saml_idp.metadata_xml().decode()}})
    async with login_saml.browser() as browser:
        sp = await browser.get(created["sp_metadata_url"].removeprefix(BASE_URL))
    login_saml.saml_idp.add_sp_metadata(sp.content)
    return await new_client(login_saml.broker, tenant, redirect_uris=[APP_REDIRECT])



async def audit_seq(login: Login, tenant: str = TENANT) -> int:
    async with login.broker.sessions() as session:
        return int((await session.execute(select(func.coalesce(func.max(AuditEvent.seq), 0))
                                          .where(AuditEvent.tenant_id == tenant))).scalar_one())


async def events_since(login: Login, seq: int, tenant: str = TENANT) -> list[AuditEvent]:
    async with login.broker.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq > seq)
            .order_by(AuditEvent.seq))).scalars())


async def start(login: Login, client: TestClient, browser: httpx.AsyncClient,
                ) -> tuple[AuthRequest, str]:
    """The browser's way to the IdP: (the request, the IdP's authorization URL)."""
    req, idp_url, _ = await start_flow(login, client, browser)
    return req, idp_url


async def start_flow(login: Login, client: TestClient, browser: httpx.AsyncClient,
                     ) -> tuple[AuthRequest, str, str]:
    """(the request, the IdP's authorization URL, tessera's parked-flow handle)."""
    req = AuthRequest(client.tenant, client.client_id, extra={"idp": OIDC})
    chooser = location_of(await browser.get(req.url()))
    assert chooser.startswith(f"{issuer(client.tenant)}/login?flow="), chooser
    idp_url = location_of(await follow_local(browser, chooser))
    assert idp_url.startswith(login.oidc_idp.issuer), idp_url
    return req, idp_url, query(chooser)["flow"]


async def at_idp(login: Login, idp_url: str, user: str = "alice") -> str:
    async with login.idp_browser() as idp:
        return await login_at_idp(idp, idp_url, user)


async def code_of(browser: httpx.AsyncClient, req: AuthRequest, callback: str) -> str:
    params = query(location_of(await follow_local(browser, callback)))
    assert params["iss"] == issuer(req.tenant) and params["state"] == req.state, params
    return params["code"]


async def assert_expired_page(login: Login, response: httpx.Response, seq: int) -> None:
    assert response.status_code == 400 and "location" not in response.headers
    assert "has expired or was started in another browser" in response.text
    assert not any("tessera_session" in c for c in response.headers.get_list("set-cookie"))
    assert not {e.action for e in await events_since(login, seq)} & ISSUED


async def test_unknown_state_gets_expired_page(
    login: Login, client: TestClient, browsers: Browsers,
) -> None:
    browser = browsers()
    req, idp_url = await start(login, client, browser)
    callback = await at_idp(login, idp_url)
    seq = await audit_seq(login)
    bogus = f"{issuer(TENANT)}/login/{OIDC}/callback?" + urlencode(
        {**query(callback), "state": secrets.token_urlsafe(32)})
    await assert_expired_page(login, await browser.get(bogus), seq)
    assert "tessera_session" not in browser.cookies
    await code_of(browser, req, callback)  # the genuine state was not consumed


async def test_reused_state_gets_expired_page(
    login: Login, client: TestClient, browsers: Browsers,
) -> None:
    browser = browsers()
    req, idp_url = await start(login, client, browser)
    callback = await at_idp(login, idp_url)
    await code_of(browser, req, callback)
    seq = await audit_seq(login)
    await assert_expired_page(login, await browser.get(callback), seq)
    assert [e.action for e in await events_since(login, seq)] == ["login.refused"]


async def test_callback_in_another_browser_gets_expired_page(
    login: Login, client: TestClient, browsers: Browsers,
) -> None:
    browser, other = browsers(), browsers()
    req, idp_url = await start(login, client, browser)
    callback = await at_idp(login, idp_url)
    seq = await audit_seq(login)
    await assert_expired_page(login, await other.get(callback), seq)
    assert "tessera_session" not in other.cookies
    assert [e.action for e in await events_since(login, seq)] == ["login.refused"]
    # that attempt left the state alone: the browser that started the flow still finishes it
    await code_of(browser, req, callback)


async def test_idp_error_ends_flow_with_access_denied(
    login: Login, client: TestClient, browsers: Browsers,
) -> None:
    browser = browsers()
    req, idp_url, flow = await start_flow(login, client, browser)
    seq = await audit_seq(login)
    callback = f"{issuer(TENANT)}/login/{OIDC}/callback?" + urlencode({
        "error": "access_denied", "error_description": "the user said no",
        "state": query(idp_url)["state"], "iss": login.oidc_idp.issuer})
    back = await browser.get(callback)
    url = location_of(back)
    params = query(url)
    assert url.startswith(APP_REDIRECT + "?") and "code" not in params
    assert params["error"] == "access_denied" and params["iss"] == issuer(TENANT)
    assert params["state"] == req.state
    assert "tessera_session" not in browser.cookies
    events = await events_since(login, seq)
    assert [e.action for e in events] == ["login.failed"]
    assert events[0].client_id == client.client_id and events[0].detail["upstream"] == OIDC
    assert "IdP refused the login" in events[0].detail["reason"]
    assert "access_denied" in events[0].detail["reason"]
    # the parked request is gone: the flow cannot be resumed
    await assert_expired_page(login, await browser.get(f"/t/{TENANT}/login?flow={flow}"), seq)


async def test_login_after_idp_key_rotation(
    login: Login, client: TestClient, browsers: Browsers,
) -> None:
    """tessera holds the IdP's JWKS in cache; after the IdP rotates, the ID token names an
    unknown kid and tessera refetches (at most once per min_refetch_interval, 30 s: the test
    moves the clock past it)."""
    jwks_uri = login.oidc_idp.jwks_uri
    login.broker.remote_keys.forget(jwks_uri)
    first = browsers()
    req, idp_url = await start(login, client, first)
    await code_of(first, req, await at_idp(login, idp_url))
    old = {k["kid"] for k in (await login.broker.remote_keys.jwks(jwks_uri))["keys"]}
    new = set(login.oidc_idp.rotate_keys())
    assert not old & new
    assert {k["kid"] for k in (await login.broker.remote_keys.jwks(jwks_uri))["keys"]} == old
    login.broker.clock.advance(31)
    try:
        second = browsers()
        req, idp_url = await start(login, client, second)
        code = await code_of(second, req, await at_idp(login, idp_url, "bob"))
        r = await token(second, TENANT, code_form(req, code), auth=client.basic)
        assert r.status_code == 200, r.text
        cached = {k["kid"] for k in (await login.broker.remote_keys.jwks(jwks_uri))["keys"]}
        assert cached == new
    finally:  # back to real time; drop the cache whose fetch time now lies in the future
        login.broker.clock.advance(-31)
        login.broker.remote_keys.forget(jwks_uri)


async def test_unknown_user_at_idp_issues_nothing(
    login: Login, client: TestClient, browsers: Browsers,
) -> None:
    browser = browsers()
    _, idp_url = await start(login, client, browser)
    seq = await audit_seq(login)
    with pytest.raises(IdpLoginError) as raised:
        await at_idp(login, idp_url, "mallory")
    assert raised.value.response.status_code == 400
    assert "Unknown user" in raised.value.response.text
    assert not await events_since(login, seq)
    assert "tessera_session" not in browser.cookies


async def test_custom_subject_mapping_links_by_mail(
    login: Login, mail_client: TestClient, browsers: Browsers,
) -> None:
    tenant, browser = mail_client.tenant, browsers()
    req = AuthRequest(tenant, mail_client.client_id, extra={"idp": SAML})
    async with login.idp_browser() as idp:
        acs, fields = await saml_login(
            idp, location_of(await follow_local(browser, req.url())), "carol")
    back = query(location_of(await submit_acs(browser, acs, fields)))
    r = await token(browser, tenant, code_form(req, back["code"]), auth=mail_client.basic)
    assert r.status_code == 200, r.text
    info = (await browser.get(f"/t/{tenant}/userinfo", headers={
        "Authorization": f"Bearer {r.json()['access_token']}"})).json()
    assert info["email"] == "carol@saml.example" and info["sub"] != "carol@saml.example"
    async with login.broker.sessions() as session:
        links = (await session.execute(select(FederatedIdentity).where(
            FederatedIdentity.tenant_id == tenant))).scalars().all()
    # the subject is the mail attribute, not the IdP's pairwise persistent NameID
    assert [(x.upstream, x.subject, x.user_id) for x in links] == [
        (SAML, "carol@saml.example", info["sub"])]


async def test_disabled_upstream_is_not_offered(login: Login, browsers: Browsers) -> None:
    tenant = await new_tenant(login.broker)
    for name in (OIDC, "retired"):
        await login_admin.create_upstream(login.broker, tenant, oidc_upstream(login, name))
    app = await new_client(login.broker, tenant, redirect_uris=[APP_REDIRECT])
    browser = browsers()
    chooser = await follow_local(browser, AuthRequest(tenant, app.client_id).url())
    assert chooser.status_code == 200, chooser.text
    assert f"/login/{OIDC}?flow=" in chooser.text and "/login/retired?flow=" in chooser.text
    flow = query(str(chooser.url))["flow"]
    await login_admin.set_upstream_status(login.broker, tenant, "retired", "disabled")
    seq = await audit_seq(login, tenant)
    page = await browser.get(f"/t/{tenant}/login/retired?flow={flow}")
    assert page.status_code == 404 and "Unknown sign-in method" in page.text
    # the only active upstream is now picked without a chooser
    picked = await browser.get(f"/t/{tenant}/login?flow={flow}")
    assert location_of(picked) == f"{issuer(tenant)}/login/{OIDC}?flow={flow}"
    hinted = await follow_local(browser, AuthRequest(
        tenant, app.client_id, extra={"idp": "retired"}).url())
    assert hinted.status_code == 200 and "retired" not in hinted.text
    assert not {e.action for e in await events_since(login, seq, tenant)} & ISSUED
