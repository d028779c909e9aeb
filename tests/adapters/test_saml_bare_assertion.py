"""adapters.saml_upstream.consume_assertion / decode_assertion / assertion_issuer: a bare signed
Assertion as RFC 7522 (SAML bearer grant) and RFC 8693 (``saml2`` subject token) take it."""

from __future__ import annotations

import base64
import datetime
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from adapters import saml_assertion as sa
from adapters import saml_upstream as up
from adapters.saml_assertion import SAML, SAMLError

IDP = "https://idp.example.com/saml"
ISSUER = "https://tessera.test/t/acme"
TOKEN = f"{ISSUER}/token"
NOW = float(int(time.time()))
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def make_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp test")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


KEY, CERT = make_pair()
OTHER = make_pair()
IDP_META = up.IdPMetadata(IDP, "https://idp.example.com/sso", None, (CERT,))


def assertion(*, key: tuple[bytes, bytes] = (KEY, CERT), signed: bool = True,
              **kwargs: object) -> bytes:
    args: dict = dict(issuer=IDP, name_id="u-123", name_id_format=PERSISTENT, audience=ISSUER,
                      now=NOW, recipient=TOKEN, in_response_to="idsomerequest",
                      attributes={"mail": ["u@example.com"]})
    args.update(kwargs)
    element = sa.build_assertion(**args)
    if signed:
        sa.sign(element, *key)
    return etree.tostring(element)


def consume(xml: bytes, *, now: float = NOW) -> up.SAMLIdentity:
    return up.consume_assertion(IDP_META, xml, audience_options=(TOKEN, ISSUER),
                                recipient_options=(TOKEN,), now=now)


def test_good_assertion() -> None:
    identity = consume(assertion())
    assert identity.issuer == IDP and identity.name_id == "u-123"
    assert identity.attributes["mail"] == ["u@example.com"]
    assert identity.not_on_or_after == NOW + 300
    assert identity.authn_context_class_ref == sa.AC_PASSWORD_PROTECTED
    assert consume(assertion(audience=TOKEN)).name_id == "u-123"
    assert consume(assertion(in_response_to=None)).name_id == "u-123"


def test_decode_base64url_padded_and_standard() -> None:
    xml = assertion() + b"\n<!-- ~~~ -->"  # bytes that differ between the alphabets
    url = base64.urlsafe_b64encode(xml).decode()
    assert up.decode_assertion(url.rstrip("=")) == xml
    assert up.decode_assertion(url) == xml
    assert up.decode_assertion(base64.b64encode(xml).decode()) == xml
    for bad in ("", "a", "@@@@", "A" * (up.MAX_RESPONSE_B64 + 4)):
        with pytest.raises(SAMLError):
            up.decode_assertion(bad)


def test_assertion_issuer() -> None:
    assert up.assertion_issuer(assertion(signed=False)) == IDP
    response = sa.build_response(None, issuer=IDP, destination=TOKEN, now=NOW)
    with pytest.raises(SAMLError, match="not a SAML 2\\.0 Assertion"):
        up.assertion_issuer(etree.tostring(response))


@pytest.mark.parametrize(("xml", "match"), [
    (lambda: assertion(signed=False), "not signed"),
    (lambda: assertion(key=OTHER), "does not verify"),
    (lambda: assertion(audience="https://tessera.test/t/acme/saml/x/metadata"), "audience"),
    (lambda: assertion(recipient="https://tessera.test/t/acme/saml/x/acs"),
     "Recipient is not our token endpoint"),
    (lambda: assertion(recipient=None), "Recipient"),
    (lambda: assertion(now=NOW - 900), "expired"),
    (lambda: assertion(now=NOW + 900), "not yet valid"),
    (lambda: assertion(issuer="https://evil.example/idp"), "Issuer"),
    (lambda: b'<!DOCTYPE x [<!ENTITY e "x">]>' + assertion(), "DOCTYPE"),
])
def test_refused(xml, match: str) -> None:
    with pytest.raises(SAMLError, match=match):
        consume(xml())


def test_tampered_refused() -> None:
    root = etree.fromstring(assertion())
    root.find(f".//{{{SAML}}}NameID").text = "admin"
    with pytest.raises(SAMLError, match="does not verify"):
        consume(etree.tostring(root))


def test_signed_assertion_wrapped_in_unsigned_one_refused() -> None:
    """XSW: the genuine signed assertion hidden inside an attacker's unsigned root."""
    evil = sa.build_assertion(issuer=IDP, name_id="admin", name_id_format=PERSISTENT,
                              audience=ISSUER, now=NOW, recipient=TOKEN)
    advice = etree.SubElement(evil, f"{{{SAML}}}Advice")
    advice.append(etree.fromstring(assertion()))
    with pytest.raises(SAMLError, match="not signed"):
        consume(etree.tostring(evil))


def test_sha1_refused_by_default() -> None:
    element = sa.build_assertion(issuer=IDP, name_id="u", name_id_format=PERSISTENT,
                                 audience=ISSUER, now=NOW, recipient=TOKEN)
    sa.sign(element, KEY, CERT)
    sig = element.find(f"{{{sa.DS}}}Signature")
    assert sig is not None
    sig.find(f".//{{{sa.DS}}}SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    with pytest.raises(SAMLError, match="algorithm not allowed"):
        consume(etree.tostring(element))
