"""Token exchange to a SAML assertion for a legacy app (requested_token_type saml2): the
assertion verifies against the tenant's IdP metadata, and SPs written by others (pysaml2 on an
ES256 tenant, samlify on an RS256 one) accept it, wrapped in an unsigned Response as an
unsolicited answer would carry it; they refuse it for another audience and once expired."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest
from lxml import etree

from adapters import jose
from adapters.saml_assertion import SAML, build_response, parse_xml, verify
from broker import id_jag
from broker.tokens import access_token_claims, mint_access_token
from tenants import users
from tenants.models import Client
from tenants.scope import tenant_scope
from tests.admin_ops import set_legacy_app_status
from tests.conftest import TestClient, new_client, new_tenant
from tests.login.conftest import Login
from tests.login.legacy import idp_metadata, new_entity, register
from tests.peers.saml_sps import Pysaml2SP, ResponseLifetimeExceed, SamlifySP

pytestmark = pytest.mark.interop
EXCHANGE = id_jag.TOKEN_EXCHANGE


async def _user(login: Login, tenant: str) -> str:
    """A tenant user as a login through the OIDC upstream makes one."""
    async with tenant_scope(login.broker.sessions, tenant) as scope:
        user = await users.link(scope, "corp-oidc", users.Profile(
            subject=secrets.token_hex(8), email="dora@corp.example", name="Dora Explorer",
            groups=("eng", "maps"), claims={"department": "Cartography"}),
            login.broker.clock.now())
        return user.id


async def _id_token(login: Login, tenant: str, client: TestClient, sub: str) -> str:
    view = await login.broker.tenant(tenant)
    return await id_jag.mint_id_token(login.broker, view, subject=sub, client_id=client.client_id)


async def allow(login: Login, client: TestClient, entity_id: str) -> None:
    """Register the app as one of the client's audiences (what it may get assertions for)."""
    async with tenant_scope(login.broker.sessions, client.tenant) as scope:
        row = await scope.get(Client, client.client_id)
        assert row is not None
        if entity_id not in row.audiences:
            row.audiences = [*row.audiences, entity_id]
    login.broker.forget_directory(client.tenant)


async def _exchange(login: Login, client: TestClient, subject_token: str, audience: str | list,
                    subject_type: str = id_jag.ID_TOKEN, *, allowed: bool = True,
                    **extra: str) -> httpx.Response:
    for entity_id in ([audience] if isinstance(audience, str) else audience):
        if allowed:
            await allow(login, client, entity_id)
    data: dict[str, Any] = {"grant_type": EXCHANGE, "subject_token": subject_token,
                            "subject_token_type": subject_type,
                            "requested_token_type": id_jag.SAML2, "audience": audience, **extra}
    async with login.browser() as http:
        return await http.post(f"/t/{client.tenant}/token", data=data, auth=client.basic)


def _wrapped(token: str, tenant_issuer: str, acs: str, now: float) -> str:
    """The assertion in an (unsigned) Response, as an SP's ACS takes it."""
    response = build_response(parse_xml(jose.b64url_decode(token)),
                              issuer=f"{tenant_issuer}/saml/idp/metadata", destination=acs,
                              now=now)
    return base64.b64encode(etree.tostring(response, xml_declaration=True,
                                           encoding="UTF-8")).decode()


@pytest.fixture(scope="module")
async def es_setup(login: Login) -> tuple[TestClient, str]:
    return await new_client(login.broker, login.tenant), await _user(login, login.tenant)


async def test_issued_assertion_verifies_and_pysaml2_accepts_it(
        login: Login, es_setup: tuple[TestClient, str], tmp_path) -> None:
    client, sub = es_setup
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs)
    r = await _exchange(login, client, await _id_token(login, login.tenant, client, sub), entity)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == id_jag.SAML2 and body["token_type"] == "N_A"
    assert body["expires_in"] == 300 and "=" not in body["access_token"] and "scope" not in body
    assertion = parse_xml(jose.b64url_decode(body["access_token"]))
    metadata = await idp_metadata(login, login.tenant)
    certs = [f"-----BEGIN CERTIFICATE-----\n{c.text}\n-----END CERTIFICATE-----\n".encode()
             for c in etree.fromstring(metadata.encode()).iter(
                 "{http://www.w3.org/2000/09/xmldsig#}X509Certificate")]
    verify(assertion, certs)
    assert assertion.findtext(f".//{{{SAML}}}Audience") == entity
    assert assertion.find(f".//{{{SAML}}}SubjectConfirmationData").get("Recipient") == acs
    sp = Pysaml2SP(tmp_path, entity_id=entity, acs=acs, idp_metadata=metadata,
                   allow_unsolicited=True)
    accepted = sp.accept(_wrapped(body["access_token"], client.issuer, acs,
                                  login.broker.clock.now()))
    assert accepted.ava["mail"] == ["dora@corp.example"] and accepted.ava["uid"] == [sub]
    assert sorted(accepted.ava["memberOf"]) == ["eng", "maps"]
    assert accepted.ava["dept"] == ["Cartography"]
    # another app of the same tenant (its own SP) refuses an assertion that is not for it
    other_entity, other_acs = new_entity()
    await register(login, login.tenant, other_entity, other_acs)
    other = Pysaml2SP(tmp_path / "other", entity_id=other_entity, acs=other_acs,
                      idp_metadata=metadata, allow_unsolicited=True)
    with pytest.raises(Exception, match="AudienceRestrictions conditions not satisfied"):
        other.accept(_wrapped(body["access_token"], client.issuer, other_acs,
                              login.broker.clock.now()))


async def test_expired_assertion_refused_by_pysaml2(
        login: Login, es_setup: tuple[TestClient, str], tmp_path) -> None:
    client, sub = es_setup
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs, assertion_lifetime=60)
    login.broker.clock.advance(-3600)  # issued an hour ago (the SP keeps real time)
    try:
        r = await _exchange(login, client, await _id_token(login, login.tenant, client, sub),
                            entity)
    finally:
        login.broker.clock.advance(3600)
    assert r.status_code == 200, r.text
    sp = Pysaml2SP(tmp_path, entity_id=entity, acs=acs, allow_unsolicited=True,
                   idp_metadata=await idp_metadata(login, login.tenant))
    with pytest.raises(ResponseLifetimeExceed, match="too old"):
        sp.accept(_wrapped(r.json()["access_token"], client.issuer, acs,
                           login.broker.clock.now()))


async def test_samlify_accepts_exchanged_assertion_and_refuses_others(login: Login) -> None:
    tenant = await new_tenant(login.broker, key_alg="RS256")  # samlify verifies RSA only
    client, sub = await new_client(login.broker, tenant), await _user(login, tenant)
    entity, acs = new_entity()
    await register(login, tenant, entity, acs, name_id_format="emailAddress")
    metadata = await idp_metadata(login, tenant)
    token = await _id_token(login, tenant, client, sub)
    r = await _exchange(login, client, token, entity)
    assert r.status_code == 200, r.text
    now = login.broker.clock.now()
    sp = SamlifySP(entity, acs, metadata)
    result = sp.parse(_wrapped(r.json()["access_token"], client.issuer, acs, now))
    assert result["ok"], result
    assert result["nameID"] == "dora@corp.example"
    assert result["attributes"]["memberOf"] == ["eng", "maps"]
    other = SamlifySP(new_entity()[0], acs, metadata)
    refused = other.parse(_wrapped(r.json()["access_token"], client.issuer, acs, now))
    assert not refused["ok"] and "AUDIENCE" in refused["error"], refused
    login.broker.clock.advance(-3600)
    try:
        old = await _exchange(login, client, await _id_token(login, tenant, client, sub), entity)
    finally:
        login.broker.clock.advance(3600)
    expired = sp.parse(_wrapped(old.json()["access_token"], client.issuer, acs, now))
    assert not expired["ok"] and "SUBJECT_UNCONFIRMED" in expired["error"], expired


async def test_access_token_of_the_user_is_a_subject_token_too(
        login: Login, es_setup: tuple[TestClient, str]) -> None:
    client, sub = es_setup
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs)
    view = await login.broker.tenant(login.tenant)
    token = await mint_access_token(login.broker, view, access_token_claims(
        issuer=view.issuer, subject=sub, client_id=client.client_id, audience=[view.issuer],
        scope=(), now=login.broker.clock.now(), lifetime=300))
    r = await _exchange(login, client, token.token, entity, id_jag.ACCESS_TOKEN)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("case", ["unknown_app", "two_audiences", "disabled_app", "resource",
                                  "client_token", "other_clients_id_token", "peer_style_type",
                                  "app_not_an_audience_of_the_client", "other_tenants_app",
                                  "disabled_user"])
async def test_refusals(login: Login, es_setup: tuple[TestClient, str], case: str) -> None:
    client, sub = es_setup
    entity, acs = new_entity()
    await register(login, login.tenant, entity, acs)
    token = await _id_token(login, login.tenant, client, sub)
    subject_type, audience, extra = id_jag.ID_TOKEN, entity, {}
    if case == "unknown_app":
        audience = new_entity()[0]
    elif case == "two_audiences":
        audience = [entity, new_entity()[0]]
    elif case == "disabled_app":
        await set_legacy_app_status(login.broker, login.tenant, entity, "disabled")
    elif case == "resource":
        extra = {"resource": "https://api.example"}
    elif case == "client_token":  # client credentials: sub is the client, not a user
        r = await _exchange_cc(login, client)
        token, subject_type = r, id_jag.ACCESS_TOKEN
    elif case == "other_clients_id_token":
        other = await new_client(login.broker, login.tenant)
        token = await _id_token(login, login.tenant, other, sub)
    elif case == "peer_style_type":
        subject_type = id_jag.SAML2
    elif case == "other_tenants_app":  # the same entity ID, active, but at another tenant
        audience, _ = new_entity()
        await register(login, await new_tenant(login.broker), audience, acs)
    elif case == "disabled_user":
        async with tenant_scope(login.broker.sessions, login.tenant) as scope:
            await users.set_status(scope, sub, "disabled")
    r = await _exchange(login, client, token, audience, subject_type,
                        allowed=case != "app_not_an_audience_of_the_client", **extra)
    expected = "invalid_target" if case in (
        "unknown_app", "disabled_app", "resource", "app_not_an_audience_of_the_client",
        "other_tenants_app") else (
        "invalid_request")
    assert r.status_code == 400 and r.json()["error"] == expected, r.text


async def _exchange_cc(login: Login, client: TestClient) -> str:
    async with login.browser() as http:
        r = await http.post(f"/t/{client.tenant}/token", auth=client.basic,
                            data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])
