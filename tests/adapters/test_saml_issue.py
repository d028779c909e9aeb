"""Issuing SAML with the tenant's key service as the signer: the enveloped signature built by
``adapters.saml_issue`` verifies with python-xmlsec (``saml_assertion.verify``) for ES256 and
RS256 tenants and breaks on any change; the key's certificate is the same on every replica;
AuthnRequest and SP metadata parsing refuse what they must."""

from __future__ import annotations

import base64
import zlib

import pytest
from cryptography import x509
from lxml import etree

from adapters.saml_assertion import DS, SAML, SAMLP, SAMLError, parse_xml, verify
from adapters.saml_authn_request import (
    decode_redirect,
    parse_authn_request,
    parse_sp_metadata,
    verify_redirect_signature,
)
from adapters.saml_issue import (
    ECDSA_SHA256,
    NAMEID_FORMATS,
    RSA_SHA256,
    IdPKey,
    Subject,
    assertion_bytes,
    idp_metadata,
    issue_assertion,
    issue_response,
    persistent_name_id,
)
from broker.runtime import Broker
from tests.conftest import new_tenant

SP = "https://sp.example/metadata"
ACS = "https://sp.example/acs"


async def _key(broker: Broker, alg: str) -> tuple[str, IdPKey]:
    tenant = await new_tenant(broker, key_alg=alg)
    signer = await broker.keys.raw_signer(tenant)
    return tenant, IdPKey(signer.alg, signer.certificate, signer.sign)


def _subject() -> Subject:
    return Subject("user-1", NAMEID_FORMATS["persistent"],
                   {"mail": ["a@example.com"], "groups": ["eng", "ops"]}, authn_instant=1.0e9)


def _assertion(key: IdPKey, now: float) -> etree._Element:
    return issue_assertion(key, _subject(), issuer="https://idp.example", audience=SP, now=now,
                           lifetime=300, recipient=ACS)


@pytest.mark.parametrize(("alg", "method"), [("ES256", ECDSA_SHA256), ("RS256", RSA_SHA256)])
async def test_assertion_signed_by_key_service_verifies_with_xmlsec(broker, alg, method):
    _, key = await _key(broker, alg)
    root = parse_xml(assertion_bytes(_assertion(key, broker.clock.now())))
    assert verify(root, [key.certificate.encode()]) is root
    assert root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod").get(
        "Algorithm") == method
    # placed after the Issuer (schema order), the Reference names the assertion's ID
    assert [etree.QName(c).localname for c in root][:3] == ["Issuer", "Signature", "Subject"]


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_response_and_its_assertion_both_verify(broker, alg):
    _, key = await _key(broker, alg)
    now = broker.clock.now()
    xml = issue_response(key, _assertion(key, now), issuer="https://idp.example",
                         destination=ACS, now=now, in_response_to="id-req")
    root = parse_xml(xml)
    verify(root, [key.certificate.encode()])
    verify(root.find(f"{{{SAML}}}Assertion"), [key.certificate.encode()])
    assert root.get("InResponseTo") == "id-req" and root.get("Destination") == ACS


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("change", ["name_id", "attribute", "audience", "signed_info", "value"])
async def test_any_change_breaks_the_signature(broker, alg, change):
    _, key = await _key(broker, alg)
    root = parse_xml(assertion_bytes(_assertion(key, broker.clock.now())))
    if change == "name_id":
        root.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "admin"
    elif change == "attribute":
        root.find(f".//{{{SAML}}}AttributeValue").text = "root@example.com"
    elif change == "audience":
        root.find(f".//{{{SAML}}}Audience").text = "https://other.example"
    elif change == "signed_info":
        root.find(f".//{{{DS}}}DigestMethod").set(
            "Algorithm", "http://www.w3.org/2001/04/xmlenc#sha512")
    else:
        value = root.find(f".//{{{DS}}}SignatureValue")
        raw = bytearray(base64.b64decode(value.text))
        raw[5] ^= 1
        value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SAMLError):
        verify(root, [key.certificate.encode()])


async def test_another_tenants_certificate_does_not_verify(broker):
    _, key = await _key(broker, "ES256")
    _, other = await _key(broker, "ES256")
    root = parse_xml(assertion_bytes(_assertion(key, broker.clock.now())))
    with pytest.raises(SAMLError):
        verify(root, [other.certificate.encode()])


async def test_certificate_is_deterministic_and_matches_the_jwk(broker, clocked_broker):
    tenant, key = await _key(broker, "ES256")
    replica, _ = clocked_broker  # same database and master key, its own caches
    again = await replica.keys.raw_signer(tenant)
    assert again.certificate == key.certificate  # samlify compares KeyInfo with metadata
    cert = x509.load_pem_x509_certificate(key.certificate.encode())
    jwk = next(k for k in (await broker.keys.jwks(tenant))["keys"] if k["kid"] == again.kid)
    assert cert.public_key().public_numbers().x == int.from_bytes(
        base64.urlsafe_b64decode(jwk["x"] + "=="), "big")
    listed = await broker.keys.certificates(tenant)
    assert [k.state for k, _ in listed] == ["active", "next"]
    assert listed[0][1] == key.certificate


async def test_eddsa_tenant_cannot_sign_saml(broker):
    _, key = await _key(broker, "EdDSA")
    with pytest.raises(SAMLError, match="ES256 or RS256"):
        _assertion(key, broker.clock.now())


def test_persistent_name_id_is_pairwise_and_stable():
    a = persistent_name_id(b"s" * 32, "https://a.example", "u1")
    assert a == persistent_name_id(b"s" * 32, "https://a.example", "u1")
    assert a != persistent_name_id(b"s" * 32, "https://b.example", "u1")
    assert a != persistent_name_id(b"t" * 32, "https://a.example", "u1")
    assert "u1" not in a and len(a) == 43


# --- what SPs send -------------------------------------------------------------------------

def _deflate(xml: bytes) -> str:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(xml) + c.flush()).decode()


REQUEST = (f'<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="id1" '
           'Version="2.0" IssueInstant="2026-01-01T00:00:00Z" '
           f'AssertionConsumerServiceURL="{ACS}"><saml:Issuer>{SP}</saml:Issuer>'
           '</samlp:AuthnRequest>').encode()


def test_authn_request_parsed_from_redirect_encoding():
    req = parse_authn_request(decode_redirect(_deflate(REQUEST)))
    assert (req.id, req.issuer, req.acs_url, req.force_authn, req.signed) == (
        "id1", SP, ACS, False, False)


@pytest.mark.parametrize("xml", [
    b'<!DOCTYPE x [<!ENTITY e "e">]>' + REQUEST,
    REQUEST.replace(b"AuthnRequest", b"LogoutRequest"),
    REQUEST.replace(b'Version="2.0"', b'Version="1.1"'),
    REQUEST.replace(f"<saml:Issuer>{SP}</saml:Issuer>".encode(), b""),
])
def test_bad_authn_requests_refused(xml):
    with pytest.raises(SAMLError):
        parse_authn_request(decode_redirect(_deflate(xml)))


def test_deflate_bomb_refused():
    bomb = _deflate(b"<a>" + b" " * (2 * 1024 * 1024) + b"</a>")
    with pytest.raises(SAMLError, match="too large"):
        decode_redirect(bomb)


def test_redirect_signature_required_and_checked():
    query = "SAMLRequest=abc&RelayState=r"
    with pytest.raises(SAMLError, match="must sign"):
        verify_redirect_signature(query, ["x"])
    sha1 = query + "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1&Signature=AA"
    with pytest.raises(SAMLError, match="not allowed"):
        verify_redirect_signature(sha1, ["x"])


async def test_sp_metadata_parsed(broker):
    _, key = await _key(broker, "RS256")
    md = idp_metadata(entity_id="https://idp.example", sso_url="https://idp.example/sso",
                      certificates=[key.certificate])
    with pytest.raises(SAMLError, match="SPSSODescriptor"):
        parse_sp_metadata(md)  # an IdP's metadata is not an SP's
    sp = (f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
          f'xmlns:ds="{DS}" entityID="{SP}"><md:SPSSODescriptor AuthnRequestsSigned="true" '
          'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
          '<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'
          '</md:NameIDFormat><md:AssertionConsumerService index="1" Binding="urn:oasis:names:'
          'tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs2"/>'
          '<md:AssertionConsumerService index="0" isDefault="true" Binding="urn:oasis:names:tc:'
          f'SAML:2.0:bindings:HTTP-POST" Location="{ACS}"/></md:SPSSODescriptor>'
          '</md:EntityDescriptor>')
    parsed = parse_sp_metadata(sp.encode())
    assert parsed.entity_id == SP and parsed.acs_urls == (ACS, "https://sp.example/acs2")
    assert parsed.authn_requests_signed and parsed.name_id_format == "emailAddress"
