"""The pysaml2 IdP peer (tests/peers/saml_idp.py) on its own, without tessera: a pysaml2 SP
(``Saml2Client``) sends AuthnRequests through it and checks what comes back, and python-xmlsec
verifies the assertion signatures here too, independently of pysaml2's own checks."""

from __future__ import annotations

import base64
import shutil
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmlsec
from cryptography.utils import CryptographyDeprecationWarning
from lxml import etree

from tests.peers.pysaml2_xmlsec import python_xmlsec_config, use_python_xmlsec
from tests.peers.saml_idp import SamlIdp, SamlLoginError, saml_login, start_saml_idp
from tests.peers.saml_sps import key_and_cert

with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.saml import (
        NAMEID_FORMAT_EMAILADDRESS,
        NAMEID_FORMAT_PERSISTENT,
        NAMEID_FORMAT_TRANSIENT,
    )
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

pytestmark = pytest.mark.interop

SP_ENTITY_ID = "http://sp.example/test"
ACS_URL = "http://127.0.0.1:9/acs"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}
USERS = {
    "alice": {"mail": ["alice@example.com"], "displayName": ["Alice Example"],
              "groups": ["admins", "developers"]},
    "bob": {"mail": ["bob@example.com"]},
}


def sp_metadata(entity_id: str = SP_ENTITY_ID) -> bytes:
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>{NAMEID_FORMAT_PERSISTENT}</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true"
        Binding="{BINDING_HTTP_POST}" Location="{ACS_URL}"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>""".encode()


def sp_client(idp: SamlIdp, entity_id: str = SP_ENTITY_ID,
              idp_metadata: bytes | None = None) -> Saml2Client:
    """pysaml2's SP trusting ``idp`` by its metadata (or by ``idp_metadata`` instead)."""
    config = SPConfig().load(python_xmlsec_config({
        "entityid": entity_id,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(ACS_URL, BINDING_HTTP_POST)]},
            "want_assertions_signed": True, "want_response_signed": False,
            "allow_unsolicited": False, "authn_requests_signed": False,
        }},
        "allow_unknown_attributes": True,
        "metadata": {"inline": [(idp_metadata or idp.metadata_xml()).decode()]},
    }))
    return use_python_xmlsec(Saml2Client(config=config))


def authn_redirect(client: Saml2Client, idp: SamlIdp, relay_state: str = "rs-42",
                   **kwargs: Any) -> tuple[str, str]:
    """(request id, the HTTP-Redirect binding URL an SP would send the browser to)."""
    req_id, info = client.prepare_for_authenticate(
        entityid=idp.entity_id, relay_state=relay_state, binding=BINDING_HTTP_REDIRECT, **kwargs)
    return req_id, dict(info["headers"])["Location"]


def sp_accepts(client: Saml2Client, form: dict[str, str], req_id: str) -> bool:
    """pysaml2's SP verdict: it raises for most defects, returns None for some (Destination)."""
    try:
        parsed = client.parse_authn_request_response(form["SAMLResponse"], BINDING_HTTP_POST,
                                                     outstanding={req_id: "/"})
    except Exception:
        return False
    return parsed is not None


def response_xml(form: dict[str, str]) -> etree._Element:
    return etree.fromstring(base64.b64decode(form["SAMLResponse"]))


def verify_with_xmlsec(element: etree._Element, cert_pem: str) -> None:
    """Check the enveloped signature of ``element`` (Response or Assertion) with python-xmlsec
    against the IdP's certificate, and that only SHA-256 algorithms are used."""
    signature = element.find("ds:Signature", NS)
    assert signature is not None, f"{etree.QName(element).localname} is not signed"
    assert signature.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == SIG_RSA_SHA256
    assert signature.find(".//ds:DigestMethod", NS).get("Algorithm") == DIGEST_SHA256
    reference = signature.find(".//ds:Reference", NS).get("URI")
    assert reference == "#" + element.get("ID")
    xmlsec.tree.add_ids(element, ["ID"])
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert_pem.encode(), xmlsec.constants.KeyDataFormatCertPem)
    ctx.verify(signature)


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlIdp]:
    server = start_saml_idp(tmp_path_factory.mktemp("saml-idp"), users=USERS)
    server.add_sp_metadata(sp_metadata())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sp(idp: SamlIdp) -> Saml2Client:
    return sp_client(idp)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def test_metadata(idp: SamlIdp, http: httpx.AsyncClient) -> None:
    response = await http.get(idp.metadata_url)
    assert response.status_code == 200
    assert response.content == idp.metadata_xml()
    root = etree.fromstring(response.content)
    assert root.get("entityID") == idp.entity_id == f"{idp.base_url}/idp/metadata"
    md = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", **NS}
    sso = {e.get("Binding"): e.get("Location")
           for e in root.findall("md:IDPSSODescriptor/md:SingleSignOnService", md)}
    assert sso == {BINDING_HTTP_REDIRECT: f"{idp.base_url}/sso/redirect",
                   BINDING_HTTP_POST: f"{idp.base_url}/sso/post"}
    cert = root.find(".//md:KeyDescriptor//ds:X509Certificate", md).text
    assert "".join(cert.split()) in "".join(idp.cert_pem.split())
    assert b"sha1" not in response.content and b"md5" not in response.content


async def test_login_signed_assertion(idp: SamlIdp, sp: Saml2Client,
                                      http: httpx.AsyncClient) -> None:
    req_id, url = authn_redirect(sp, idp)
    action, form = await saml_login(http, url, "alice")
    assert action == ACS_URL
    assert form["RelayState"] == "rs-42"

    root = response_xml(form)
    assert b"sha1" not in base64.b64decode(form["SAMLResponse"])
    assert root.find("ds:Signature", NS) is None  # default: assertion signed, response not
    assertion = root.find("saml:Assertion", NS)
    verify_with_xmlsec(assertion, idp.cert_pem)
    assert root.get("InResponseTo") == req_id and root.get("Destination") == ACS_URL
    confirmation = assertion.find(".//saml:SubjectConfirmationData", NS)
    assert confirmation.get("Recipient") == ACS_URL
    assert confirmation.get("InResponseTo") == req_id
    assert assertion.findtext(".//saml:Audience", namespaces=NS) == SP_ENTITY_ID
    assert assertion.findtext(".//saml:AuthnContextClassRef", namespaces=NS) == (
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")

    # pysaml2's SP side accepts it: signature, audience, recipient, InResponseTo, validity
    parsed = sp.parse_authn_request_response(form["SAMLResponse"], BINDING_HTTP_POST,
                                             outstanding={req_id: "/"})
    assert parsed.in_response_to == req_id
    assert parsed.ava == {"mail": ["alice@example.com"], "displayName": ["Alice Example"],
                          "groups": ["admins", "developers"]}
    name_id = parsed.assertion.subject.name_id
    assert name_id.format == NAMEID_FORMAT_PERSISTENT
    assert name_id.sp_name_qualifier == SP_ENTITY_ID

    # the persistent NameID is stable for (SP, user) and differs between users
    again = response_xml((await saml_login(http, authn_redirect(sp, idp)[1], "alice"))[1])
    assert again.findtext(".//saml:NameID", namespaces=NS) == name_id.text
    bob = response_xml((await saml_login(http, authn_redirect(sp, idp)[1], "bob"))[1])
    assert bob.findtext(".//saml:NameID", namespaces=NS) != name_id.text


@pytest.mark.parametrize("name_id_format", [NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_TRANSIENT])
async def test_requested_name_id_format(idp: SamlIdp, sp: Saml2Client, http: httpx.AsyncClient,
                                        name_id_format: str) -> None:
    req_id, url = authn_redirect(sp, idp, nameid_format=name_id_format)
    _, form = await saml_login(http, url, "bob")
    parsed = sp.parse_authn_request_response(form["SAMLResponse"], BINDING_HTTP_POST,
                                             outstanding={req_id: "/"})
    name_id = parsed.assertion.subject.name_id
    assert name_id.format == name_id_format
    if name_id_format == NAMEID_FORMAT_EMAILADDRESS:
        assert name_id.text == "bob@example.com"
    else:  # a fresh one per login
        _, form = await saml_login(http, authn_redirect(sp, idp, nameid_format=name_id_format)[1],
                                   "bob")
        assert response_xml(form).findtext(".//saml:NameID", namespaces=NS) != name_id.text


async def test_signed_response_and_assertion(idp: SamlIdp, sp: Saml2Client,
                                             http: httpx.AsyncClient) -> None:
    idp.next_response_overrides = {"sign_response": True}
    req_id, url = authn_redirect(sp, idp)
    _, form = await saml_login(http, url, "alice")
    root = response_xml(form)
    verify_with_xmlsec(root.find("saml:Assertion", NS), idp.cert_pem)
    verify_with_xmlsec(root, idp.cert_pem)
    assert sp_accepts(sp, form, req_id)


async def test_unsigned_override(idp: SamlIdp, sp: Saml2Client, http: httpx.AsyncClient) -> None:
    idp.next_response_overrides = {"sign_response": False, "sign_assertion": False}
    req_id, url = authn_redirect(sp, idp)
    _, form = await saml_login(http, url, "alice")
    assert idp.next_response_overrides == {}, "overrides are consumed by the login"
    root = response_xml(form)
    assert root.find(".//ds:Signature", NS) is None
    assert root.find("saml:Assertion", NS) is not None
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        sp.parse_authn_request_response(form["SAMLResponse"], BINDING_HTTP_POST,
                                        outstanding={req_id: "/"})
    # the next login is back to normal
    req_id, url = authn_redirect(sp, idp)
    _, form = await saml_login(http, url, "alice")
    verify_with_xmlsec(response_xml(form).find("saml:Assertion", NS), idp.cert_pem)


async def test_sp_refuses_altered_or_foreign_signatures(idp: SamlIdp, sp: Saml2Client,
                                                        http: httpx.AsyncClient) -> None:
    """The SP's signature check (python-xmlsec in process, tests/peers/pysaml2_xmlsec.py) can
    fail: an assertion changed after signing, and a signature by the key in the Response's
    KeyInfo when the SP's metadata names another certificate, are refused."""
    req_id, url = authn_redirect(sp, idp)
    _, form = await saml_login(http, url, "alice")
    xml = base64.b64decode(form["SAMLResponse"])
    assert xml.count(b"alice@example.com") == 1
    altered = base64.b64encode(xml.replace(b"alice@example.com", b"mallory@example.com"))
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        sp.parse_authn_request_response(altered.decode(), BINDING_HTTP_POST,
                                        outstanding={req_id: "/"})
    assert sp_accepts(sp, form, req_id)  # the Response as signed

    metadata = etree.fromstring(idp.metadata_xml())
    other = "".join(key_and_cert("not the IdP")[1].splitlines()[1:-1])
    for cert in metadata.iter(f"{{{DS}}}X509Certificate"):
        cert.text = other
    pinned = sp_client(idp, idp_metadata=etree.tostring(metadata))
    req_id, url = authn_redirect(pinned, idp)
    _, form = await saml_login(http, url, "alice")
    verify_with_xmlsec(response_xml(form).find("saml:Assertion", NS), idp.cert_pem)
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        pinned.parse_authn_request_response(form["SAMLResponse"], BINDING_HTTP_POST,
                                            outstanding={req_id: "/"})


@pytest.mark.skipif(shutil.which("xmlsec1") is None,
                    reason="xmlsec1 not installed: apt install xmlsec1 (pysaml2's stock backend, "
                           "a cross-check of the in-process one)")
async def test_stock_xmlsec1_backend_agrees(idp: SamlIdp, http: httpx.AsyncClient) -> None:
    """pysaml2's own backend (the ``xmlsec1`` program) judges the in-process signatures as
    python-xmlsec does: it accepts the IdP's Response (signed Response and Assertion) and
    refuses it altered after signing."""
    config = SPConfig().load({
        "entityid": SP_ENTITY_ID,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(ACS_URL, BINDING_HTTP_POST)]},
            "want_assertions_signed": True, "want_response_signed": True,
            "allow_unsolicited": False, "authn_requests_signed": False,
        }},
        "allow_unknown_attributes": True,
        "metadata": {"inline": [idp.metadata_xml().decode()]},
        "xmlsec_binary": shutil.which("xmlsec1"),
    })
    stock = Saml2Client(config=config)
    assert type(stock.sec.crypto).__name__ == "CryptoBackendXmlSec1"
    idp.next_response_overrides = {"sign_response": True}
    req_id, url = authn_redirect(stock, idp)
    _, form = await saml_login(http, url, "alice")
    parsed = stock.parse_authn_request_response(form["SAMLResponse"], BINDING_HTTP_POST,
                                                outstanding={req_id: "/"})
    assert parsed.ava["mail"] == ["alice@example.com"]
    xml = base64.b64decode(form["SAMLResponse"])
    altered = base64.b64encode(xml.replace(b"alice@example.com", b"mallory@example.com"))
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        stock.parse_authn_request_response(altered.decode(), BINDING_HTTP_POST,
                                           outstanding={req_id: "/"})


@pytest.mark.parametrize(("override", "xpath", "attribute", "expected", "pysaml2_rejects"), [
    ({"audience": "urn:other"}, ".//saml:Audience", None, "urn:other", True),
    ({"in_response_to": "_other"}, ".//saml:SubjectConfirmationData", "InResponseTo", "_other",
     True),
    # pysaml2's SP only logs a foreign Destination and skips the Recipient check without a
    # conversation context: it accepts this one, a strict SP (tessera) must not
    ({"recipient": "http://127.0.0.1:9/elsewhere"}, ".//saml:SubjectConfirmationData",
     "Recipient", "http://127.0.0.1:9/elsewhere", False),
    ({"expired": True}, ".//saml:Conditions", None, None, True),
])
async def test_defect_overrides(idp: SamlIdp, sp: Saml2Client, http: httpx.AsyncClient,
                                override: dict[str, Any], xpath: str, attribute: str | None,
                                expected: str | None, pysaml2_rejects: bool) -> None:
    """Signed but wrong: the signature still verifies, the defect is where it should be."""
    idp.next_response_overrides = dict(override)
    req_id, url = authn_redirect(sp, idp)
    action, form = await saml_login(http, url, "alice")
    assert action == ACS_URL
    root = response_xml(form)
    assertion = root.find("saml:Assertion", NS)
    verify_with_xmlsec(assertion, idp.cert_pem)
    element = assertion.find(xpath, NS)
    if expected is not None:
        assert (element.get(attribute) if attribute else element.text) == expected
    if "recipient" in override:
        assert root.get("Destination") == override["recipient"]
    if "expired" in override:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        assert element.get("NotBefore") < element.get("NotOnOrAfter") < now
    assert sp_accepts(sp, form, req_id) is not pysaml2_rejects


async def test_unknown_user(idp: SamlIdp, sp: Saml2Client, http: httpx.AsyncClient) -> None:
    _, url = authn_redirect(sp, idp)
    with pytest.raises(SamlLoginError) as failed:
        await saml_login(http, url, "mallory")
    assert failed.value.status == 401


async def test_unregistered_sp(tmp_path: Path, http: httpx.AsyncClient) -> None:
    idp = start_saml_idp(tmp_path, users=USERS)
    try:
        client = sp_client(idp)
        with pytest.raises(SamlLoginError) as failed:
            await saml_login(http, authn_redirect(client, idp)[1], "alice")
        assert failed.value.status == 403
        idp.add_sp_metadata(sp_metadata())
        req_id, url = authn_redirect(client, idp)
        _, form = await saml_login(http, url, "alice")
        assert sp_accepts(client, form, req_id)
    finally:
        idp.stop()


async def test_post_binding(idp: SamlIdp, sp: Saml2Client, http: httpx.AsyncClient) -> None:
    """AuthnRequest by HTTP-POST to /sso/post also yields the login form."""
    req_id, info = sp.prepare_for_authenticate(entityid=idp.entity_id, relay_state="rs-post",
                                          binding=BINDING_HTTP_POST)
    page = etree.HTML(info["data"])
    fields = {i.get("name"): i.get("value") for i in page.iter("input") if i.get("name")}
    assert page.find(".//form").get("action") == f"{idp.base_url}/sso/post"
    response = await http.post(f"{idp.base_url}/sso/post", data=fields)
    assert response.status_code == 200
    login = etree.HTML(response.text).find(".//form")
    assert login.get("action") == f"{idp.base_url}/login"
    data = {i.get("name"): i.get("value") or "" for i in login.iter("input")}
    response = await http.post(login.get("action"), data={**data, "username": "bob"})
    assert response.status_code == 200
    auto_post = etree.HTML(response.text).find(".//form")
    assert auto_post.get("action") == ACS_URL
    fields = {i.get("name"): i.get("value") for i in auto_post.iter("input") if i.get("name")}
    assert fields["RelayState"] == "rs-post"
    assert sp_accepts(sp, fields, req_id)
