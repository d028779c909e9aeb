"""SAML 2.0 assertions in (RFC 7522 SAML bearer grant, RFC 8693 ``saml2`` subject token), end
to end with the pysaml2 IdP that tenant login-saml federates as upstream corp-saml: the IdP
knows an extra SP whose entity ID is the tenant issuer and whose ACS is the token endpoint, so
its signed Assertion is one a client could present. It becomes a DPoP-bound access token for
the tenant's (just-in-time linked) user, and an ID-JAG redeemed at another tenant; signature,
audience, time, recipient, parsing and replay defects are ``invalid_grant``."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from sqlalchemy import select

from adapters import subjects
from adapters.dpop import jwk_thumbprint
from adapters.saml_assertion import SAML, build_assertion, build_response, sign
from adapters.saml_upstream import (
    SAMLUpstreamConfig,
    authn_request,
    parse_idp_metadata,
    sp_metadata,
)
from broker import id_jag
from broker.grants.saml2_bearer import SAML2_BEARER
from tenants.models import AuditEvent, FederatedIdentity
from tests import admin_ops as ops
from tests.broker.helpers import jwt_parts
from tests.conftest import BASE_URL, TestClient, new_client, new_tenant
from tests.dpop_client import new_key, public_jwk
from tests.login.conftest import SAML as UPSTREAM
from tests.login.conftest import SAML_TENANT as TENANT
from tests.login.conftest import Login
from tests.login.flow import (
    APP_REDIRECT,
    AuthRequest,
    dpop,
    follow_local,
    introspect,
    query,
    redirected_to,
    submit_acs,
    token,
)
from tests.peers.saml_idp import AUTHN_CLASS, saml_login

pytestmark = pytest.mark.interop

ISSUER = f"{BASE_URL}/t/{TENANT}"
TOKEN_URL = f"{ISSUER}/token"
ACS_URL = f"{ISSUER}/saml/{UPSTREAM}/acs"
SP_ENTITY = f"{ISSUER}/saml/{UPSTREAM}/metadata"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
API = "https://api.pricing.example"
Key = tuple[bytes, bytes]


@pytest.fixture(scope="module")
def login(login_saml: Login) -> Login:
    """This module signs in through the running SAML IdP: its ``login`` is tenant login-saml."""
    return login_saml


def fresh_key() -> Key:
    key, name = rsa.generate_private_key(65537, 2048), x509.Name([])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(1)
            .public_key(key.public_key()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def idp_key(login: Login) -> Key:
    return login.saml_idp.key_pem.encode(), login.saml_idp.cert_pem.encode()


def b64url(xml: bytes) -> str:
    return base64.urlsafe_b64encode(xml).rstrip(b"=").decode()


@pytest.fixture(scope="module")
async def sp(login: Login) -> SAMLUpstreamConfig:
    """The IdP's SP whose assertions are for the token endpoint (audience: the issuer)."""
    config = SAMLUpstreamConfig(sp_entity_id=ISSUER, acs_url=TOKEN_URL,
                                idp=parse_idp_metadata(login.saml_idp.metadata_xml()))
    login.saml_idp.add_sp_metadata(sp_metadata(config))
    return config


@pytest.fixture(scope="module")
async def client(login: Login) -> TestClient:
    return await new_client(login.broker, TENANT, redirect_uris=[APP_REDIRECT])


@pytest.fixture
async def http(login: Login) -> AsyncIterator[httpx.AsyncClient]:
    async with login.browser() as browser:
        yield browser


async def from_idp(login: Login, sp: SAMLUpstreamConfig, **overrides: object) -> str:
    """carol signs in at the pysaml2 IdP for ``sp``; its signed Assertion, base64url."""
    _, url = authn_request(sp, now=login.broker.clock.now(), relay_state="bearer")
    login.saml_idp.next_response_overrides = dict(overrides)
    async with login.idp_browser() as idp:
        acs, fields = await saml_login(idp, url, "carol")
    assert acs == TOKEN_URL
    assertion = etree.fromstring(base64.b64decode(fields["SAMLResponse"])).find(
        f"{{{SAML}}}Assertion")
    assert assertion is not None
    return b64url(etree.tostring(assertion))


def craft(login: Login, key: Key, *, issuer: str | None = None, audience: str = ISSUER,
          recipient: str = TOKEN_URL, assertion_id: str | None = None, age: float = 0,
          in_response_to: str | None = None, name_id: str = "mallory") -> etree._Element:
    element = build_assertion(
        issuer=issuer or login.saml_idp.entity_id, name_id=name_id, name_id_format=PERSISTENT,
        audience=audience, now=login.broker.clock.now() - age, recipient=recipient,
        in_response_to=in_response_to, assertion_id=assertion_id,
        attributes={"mail": [f"{name_id}@crafted.example"]})
    return sign(element, *key)


async def bearer(http: httpx.AsyncClient, client: TestClient, assertion: str,
                 headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    return await token(http, TENANT, {"grant_type": SAML2_BEARER, "assertion": assertion,
                                      **extra}, auth=client.basic, headers=headers)


def refused(r: httpx.Response, error: str = "invalid_grant", why: str = "") -> None:
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] == error, r.text
    assert why in r.json().get("error_description", ""), r.text


def name_id_of(assertion: str) -> str:
    root = etree.fromstring(base64.urlsafe_b64decode(assertion + "=" * (-len(assertion) % 4)))
    return str(root.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID"))


async def linked_user(login: Login, subject: str) -> str:
    async with login.broker.sessions() as session:
        row = (await session.execute(select(FederatedIdentity).where(
            FederatedIdentity.tenant_id == TENANT, FederatedIdentity.upstream == UPSTREAM,
            FederatedIdentity.subject == subject))).scalar_one()
    return row.user_id


# --- the SAML bearer grant -----------------------------------------------------------------

async def test_idp_assertion_to_dpop_bound_token_once(login: Login, sp: SAMLUpstreamConfig,
                                                      client: TestClient, http: httpx.AsyncClient
                                                      ) -> None:
    assertion, key = await from_idp(login, sp), new_key()
    r = await bearer(http, client, assertion, dpop(login, key, TOKEN_URL))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "DPoP" and body["scope"] == "read write"
    _, at = jwt_parts(body["access_token"])
    assert at["sub"] == await linked_user(login, name_id_of(assertion))
    assert at["iss"] == ISSUER and at["client_id"] == client.client_id and "act" not in at
    assert at["cnf"] == {"jkt": jwk_thumbprint(public_jwk(key))}
    assert at["acr"] == AUTHN_CLASS and at["amr"] == ["pwd"] and isinstance(at["auth_time"], int)
    seen = await introspect(http, client, body["access_token"])
    assert seen["active"] and seen["sub"] == at["sub"] and seen["token_type"] == "DPoP"
    async with login.broker.sessions() as session:
        events = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == TENANT, AuditEvent.action == "token.issued",
            AuditEvent.subject == at["sub"]))).scalars().all()
    detail = next(e.detail for e in events if e.detail.get("jti") == at["jti"])
    assert detail["grant_type"] == "saml2-bearer" and detail["upstream"] == UPSTREAM
    assert detail["saml_issuer"] == login.saml_idp.entity_id
    again = await bearer(http, client, assertion, dpop(login, key, TOKEN_URL))
    refused(again, why="already used")


async def test_scope_resource_audience_and_encodings(login: Login, client: TestClient,
                                                     http: httpx.AsyncClient) -> None:
    key = idp_key(login)
    r = await bearer(http, client, b64url(etree.tostring(craft(login, key, audience=TOKEN_URL))),
                     scope="read", resource="https://api.example")
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer" and r.json()["scope"] == "read"
    assert jwt_parts(r.json()["access_token"])[1]["aud"] == "https://api.example"
    padded = base64.b64encode(etree.tostring(craft(login, key, in_response_to="idx"))).decode()
    assert (await bearer(http, client, padded)).status_code == 200
    fresh = b64url(etree.tostring(craft(login, key)))
    refused(await bearer(http, client, fresh, scope="admin"), "invalid_scope")
    refused(await bearer(http, client, fresh, resource="https://evil.example"), "invalid_target")


@pytest.mark.parametrize(("overrides", "why"), [
    ({"sign_assertion": False}, "not signed"),
    ({"audience": "https://someone-else.example/sp"}, "audience"),
    ({"expired": True}, "expired"),
    ({"recipient": ACS_URL}, "Recipient is not our token endpoint"),
])
async def test_idp_defects_are_invalid_grant(login: Login, sp: SAMLUpstreamConfig,
                                             client: TestClient, http: httpx.AsyncClient,
                                             overrides: dict[str, Any], why: str) -> None:
    refused(await bearer(http, client, await from_idp(login, sp, **overrides)), why=why)


async def test_crafted_defects_are_invalid_grant(login: Login, client: TestClient,
                                                 http: httpx.AsyncClient) -> None:
    key = idp_key(login)
    doctype = b'<!DOCTYPE a [<!ENTITY x "y">]>' + etree.tostring(craft(login, key))
    response = build_response(craft(login, key), issuer=login.saml_idp.entity_id,
                              destination=TOKEN_URL, now=login.broker.clock.now())
    cases = {
        "does not verify": craft(login, fresh_key()),
        "not a trusted SAML IdP": craft(login, fresh_key(), issuer="https://idp.unknown.example"),
        "audience": craft(login, key, audience=SP_ENTITY, recipient=ACS_URL),
        "expired": craft(login, key, age=900),
        "Recipient": craft(login, key, recipient=f"{ISSUER}/introspect"),
        "DOCTYPE": doctype,
        "not a SAML 2.0 Assertion": response,
    }
    for why, value in cases.items():
        xml = value if isinstance(value, bytes) else etree.tostring(value)
        refused(await bearer(http, client, b64url(xml)), why=why)
    refused(await bearer(http, client, "not*base64"), why="base64")


async def acs_login(login: Login, client: TestClient, assertion_id: str) -> str:
    """A browser login at corp-saml's ACS whose (IdP-signed) Assertion has ``assertion_id``;
    the URL the browser lands on at the app."""
    async with login.browser() as browser:
        req = AuthRequest(TENANT, client.client_id, extra={"idp": UPSTREAM})
        params = query(redirected_to(await follow_local(browser, req.url())))
        request_id = etree.fromstring(zlib.decompress(
            base64.b64decode(params["SAMLRequest"]), -15)).get("ID")
        assertion = craft(login, idp_key(login), audience=SP_ENTITY, recipient=ACS_URL,
                          assertion_id=assertion_id, in_response_to=request_id)
        response = build_response(assertion, issuer=login.saml_idp.entity_id,
                                  destination=ACS_URL, now=login.broker.clock.now(),
                                  in_response_to=request_id)
        r = await submit_acs(browser, ACS_URL, {"SAMLResponse": base64.b64encode(
            etree.tostring(response)).decode(), "RelayState": params["RelayState"]})
        return redirected_to(r)


async def test_one_use_across_acs_and_token_endpoint(login: Login, client: TestClient,
                                                     http: httpx.AsyncClient) -> None:
    first = "id" + secrets.token_hex(20)
    assert "code" in query(await acs_login(login, client, first))
    same = craft(login, idp_key(login), assertion_id=first)
    refused(await bearer(http, client, b64url(etree.tostring(same))), why="already used")
    second = "id" + secrets.token_hex(20)
    used = craft(login, idp_key(login), assertion_id=second)
    assert (await bearer(http, client, b64url(etree.tostring(used)))).status_code == 200
    assert query(await acs_login(login, client, second))["error"] == "access_denied"
    async with login.broker.sessions() as session:
        failed = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == TENANT, AuditEvent.action == "login.failed")
            .order_by(AuditEvent.seq.desc()).limit(1))).scalar_one()
    assert failed.detail["reason"] == "assertion replayed"


# --- token exchange: saml2 subject token ---------------------------------------------------

async def exchange(http: httpx.AsyncClient, client: TestClient, subject: str,
                   headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    return await token(http, TENANT, {
        "grant_type": id_jag.TOKEN_EXCHANGE, "subject_token": subject,
        "subject_token_type": id_jag.SAML2, **extra}, auth=client.basic, headers=headers)


async def test_exchange_saml2_for_access_token(login: Login, sp: SAMLUpstreamConfig,
                                               client: TestClient, http: httpx.AsyncClient
                                               ) -> None:
    assertion, key = await from_idp(login, sp), new_key()
    r = await exchange(http, client, assertion, dpop(login, key, TOKEN_URL),
                       requested_token_type=id_jag.ACCESS_TOKEN, scope="read")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == id_jag.ACCESS_TOKEN and body["token_type"] == "DPoP"
    _, at = jwt_parts(body["access_token"])
    assert at["sub"] == await linked_user(login, name_id_of(assertion))
    assert at["act"] == {"sub": client.client_id} and at["scope"] == "read"
    refused(await exchange(http, client, assertion), why="already used")
    other = b64url(etree.tostring(craft(login, fresh_key())))
    refused(await exchange(http, client, other), "invalid_request", "does not verify")


@dataclass
class Domains:
    agent: TestClient
    remote: TestClient


@pytest.fixture(scope="module")
async def domains(login: Login) -> Domains:
    """A resource tenant trusting login-saml, as in tests/flows/test_login_to_id_jag.py."""
    b = login.broker
    pricing = await new_tenant(b)
    agent = await new_client(b, TENANT, scopes=[], audiences=[])
    remote = await new_client(b, pricing, scopes=["read", "write"], audiences=[API])
    await ops.add_trust_link(b, TENANT, peer_tenant=pricing, send=True)
    await ops.add_trust_link(b, pricing, peer_tenant=TENANT, scope_ceiling=["read", "write"],
                             accept=True)
    await ops.put_managed_connection(
        b, TENANT, client_id=agent.client_id, audience=b.issuer(pricing),
        rules={"read": "grant", "write": "grant", "admin": "deny"},
        remote_client_id=remote.client_id, resources=[API], max_lifetime=120)
    return Domains(agent, remote)


async def test_exchange_saml2_for_id_jag_redeemed_at_another_tenant(
        login: Login, sp: SAMLUpstreamConfig, domains: Domains, http: httpx.AsyncClient) -> None:
    d, key = domains, new_key()
    assertion = await from_idp(login, sp)
    r = await exchange(http, d.agent, assertion, dpop(login, key, TOKEN_URL),
                       requested_token_type=id_jag.ID_JAG, audience=d.remote.issuer,
                       scope="read", resource=API)
    assert r.status_code == 200, r.text
    assert r.json()["issued_token_type"] == id_jag.ID_JAG and r.json()["token_type"] == "N_A"
    header, jag = jwt_parts(r.json()["access_token"])
    assert header["typ"] == id_jag.ID_JAG_TYP and jag["aud"] == d.remote.issuer
    assert jag["sub"] == await linked_user(login, name_id_of(assertion))
    assert "email" not in jag and jag["acr"] == AUTHN_CLASS  # minimised claims (issue 13)
    assert jag["amr"] == ["pwd"] and jag["cnf"] == {"jkt": jwk_thumbprint(public_jwk(key))}
    redeemed = await http.post(d.remote.token_url, auth=d.remote.basic,
                               headers=dpop(login, key, d.remote.token_url),
                               data={"grant_type": id_jag.JWT_BEARER,
                                     "assertion": r.json()["access_token"]})
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["token_type"] == "DPoP" and redeemed.json()["scope"] == "read"
    _, at = jwt_parts(redeemed.json()["access_token"])
    assert at["sub"] == subjects.foreign_sub(d.remote.tenant, ISSUER, jag["sub"])
    assert at["aud"] == API and at["acr"] == AUTHN_CLASS
    assert at["sub_id"] == {"format": "iss_sub", "iss": ISSUER, "sub": jag["sub"]}
    replay = await exchange(http, d.agent, assertion, requested_token_type=id_jag.ID_JAG,
                            audience=d.remote.issuer)
    refused(replay, why="already used")


# --- a registry partner's SAML IdP ---------------------------------------------------------

def idp_metadata(entity_id: str, cert_pem: bytes) -> str:
    der = base64.b64encode(x509.load_pem_x509_certificate(cert_pem).public_bytes(
        serialization.Encoding.DER)).decode()
    return (f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
            f' entityID="{entity_id}"><md:IDPSSODescriptor protocolSupportEnumeration='
            '"urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo>'
            f"<ds:X509Data><ds:X509Certificate>{der}</ds:X509Certificate></ds:X509Data>"
            "</ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="
            '"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
            f'Location="{entity_id}/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')


async def test_partner_saml_idp(login: Login, domains: Domains, http: httpx.AsyncClient) -> None:
    b, key, tag = login.broker, fresh_key(), secrets.token_hex(4)
    entity = f"https://idp.partner-{tag}.example/saml"
    partner = await ops.register_partner(
        b, issuer=f"https://partner-{tag}.example", display_name="Partner",
        jwks={"keys": [public_jwk(new_key())]},
        metadata={"saml_idp_metadata": idp_metadata(entity, key[1])})
    client = await new_client(b, TENANT)

    def assertion() -> str:
        return b64url(etree.tostring(craft(login, key, issuer=entity, name_id=f"p-{tag}")))

    refused(await bearer(http, client, assertion()), why="not a trusted SAML IdP")  # pending
    await ops.set_partner_status(b, partner["id"], "active")
    await ops.add_trust_link(b, TENANT, partner_id=partner["id"], scope_ceiling=["read"],
                             accept=True)
    r = await bearer(http, client, assertion())
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    _, at = jwt_parts(r.json()["access_token"])
    # the partner's user is keyed by the partner's registry issuer, not the SAML entity ID
    assert at["sub_id"] == {"format": "iss_sub", "iss": partner["issuer"], "sub": f"p-{tag}"}
    assert at["sub"].startswith("x.") and at["sub"] != f"p-{tag}"
    refused(await bearer(http, client, assertion(), scope="write"), "invalid_scope")
    jag = await exchange(http, domains.agent, assertion(), requested_token_type=id_jag.ID_JAG,
                         audience=domains.remote.issuer)
    refused(jag, "invalid_request", "partner")
    await ops.set_partner_status(b, partner["id"], "suspended")
    refused(await bearer(http, client, assertion()), why="not a trusted SAML IdP")
