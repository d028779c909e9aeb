"""End to end: a user logs in at the enterprise SAML IdP (pysaml2), tessera as the SP."""

from __future__ import annotations

import pytest

from tests.conftest import BASE_URL, new_client
from tests.login.conftest import SAML, Login
from tests.login.flow import (
    AuthRequest,
    code_form,
    follow_local,
    query,
    redirected_to,
    submit_acs,
    token,
)
from tests.peers.saml_idp import saml_login

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def login(login_saml: Login) -> Login:
    """This module signs in through the running SAML IdP: its ``login`` is tenant login-saml."""
    return login_saml


async def test_code_flow_through_saml_upstream(login: Login) -> None:
    client = await new_client(login.broker, login.tenant, redirect_uris=["https://app.example/cb"])
    req = AuthRequest(login.tenant, client.client_id, extra={"idp": SAML})
    browser = login.browser()
    idp_url = redirected_to(await follow_local(browser, req.url()))
    assert idp_url.startswith(login.saml_idp.base_url)
    async with login.idp_browser() as idp:
        acs, fields = await saml_login(idp, idp_url, "carol")
    assert acs.startswith(BASE_URL)
    back = await submit_acs(browser, acs, fields)
    url = redirected_to(back)
    params = query(url)
    assert "code" in params, url
    r = await token(browser, login.tenant, code_form(req, params["code"]), auth=client.basic)
    assert r.status_code == 200, r.text
    info = await browser.get(f"/t/{login.tenant}/userinfo",
                             headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert info.json()["email"] == "carol@saml.example", info.json()
    await browser.aclose()
