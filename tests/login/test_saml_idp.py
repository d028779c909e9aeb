"""tessera as a SAML IdP for legacy apps, end to end with SPs written by others: pysaml2's
``Saml2Client`` and samlify (npm) create the AuthnRequests and judge the Responses. A browser
without a session logs in through one of the tenant's upstreams (the OIDC IdP as alice, the
SAML IdP as carol) before the auto-post form comes back; one with a session gets it at once."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import update

from adapters.saml_issue import MD, NAMEID_FORMATS, certificate_b64
from tenants.models import SigningKey
from tests import admin_ops as ops
from tests.conftest import ADMIN_TOKEN, BASE_URL, new_tenant
from tests.login.conftest import Login
from tests.login.legacy import (
    form_of,
    idp_metadata,
    new_entity,
    register,
    rsa_tenant,
    sso_redirect,
    through_login,
)
from tests.peers.saml_sps import Pysaml2SP, SamlifySP, key_and_cert

pytestmark = pytest.mark.interop
DS_CERT = "{http://www.w3.org/2000/09/xmldsig#}X509Certificate"
PERSISTENT = NAMEID_FORMATS["persistent"]


@pytest.fixture(scope="module")
def login(login_saml: Login) -> Login:
    """This module's RS256 tenant signs users in through the running SAML IdP: its ``login``
    is tenant login-saml (the OIDC IdP and that SAML IdP)."""
    return login_saml


@pytest.fixture(scope="module")
async def rs_tenant(login: Login) -> str:
    return await rsa_tenant(login)


async def _published_long_ago(login: Login, tenant: str) -> None:
    """As if the tenant's keys had been published a publication period ago (a rotation may
    then promote the next key)."""
    async with login.broker.sessions() as session, session.begin():
        await session.execute(update(SigningKey).where(SigningKey.tenant_id == tenant).values(
            created_at=SigningKey.created_at - login.broker.keys.publication_period))


async def test_metadata_lists_active_and_next_certificates(login: Login) -> None:
    tenant = await new_tenant(login.broker, key_alg="RS256")
    for _ in range(2):
        root = etree.fromstring((await idp_metadata(login, tenant)).encode())
        listed = [c.text for c in root.iter(DS_CERT)]
        keys = await login.broker.keys.certificates(tenant)
        assert [k.state for k, _ in keys][:2] == ["active", "next"]
        assert listed == [certificate_b64(pem) for _, pem in keys]
        await _published_long_ago(login, tenant)
        await ops.rotate_keys(login.broker, tenant)  # then active, next and the retiring one
    assert len(listed) == 3
    assert root.get("entityID") == f"{login.broker.issuer(tenant)}/saml/idp/metadata"
    services = {s.get("Binding").rsplit(":", 1)[1]: s.get("Location")
                for s in root.iter(f"{{{MD}}}SingleSignOnService")}
    assert services == {b: f"{login.broker.issuer(tenant)}/saml/idp/sso"
                        for b in ("HTTP-Redirect", "HTTP-POST")}
    assert [f.text for f in root.iter(f"{{{MD}}}NameIDFormat")] == list(NAMEID_FORMATS.values())


async def test_pysaml2_sso_redirect_after_oidc_login_then_with_session(login: Login,
                                                                       tmp_path) -> None:
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs)
    sp = Pysaml2SP(tmp_path, entity_id=entity, acs=acs,
                   idp_metadata=await idp_metadata(login, login.tenant))
    async with login.browser() as browser:
        request_id, url = sp.redirect_request(relay_state="/after")
        action, fields = form_of(await sso_redirect(login, browser, url, "alice"))
        assert action == acs and fields["RelayState"] == "/after"
        first = sp.accept(fields["SAMLResponse"], request_id)
        assert first.ava["mail"] == ["alice@corp.example"]
        assert first.ava["displayName"] == ["Alice Liddell"]
        assert sorted(first.ava["memberOf"]) == ["admins", "eng"]
        assert first.ava["dept"] == ["R&D"]
        assert first.name_id.format == NAMEID_FORMATS["persistent"]
        # the browser has a tessera session now: the answer comes at once, same pairwise ID
        request_id, url = sp.redirect_request()
        answer = await browser.get(url.removeprefix(BASE_URL))
        assert answer.status_code == 200
        again = sp.accept(form_of(answer)[1]["SAMLResponse"], request_id)
        assert again.name_id.text == first.name_id.text
        assert again.ava["uid"] == first.ava["uid"] and first.name_id.text != first.ava["uid"][0]


async def test_pysaml2_sso_post_binding_email_name_id(login: Login, tmp_path) -> None:
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs, name_id_format="emailAddress")
    sp = Pysaml2SP(tmp_path, entity_id=entity, acs=acs,
                   name_id_format=NAMEID_FORMATS["emailAddress"],
                   idp_metadata=await idp_metadata(login, login.tenant))
    async with login.browser() as browser:
        request_id, action, fields = sp.post_request(relay_state="rs-post")
        answer = await browser.post(action.removeprefix(BASE_URL), data=fields)
        page = await through_login(login, browser, answer, "bob")
        assert "nonce-" in page.headers["content-security-policy"]
        assert "form-action https://" in page.headers["content-security-policy"]
        assert "<button type=submit>Continue</button>" in page.text  # works without scripts
        _, posted = form_of(page)
        result = sp.accept(posted["SAMLResponse"], request_id)
        assert result.name_id.text == "bob@corp.example" and posted["RelayState"] == "rs-post"
        # with a session: the cross-site POST carries no Lax cookie, so tessera continues on a
        # same-site GET bound to this browser, which answers at once
        request_id, action, fields = sp.post_request()
        answer = await browser.post(action.removeprefix(BASE_URL), data=fields)
        step = answer.headers["location"]
        assert answer.status_code == 303 and "/saml/idp/sso?flow=" in step
        async with login.browser() as stranger:  # the flow is bound to the browser
            assert "expired" in (await stranger.get(step.removeprefix(BASE_URL))).text
        again = await browser.get(step.removeprefix(BASE_URL))
        assert sp.accept(form_of(again)[1]["SAMLResponse"], request_id).name_id.text == (
            "bob@corp.example")


async def test_pysaml2_is_passive_without_session_gets_no_passive(login: Login,
                                                                  tmp_path) -> None:
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs)
    sp = Pysaml2SP(tmp_path, entity_id=entity, acs=acs,
                   idp_metadata=await idp_metadata(login, login.tenant))
    async with login.browser() as browser:
        request_id, url = sp.redirect_request(is_passive="true")
        answer = await browser.get(url.removeprefix(BASE_URL))
    with pytest.raises(Exception, match="NoPassive"):
        sp.accept(form_of(answer)[1]["SAMLResponse"], request_id)


async def test_pysaml2_name_id_policy_mismatch_gets_a_saml_error(login: Login, tmp_path) -> None:
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs)  # persistent
    sp = Pysaml2SP(tmp_path, entity_id=entity, acs=acs,
                   name_id_format=NAMEID_FORMATS["transient"],
                   idp_metadata=await idp_metadata(login, login.tenant))
    async with login.browser() as browser:
        request_id, url = sp.redirect_request()
        answer = await browser.get(url.removeprefix(BASE_URL))
    with pytest.raises(Exception, match="InvalidNameIDPolicy"):
        sp.accept(form_of(answer)[1]["SAMLResponse"], request_id)


async def test_samlify_sso_after_saml_login(login: Login, rs_tenant: str) -> None:
    entity, acs = new_entity()
    await register(login, rs_tenant, entity, acs)
    sp = SamlifySP(entity, acs, await idp_metadata(login, rs_tenant), PERSISTENT)
    created = sp.login_request(relay_state="rs-1")
    async with login.browser() as browser:
        action, fields = form_of(await sso_redirect(login, browser, created["url"], "carol"))
        assert action == acs
        assert fields["RelayState"] == "rs-1"
        result = sp.parse(fields["SAMLResponse"], fields["RelayState"], created["id"])
        assert result["ok"], result
        assert result["attributes"]["mail"] == "carol@saml.example"
        assert result["attributes"]["displayName"] == "Carol Danvers"
        assert result["inResponseTo"] == created["id"]
        # ForceAuthn: the session does not answer, the browser logs in again
        forced = sp.login_request(force_authn=True)
        answer = await browser.get(forced["url"].removeprefix(BASE_URL))
        assert answer.status_code == 303 and "/login?flow=" in answer.headers["location"]
        _, fields = form_of(await through_login(login, browser, answer, "carol"))
        assert sp.parse(fields["SAMLResponse"], "", forced["id"])["ok"]


async def test_samlify_signed_requests_required(login: Login, rs_tenant: str) -> None:
    entity, acs = new_entity()
    key, cert = key_and_cert("samlify SP")
    await register(login, rs_tenant, entity, acs, want_authn_requests_signed=True,
                   sp_certs=[cert])
    # samlify signs only when the IdP metadata says it wants signed requests: this app's view
    signed = SamlifySP(entity, acs, await idp_metadata(login, rs_tenant, sp=entity),
                       PERSISTENT, private_key=key, cert=cert)
    created = signed.login_request()
    assert "Signature=" in created["url"] and "SigAlg=" in created["url"]
    async with login.browser() as browser:
        _, fields = form_of(await sso_redirect(login, browser, created["url"], "carol"))
        assert signed.parse(fields["SAMLResponse"], "", created["id"])["ok"]
        # the same browser (with a session) and an unsigned request: refused, nothing posted
        unsigned = SamlifySP(entity, acs, await idp_metadata(login, rs_tenant), PERSISTENT)
        refused = await browser.get(unsigned.login_request()["url"].removeprefix(BASE_URL))
    assert refused.status_code == 403 and "SAMLResponse" not in refused.text
    assert "must sign" in refused.text


@pytest.mark.parametrize("case", ["unregistered_acs", "unknown_sp", "disabled_app"])
async def test_bad_requests_get_an_error_page(login: Login, rs_tenant: str, case: str) -> None:
    entity, acs = new_entity()
    if case != "unknown_sp":
        await register(login, rs_tenant, entity, acs)
    if case == "disabled_app":
        async with login.browser() as admin:
            r = await admin.post(f"/admin/v1/tenants/{rs_tenant}/legacy-apps/disable",
                                 json={"entity_id": entity},
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert r.status_code == 200 and r.json()["status"] == "disabled", r.text
    evil = "https://evil.example/acs" if case == "unregistered_acs" else acs
    sp = SamlifySP(entity, evil, await idp_metadata(login, rs_tenant), PERSISTENT)
    async with login.browser() as browser:
        page = await browser.get(sp.login_request()["url"].removeprefix(BASE_URL))
    assert page.status_code == 403, page.text
    assert "<form" not in page.text and "evil.example" not in page.text
    assert ("not registered" if case == "unregistered_acs" else "unknown application") in page.text


async def test_failed_upstream_login_tells_the_app(login: Login, rs_tenant: str) -> None:
    """The upstream's answer is refused (wrong audience): the app gets a signed error
    Response (Responder/AuthnFailed), which samlify reports as a failed status."""
    entity, acs = new_entity()
    await register(login, rs_tenant, entity, acs)
    sp = SamlifySP(entity, acs, await idp_metadata(login, rs_tenant), PERSISTENT)
    created = sp.login_request()
    login.saml_idp.next_response_overrides = {"audience": "https://someone-else.example"}
    async with login.browser() as browser:
        action, fields = form_of(await sso_redirect(login, browser, created["url"], "carol"))
    assert action == acs
    result = sp.parse(fields["SAMLResponse"], "", created["id"])
    assert not result["ok"] and "AuthnFailed" in result["error"], result


async def test_register_from_samlify_sp_metadata_over_admin_api(login: Login,
                                                               rs_tenant: str) -> None:
    entity, acs = new_entity()
    sp = SamlifySP(entity, acs, await idp_metadata(login, rs_tenant))
    async with login.browser() as admin:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        r = await admin.post(f"/admin/v1/tenants/{rs_tenant}/legacy-apps", headers=auth,
                             json={"metadata": sp.metadata(), "attribute_mapping": {
                                 "mail": "email"}})
        assert r.status_code == 201, r.text
        assert r.json()["acs_urls"] == [acs] and r.json()["entity_id"] == entity
        listed = await admin.get(f"/admin/v1/tenants/{rs_tenant}/legacy-apps", headers=auth)
        assert entity in [a["entity_id"] for a in listed.json()]
        bad = await admin.post(f"/admin/v1/tenants/{rs_tenant}/legacy-apps", headers=auth,
                               json={"entity_id": "https://x.example", "acs_urls": [
                                   "http://x.example/acs"]})
        assert bad.status_code == 400 and "https" in bad.json()["error_description"]
    created = sp.login_request()
    async with login.browser() as browser:
        _, fields = form_of(await sso_redirect(login, browser, created["url"], "carol"))
    assert sp.parse(fields["SAMLResponse"], "", created["id"])["attributes"] == {
        "mail": "carol@saml.example"}
