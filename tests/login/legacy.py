"""Helpers for the tests of tessera's SAML IdP role (legacy apps): register an app, fetch the
IdP metadata, drive a browser from an AuthnRequest through the upstream login to the
auto-post form, and an RS256 tenant (samlify verifies RSA only) federating the SAML IdP."""

from __future__ import annotations

import html
import re
import secrets
from typing import Any

import httpx

from tests import admin_ops as ops
from tests.admin_ops import create_legacy_app
from tests.conftest import BASE_URL
from tests.login.conftest import OIDC, SAML, Login
from tests.login.flow import follow_local, redirected_to, submit_acs
from tests.peers.oidc_idp import login_at_idp
from tests.peers.saml_idp import saml_login
from tests.peers.saml_sps import FormParser

MAPPING = {"mail": "email", "displayName": "name", "memberOf": "groups", "uid": "sub",
           "dept": "department"}


def new_entity() -> tuple[str, str]:
    """(entity ID, ACS URL) of a legacy app nobody registered yet."""
    host = f"legacy-{secrets.token_hex(4)}.example"
    return f"https://{host}/saml/metadata", f"https://{host}/saml/acs"


async def register(login: Login, tenant: str, entity_id: str, acs: str,
                   **fields: Any) -> dict[str, Any]:
    return await create_legacy_app(login.broker, tenant, {
        "entity_id": entity_id, "acs_urls": [acs], "attribute_mapping": MAPPING, **fields})


async def idp_metadata(login: Login, tenant: str, sp: str | None = None) -> str:
    async with login.browser() as http:
        r = await http.get(f"/t/{tenant}/saml/idp/metadata", params={"sp": sp} if sp else None)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/samlmetadata+xml")
    return r.text


async def rsa_tenant(login: Login) -> str:
    """A tenant signing with RS256 whose only upstream is the SAML IdP (user carol)."""
    tenant = f"saml-rs-{secrets.token_hex(3)}"
    await ops.create_tenant(login.broker, tenant, settings={"key_alg": "RS256"})
    created = await ops.create_upstream(login.broker, tenant, {
        "name": SAML, "kind": "saml", "display_name": "Corp (SAML)",
        "saml": {"metadata_xml": login.saml_idp.metadata_xml().decode()}})
    async with login.browser() as http:
        sp = await http.get(created["sp_metadata_url"].removeprefix(BASE_URL))
    login.saml_idp.add_sp_metadata(sp.content)
    return tenant


def form_of(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The auto-post page's form: (action, fields)."""
    assert response.status_code == 200, (response.status_code, response.text[:500])
    parser = FormParser()
    parser.feed(response.text)
    assert parser.action is not None, response.text[:500]
    return html.unescape(parser.action), parser.fields


async def through_login(login: Login, browser: httpx.AsyncClient, answer: httpx.Response,
                        user: str) -> httpx.Response:
    """From tessera's answer to an AuthnRequest to its last page: when it sends the browser to
    log in, through the chooser (the OIDC upstream) and the upstream IdP as ``user``."""
    if answer.status_code != 303:
        return answer
    response = await follow_local(browser, redirected_to(answer))
    if response.status_code == 200 and "SAMLResponse" in response.text:
        return response  # a POST-bound request continued with the browser's session
    if response.status_code == 200:  # the chooser: take the OIDC upstream
        link = re.search(rf"href='([^']*/login/{OIDC}\?flow=[^']*)'", response.text)
        assert link is not None, response.text[:500]
        response = await follow_local(browser, html.unescape(link.group(1)))
    location = redirected_to(response)
    async with login.idp_browser() as idp:
        if location.startswith(login.oidc_idp.issuer):
            callback = await login_at_idp(idp, location, user)
            return await follow_local(browser, callback)
        assert location.startswith(login.saml_idp.base_url), location
        acs, fields = await saml_login(idp, location, user)
    return await submit_acs(browser, acs, fields)


async def sso_redirect(login: Login, browser: httpx.AsyncClient, url: str,
                       user: str) -> httpx.Response:
    assert url.startswith(BASE_URL), url
    return await through_login(login, browser, await browser.get(url.removeprefix(BASE_URL)),
                               user)
