"""tessera's SAML ACS end to end (pysaml2 IdP): every defective or replayed Response ends the
flow with ``access_denied`` (+ ``iss``) and a ``login.failed`` event, an unknown/used RelayState
or a foreign browser gets the "expired" page; never a code or a session cookie. Also the SP
metadata, the attribute mapping and AuthnContextClassRef -> ``acr``."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import secrets
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from sqlalchemy import func, select

from adapters.saml_assertion import DS, SAML, build_assertion, build_response, new_id, sign
from tenants.models import AuditEvent
from tests.broker.helpers import jwt_parts
from tests.conftest import BASE_URL, TestClient, new_client
from tests.login.conftest import SAML as UPSTREAM
from tests.login.conftest import SAML_TENANT as TENANT
from tests.login.conftest import Login
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
from tests.peers.saml_idp import AUTHN_CLASS, saml_login

pytestmark = pytest.mark.interop

ISSUER = f"{BASE_URL}/t/{TENANT}"
ACS_URL = f"{ISSUER}/saml/{UPSTREAM}/acs"
SP_ENTITY = f"{ISSUER}/saml/{UPSTREAM}/metadata"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
Browsers = Callable[[], httpx.AsyncClient]


@pytest.fixture(scope="module")
def login(login_saml: Login) -> Login:
    """This module signs in through the running SAML IdP: its ``login`` is tenant login-saml."""
    return login_saml


@dataclass
class Flow:
    browser: httpx.AsyncClient
    req: AuthRequest
    idp_url: str
    request_id: str  # the ID of the AuthnRequest tessera sent
    relay: str
    seq: int  # the tenant's last audit seq before the flow


Starter = Callable[[], Awaitable[Flow]]


@pytest.fixture(scope="module")
async def client(login: Login) -> TestClient:
    return await new_client(login.broker, TENANT, redirect_uris=[APP_REDIRECT])



@pytest.fixture
def new_flow(login: Login, client: TestClient, browsers: Browsers) -> Starter:
    return lambda: start(login, client, browsers())


async def audit_seq(login: Login) -> int:
    async with login.broker.sessions() as session:
        return int((await session.execute(select(func.coalesce(func.max(AuditEvent.seq), 0))
                                          .where(AuditEvent.tenant_id == TENANT))).scalar_one())


async def events_since(login: Login, seq: int) -> list[AuditEvent]:
    async with login.broker.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == TENANT, AuditEvent.seq > seq)
            .order_by(AuditEvent.seq))).scalars())


async def start(login: Login, client: TestClient, browser: httpx.AsyncClient) -> Flow:
    """/authorize -> /login -> /login/corp-saml -> the redirect to the IdP (not followed)."""
    seq = await audit_seq(login)
    req = AuthRequest(TENANT, client.client_id, extra={"idp": UPSTREAM})
    idp_url = location_of(await follow_local(browser, req.url()))
    assert idp_url.startswith(login.saml_idp.base_url), idp_url
    params = query(idp_url)
    authn = etree.fromstring(zlib.decompress(base64.b64decode(params["SAMLRequest"]), -15))
    return Flow(browser, req, idp_url, authn.get("ID"), params["RelayState"], seq)


async def at_idp(login: Login, flow: Flow, **overrides: object) -> dict[str, str]:
    """Sign in as carol at the IdP; the auto-post form's fields (not posted)."""
    login.saml_idp.next_response_overrides = dict(overrides)
    async with login.idp_browser() as idp:
        acs, fields = await saml_login(idp, flow.idp_url, "carol")
    assert acs == ACS_URL and fields["RelayState"] == flow.relay
    return fields


async def post_acs(flow: Flow, saml_response: str, relay: str | None = None) -> httpx.Response:
    return await submit_acs(flow.browser, ACS_URL, {
        "SAMLResponse": saml_response, "RelayState": flow.relay if relay is None else relay})


def sets_session(response: httpx.Response) -> bool:
    return any("tessera_session" in c for c in response.headers.get_list("set-cookie"))


async def assert_refused(login: Login, flow: Flow, response: httpx.Response, reason: str) -> None:
    url = location_of(response)
    params = query(url)
    assert url.startswith(APP_REDIRECT + "?"), url
    assert params["error"] == "access_denied" and params["iss"] == ISSUER
    assert params["state"] == flow.req.state and "code" not in params
    assert not sets_session(response) and "tessera_session" not in flow.browser.cookies
    events = await events_since(login, flow.seq)
    failed = [e for e in events if e.action == "login.failed"]
    assert len(failed) == 1, [(e.action, e.detail) for e in events]
    assert failed[0].outcome == "refused" and failed[0].client_id == flow.req.client_id
    assert failed[0].detail["upstream"] == UPSTREAM
    assert reason in failed[0].detail["reason"], failed[0].detail
    assert not {e.action for e in events} & {"login.succeeded", "authorization.code_issued"}


async def assert_expired_page(login: Login, flow: Flow, response: httpx.Response) -> None:
    """The page, no redirect, no cookie, nothing issued, and a ``login.refused`` event."""
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "has expired or was started in another browser" in response.text
    assert not sets_session(response)
    actions = {e.action for e in await events_since(login, flow.seq)}
    assert not actions & {"login.succeeded", "authorization.code_issued", "login.failed"}
    assert "login.refused" in actions


def fresh_key() -> tuple[bytes, bytes]:
    key, name = rsa.generate_private_key(65537, 2048), x509.Name([])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(1)
            .public_key(key.public_key()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def craft(login: Login, flow: Flow, key: tuple[bytes, bytes], *, recipient: str = ACS_URL,
          assertion_id: str | None = None, name_id: str = "mallory") -> str:
    """A Response in the IdP's name answering ``flow``'s AuthnRequest, its Assertion signed
    with ``key``."""
    idp, now = login.saml_idp.entity_id, login.broker.clock.now()
    assertion = build_assertion(
        issuer=idp, name_id=name_id, name_id_format=PERSISTENT, audience=SP_ENTITY, now=now,
        recipient=recipient, in_response_to=flow.request_id, assertion_id=assertion_id,
        attributes={"mail": [f"{name_id}@crafted.example"]})
    sign(assertion, *key)
    response = build_response(assertion, issuer=idp, destination=ACS_URL, now=now,
                              in_response_to=flow.request_id)
    return base64.b64encode(etree.tostring(response)).decode()


def idp_key(login: Login) -> tuple[bytes, bytes]:
    return login.saml_idp.key_pem.encode(), login.saml_idp.cert_pem.encode()


# --- metadata and a good login --------------------------------------------------------------

async def test_sp_metadata_names_entity_id_and_acs(login: Login) -> None:
    async with login.browser() as browser:
        r = await browser.get(SP_ENTITY.removeprefix(BASE_URL))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/samlmetadata+xml")
    root = etree.fromstring(r.content)
    assert root.tag == f"{{{MD}}}EntityDescriptor" and root.get("entityID") == SP_ENTITY
    sp = root.find(f"{{{MD}}}SPSSODescriptor")
    assert sp is not None and sp.get("WantAssertionsSigned") == "true"
    acs = sp.findall(f"{{{MD}}}AssertionConsumerService")
    assert [(a.get("Location"), a.get("Binding")) for a in acs] == [
        (ACS_URL, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")]


async def test_attributes_are_mapped_and_authn_context_becomes_acr(
    login: Login, client: TestClient, new_flow: Starter,
) -> None:
    flow = await new_flow()
    back = await post_acs(flow, (await at_idp(login, flow))["SAMLResponse"])
    params = query(location_of(back))
    assert params["iss"] == ISSUER and "code" in params, params
    assert "tessera_session" in flow.browser.cookies
    r = await token(flow.browser, TENANT, code_form(flow.req, params["code"]), auth=client.basic)
    assert r.status_code == 200, r.text
    _, id_token = jwt_parts(r.json()["id_token"])
    assert id_token["acr"] == AUTHN_CLASS and id_token["amr"] == ["pwd"]
    assert id_token["email"] == "carol@saml.example" and id_token["name"] == "Carol Danvers"
    info = await flow.browser.get(f"/t/{TENANT}/userinfo", headers={
        "Authorization": f"Bearer {r.json()['access_token']}"})
    assert info.status_code == 200
    assert {k: info.json()[k] for k in ("sub", "email", "name", "groups")} == {
        "sub": id_token["sub"], "email": "carol@saml.example", "name": "Carol Danvers",
        "groups": ["pilots"]}


# --- refused Responses: access_denied, login.failed, nothing issued -------------------------

@pytest.mark.parametrize(("overrides", "reason"), [
    ({"sign_response": False, "sign_assertion": False}, "neither the Response nor the Assertion"),
    ({"audience": "https://someone-else.example/sp"}, "audience does not include this SP"),
    ({"expired": True}, "Assertion expired"),
    ({"in_response_to": "id" + "0" * 40}, "Response InResponseTo does not match"),
    # the override moves Destination too, which is checked first
    ({"recipient": f"{BASE_URL}/t/login-other/saml/{UPSTREAM}/acs"}, "Destination is not our"),
], ids=["unsigned", "wrong-audience", "expired", "in-response-to-mismatch", "wrong-recipient"])
async def test_defective_idp_response_is_refused(
    login: Login, overrides: dict[str, object], reason: str, new_flow: Starter,
) -> None:
    flow = await new_flow()
    fields = await at_idp(login, flow, **overrides)
    await assert_refused(login, flow, await post_acs(flow, fields["SAMLResponse"]), reason)


async def test_assertion_signed_by_another_key_is_refused(login: Login, new_flow: Starter) -> None:
    flow = await new_flow()
    forged = craft(login, flow, fresh_key())
    await assert_refused(login, flow, await post_acs(flow, forged),
                         "signature does not verify with any trusted certificate")


async def test_recipient_other_than_our_acs_is_refused(login: Login, new_flow: Starter) -> None:
    """Destination right, SubjectConfirmationData Recipient wrong, signed by the IdP's key."""
    flow = await new_flow()
    crafted = craft(login, flow, idp_key(login), recipient=f"{BASE_URL}/elsewhere/acs")
    await assert_refused(login, flow, await post_acs(flow, crafted),
                         "Recipient is not our ACS URL")


def _wrap(saml_response: str, variant: str) -> str:
    """Signature wrapping: an unsigned evil Assertion beside / around the signed one, or in
    its place carrying its signature."""
    root = etree.fromstring(base64.b64decode(saml_response))
    original = root.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(original)
    for sig in evil.findall(f"{{{DS}}}Signature"):
        evil.remove(sig)
    evil.set("ID", new_id())
    evil.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "mallory"
    if variant == "sibling":
        original.addprevious(evil)
    elif variant == "wrapped":
        root.replace(original, evil)
        etree.SubElement(evil, f"{{{SAML}}}Advice").append(original)
    else:  # "moved": same ID, the genuine signature, altered content
        evil.set("ID", original.get("ID"))
        evil.find(f"{{{SAML}}}Issuer").addnext(original.find(f"{{{DS}}}Signature"))
        root.replace(original, evil)
    return base64.b64encode(etree.tostring(root)).decode()


@pytest.mark.parametrize(("variant", "reason"), [
    ("sibling", "exactly one Assertion"), ("wrapped", "exactly one Assertion"),
    ("moved", "signature does not verify")])
async def test_signature_wrapping_is_refused(
    login: Login, variant: str, reason: str, new_flow: Starter,
) -> None:
    flow = await new_flow()
    fields = await at_idp(login, flow)
    await assert_refused(login, flow, await post_acs(flow, _wrap(fields["SAMLResponse"], variant)),
                         reason)


async def test_doctype_and_entity_are_refused(login: Login, new_flow: Starter) -> None:
    flow = await new_flow()
    xml = base64.b64decode((await at_idp(login, flow))["SAMLResponse"])
    body = xml.split(b"?>", 1)[1] if xml.startswith(b"<?xml") else xml
    evil = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "mallory">]>' + body
    await assert_refused(login, flow, await post_acs(flow, base64.b64encode(evil).decode()),
                         "DOCTYPE/ENTITY declarations are refused")


async def test_replayed_response_under_a_fresh_relay_state_is_refused(
    login: Login, new_flow: Starter,
) -> None:
    """The old Response answers the old AuthnRequest: its InResponseTo catches the replay
    (before the assertion-ID journal is consulted)."""
    first = await new_flow()
    fields = await at_idp(login, first)
    assert "code" in query(location_of(await post_acs(first, fields["SAMLResponse"])))
    second = await new_flow()
    await assert_refused(login, second, await post_acs(second, fields["SAMLResponse"]),
                         "Response InResponseTo does not match the request")


async def test_assertion_id_replay_is_caught_by_the_journal(
    login: Login, new_flow: Starter,
) -> None:
    """Two Responses that each answer their own AuthnRequest (whose IDs tessera chooses) but
    carry the same Assertion ID, both signed with the IdP's key: the second is refused by the
    assertion-ID replay journal, the only check left to catch it."""
    assertion_id = new_id()
    first = await new_flow()
    ok = await post_acs(first, craft(login, first, idp_key(login), assertion_id=assertion_id))
    assert "code" in query(location_of(ok))  # the crafted Response itself is acceptable
    second = await new_flow()
    assert second.request_id != first.request_id
    again = craft(login, second, idp_key(login), assertion_id=assertion_id)
    await assert_refused(login, second, await post_acs(second, again), "assertion replayed")


# --- RelayState and browser binding: the expired page ---------------------------------------

async def test_unknown_relay_state_gets_expired_page(login: Login, new_flow: Starter) -> None:
    flow = await new_flow()
    fields = await at_idp(login, flow)
    bogus = secrets.token_urlsafe(30)
    await assert_expired_page(login, flow, await post_acs(flow, fields["SAMLResponse"], bogus))
    assert "tessera_session" not in flow.browser.cookies
    # nothing was consumed: the genuine RelayState still completes the login
    assert "code" in query(location_of(await post_acs(flow, fields["SAMLResponse"])))


async def test_reused_relay_state_gets_expired_page(login: Login, new_flow: Starter) -> None:
    flow = await new_flow()
    fields = await at_idp(login, flow)
    assert "code" in query(location_of(await post_acs(flow, fields["SAMLResponse"])))
    flow.seq = await audit_seq(login)
    await assert_expired_page(login, flow, await post_acs(flow, fields["SAMLResponse"]))


async def test_acs_post_from_another_browser_gets_expired_page(
    login: Login, browsers: Browsers, new_flow: Starter,
) -> None:
    flow = await new_flow()
    fields = await at_idp(login, flow)
    other = browsers()
    # the ACS checks the answer; the same-site GET it hands over to needs the flow cookie
    await assert_expired_page(login, flow, await submit_acs(other, ACS_URL, fields))
    assert "tessera_session" not in other.cookies
    # the RelayState was taken by that attempt: the flow cannot be finished any more
    await assert_expired_page(login, flow, await post_acs(flow, fields["SAMLResponse"]))
