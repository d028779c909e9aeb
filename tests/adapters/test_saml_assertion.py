"""adapters.saml_assertion: hardened parsing, in-process xmlsec signing/verification (with the
signature-wrapping defences) and assertion/response building, per shared/specs/saml.md."""

from __future__ import annotations

import copy
import datetime
import time

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from adapters import saml_assertion as sa
from adapters.saml_assertion import DS, SAML, SAMLP, SAMLError

T = xmlsec.constants
NOW = time.time()
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


def make_pair(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tessera test")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[bytes, bytes]:
    return make_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_pair() -> tuple[bytes, bytes]:
    return make_pair(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def other_pair() -> tuple[bytes, bytes]:
    return make_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def assertion(**overrides: object) -> etree._Element:
    kwargs: dict = dict(issuer="https://idp.example", name_id="alice",
                        name_id_format=UNSPECIFIED, audience="https://sp.example", now=NOW,
                        recipient="https://sp.example/acs", in_response_to="idreq",
                        session_index="s1", attributes={"mail": ["alice@example.com"]})
    kwargs.update(overrides)
    return sa.build_assertion(**kwargs)


def roundtrip(element: etree._Element) -> etree._Element:
    return sa.parse_xml(etree.tostring(element))


def manual_sign(element: etree._Element, key_pem: bytes, sig_t: object, digest_t: object,
                c14n_t: object = T.TransformExclC14N) -> None:
    """Sign with raw python-xmlsec so algorithms sa.sign refuses to produce can be tested."""
    sig = xmlsec.template.create(element, c14n_t, sig_t, ns="ds")
    element.find(f"{{{SAML}}}Issuer").addnext(sig)
    ref = xmlsec.template.add_reference(sig, digest_t, uri="#" + element.get("ID"))
    xmlsec.template.add_transform(ref, T.TransformEnveloped)
    xmlsec.template.add_transform(ref, T.TransformExclC14N)
    ctx = xmlsec.SignatureContext()
    ctx.register_id(element, "ID")
    ctx.key = xmlsec.Key.from_memory(key_pem, T.KeyDataFormatPem, None)
    ctx.sign(sig)


# --- parsing ---------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<r>&xxe;</r>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<lolz>&lol3;</lolz>"""


def test_parse_refuses_external_entity_doctype():
    with pytest.raises(SAMLError, match="DOCTYPE/ENTITY"):
        sa.parse_xml(XXE)


def test_parse_refuses_billion_laughs():
    with pytest.raises(SAMLError, match="DOCTYPE/ENTITY"):
        sa.parse_xml(LAUGHS)


def test_parse_refuses_bare_doctype():
    with pytest.raises(SAMLError, match="DOCTYPE"):
        sa.parse_xml(b'<!DOCTYPE r SYSTEM "http://evil.example/x.dtd"><r/>')


@pytest.mark.parametrize("doc", [XXE, LAUGHS])
def test_parse_refuses_doctype_even_without_the_byte_precheck(doc, monkeypatch):
    monkeypatch.setattr(sa, "_precheck", lambda data: None)
    with pytest.raises(SAMLError, match=r"^DOCTYPE declarations are refused"):
        sa.parse_xml(doc)


def test_parse_refuses_utf16_malformed_and_oversized():
    with pytest.raises(SAMLError, match="UTF-8"):
        sa.parse_xml("<r/>".encode("utf-16"))
    with pytest.raises(SAMLError, match="malformed"):
        sa.parse_xml(b"<r><a></r>")
    with pytest.raises(SAMLError, match="too large"):
        sa.parse_xml(b"<r>" + b"x" * 100 + b"</r>", max_bytes=50)


def test_parse_drops_comments_so_text_cannot_be_truncated():
    root = sa.parse_xml(b"<r><n>admin@example.com<!-- x -->.evil.example</n></r>")
    assert root.find("n").text == "admin@example.com.evil.example"


def test_parse_instant_forms():
    assert sa.parse_instant("2024-01-02T03:04:05Z", "t") == 1704164645
    assert sa.parse_instant("2024-01-02T03:04:05.123Z", "t") == pytest.approx(1704164645.123)
    assert sa.parse_instant("2024-01-02T04:04:05+01:00", "t") == 1704164645
    assert sa.parse_instant("2024-01-02T03:04:05", "t") == 1704164645
    with pytest.raises(SAMLError, match="not a valid dateTime"):
        sa.parse_instant("yesterday", "t")


# --- building --------------------------------------------------------------------------------

def test_build_assertion_and_response_shape():
    a = assertion()
    assert a.get("ID")[0].isalpha() and a.get("Version") == "2.0"
    assert [etree.QName(c).localname for c in a] == [
        "Issuer", "Subject", "Conditions", "AuthnStatement", "AttributeStatement"]
    scd = a.find(f".//{{{SAML}}}SubjectConfirmationData")
    assert scd.get("Recipient") == "https://sp.example/acs" and scd.get("InResponseTo") == "idreq"
    assert a.find(f".//{{{SAML}}}Audience").text == "https://sp.example"
    assert a.find(f".//{{{SAML}}}AuthnStatement").get("SessionIndex") == "s1"
    value = a.find(f".//{{{SAML}}}AttributeValue")
    assert value.text == "alice@example.com"
    r = sa.build_response(a, issuer="https://idp.example", destination="https://sp.example/acs",
                          now=NOW, in_response_to="idreq")
    assert r.get("Destination") == "https://sp.example/acs" and r.get("InResponseTo") == "idreq"
    assert r.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value") == sa.STATUS_SUCCESS
    assert r.find(f"{{{SAML}}}Assertion") is a


def test_new_ids_start_with_a_letter_and_differ():
    ids = {sa.new_id() for _ in range(50)}
    assert len(ids) == 50 and all(i[0].isalpha() for i in ids)


# --- sign / verify round trips ---------------------------------------------------------------

def test_rsa_round_trip(rsa_pair):
    a = sa.sign(assertion(), *rsa_pair)
    sig = a[1]
    assert sig.tag == f"{{{DS}}}Signature"  # right after saml:Issuer
    assert sig.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").get("URI") == "#" + a.get("ID")
    assert sig.find(f".//{{{DS}}}X509Certificate") is not None
    parsed = roundtrip(a)
    verified = sa.verify(parsed, [rsa_pair[1]])
    assert verified is parsed and verified.get("ID") == a.get("ID")


def test_ecdsa_round_trip(ec_pair):
    a = sa.sign(assertion(), *ec_pair, alg="ecdsa-sha256")
    method = a.find(f".//{{{DS}}}SignatureMethod").get("Algorithm")
    assert method.endswith("ecdsa-sha256")
    assert sa.verify(etree.ElementTree(roundtrip(a)), [ec_pair[1]]).get("ID") == a.get("ID")


def test_signing_key_is_reusable_and_both_levels_verify(rsa_pair, ec_pair):
    key = sa.SigningKey(*rsa_pair)
    a = key.sign(assertion())
    r = key.sign(sa.build_response(a, issuer="https://idp.example", destination="https://x",
                                   now=NOW))
    assert r[1].tag == f"{{{DS}}}Signature"
    parsed = roundtrip(r)
    assert sa.verify(parsed, [ec_pair[1], rsa_pair[1]]) is parsed  # tries each trusted cert
    inner = parsed.find(f"{{{SAML}}}Assertion")
    assert sa.verify(inner, [rsa_pair[1]]) is inner


def test_unknown_signing_alg_refused(rsa_pair):
    with pytest.raises(SAMLError, match="unsupported signing algorithm"):
        sa.SigningKey(*rsa_pair, alg="rsa-sha1")


# --- verify refusals -------------------------------------------------------------------------

def test_unsigned_refused(rsa_pair):
    with pytest.raises(SAMLError, match="not signed"):
        sa.verify(roundtrip(assertion()), [rsa_pair[1]])


def test_other_key_refused(rsa_pair, other_pair):
    a = roundtrip(sa.sign(assertion(), *other_pair))
    with pytest.raises(SAMLError, match="does not verify"):
        sa.verify(a, [rsa_pair[1]])


def test_no_trusted_certs_refused(rsa_pair):
    with pytest.raises(SAMLError, match="no trusted certificates"):
        sa.verify(roundtrip(sa.sign(assertion(), *rsa_pair)), [])


def test_tampered_content_refused(rsa_pair):
    a = roundtrip(sa.sign(assertion(), *rsa_pair))
    a.find(f".//{{{SAML}}}NameID").text = "admin"
    with pytest.raises(SAMLError, match="does not verify"):
        sa.verify(a, [rsa_pair[1]])


def test_sha1_refused_by_default_and_accepted_when_allowed(rsa_pair):
    a = assertion()
    manual_sign(a, rsa_pair[0], T.TransformRsaSha1, T.TransformSha1)
    a = roundtrip(a)
    with pytest.raises(SAMLError, match="signature algorithm not allowed"):
        sa.verify(a, [rsa_pair[1]])
    assert sa.verify(a, [rsa_pair[1]], allow_sha1=True) is a


def test_xmlsec_itself_restricted_to_the_allow_list(rsa_pair, monkeypatch):
    """Second layer behind the SignedInfo checks: xmlsec is told to refuse SHA-1 as well."""
    monkeypatch.setattr(sa, "_check_signed_info", lambda *args: None)
    a = assertion()
    manual_sign(a, rsa_pair[0], T.TransformRsaSha1, T.TransformSha1)
    a = roundtrip(a)
    with pytest.raises(SAMLError, match="does not verify"):
        sa.verify(a, [rsa_pair[1]])
    assert sa.verify(a, [rsa_pair[1]], allow_sha1=True) is a


def test_sha1_digest_refused_under_sha256_signature(rsa_pair):
    a = assertion()
    manual_sign(a, rsa_pair[0], T.TransformRsaSha256, T.TransformSha1)
    with pytest.raises(SAMLError, match="digest algorithm not allowed"):
        sa.verify(roundtrip(a), [rsa_pair[1]])


def test_sha512_and_sha384_accepted(rsa_pair):
    a = assertion()
    manual_sign(a, rsa_pair[0], T.TransformRsaSha512, T.TransformSha384)
    a = roundtrip(a)
    assert sa.verify(a, [rsa_pair[1]]) is a


def test_inclusive_c14n_refused(rsa_pair):
    a = assertion()
    manual_sign(a, rsa_pair[0], T.TransformRsaSha256, T.TransformSha256, T.TransformInclC14N)
    with pytest.raises(SAMLError, match="exclusive c14n"):
        sa.verify(roundtrip(a), [rsa_pair[1]])


def test_extra_transform_refused(rsa_pair):
    a = roundtrip(sa.sign(assertion(), *rsa_pair))
    transforms = a.find(f".//{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform",
                     Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
    with pytest.raises(SAMLError, match="transforms"):
        sa.verify(a, [rsa_pair[1]])


def test_second_signature_refused(rsa_pair):
    a = roundtrip(sa.sign(assertion(), *rsa_pair))
    sig = a.find(f"{{{DS}}}Signature")
    sig.addnext(copy.deepcopy(sig))
    with pytest.raises(SAMLError, match="more than one signature"):
        sa.verify(a, [rsa_pair[1]])


def test_signature_without_issuer_goes_first(rsa_pair):
    a = assertion()
    a.remove(a.find(f"{{{SAML}}}Issuer"))
    sa.sign(a, *rsa_pair)
    assert a[0].tag == f"{{{DS}}}Signature"
    assert sa.verify(roundtrip(a), [rsa_pair[1]]).get("ID") == a.get("ID")


def test_second_reference_refused(rsa_pair):
    a = roundtrip(sa.sign(assertion(), *rsa_pair))
    signed_info = a.find(f".//{{{DS}}}SignedInfo")
    signed_info.append(copy.deepcopy(signed_info.find(f"{{{DS}}}Reference")))
    with pytest.raises(SAMLError, match="exactly one Reference"):
        sa.verify(a, [rsa_pair[1]])


def test_reference_must_point_to_signature_parent(rsa_pair):
    """XSW: the assertion's valid signature moved onto an evil Response that wraps a copy."""
    signed = roundtrip(sa.sign(assertion(), *rsa_pair))
    evil = sa.build_response(assertion(name_id="admin"), issuer="https://idp.example",
                             destination="https://sp.example/acs", now=NOW)
    sig = signed.find(f"{{{DS}}}Signature")
    evil.find(f"{{{SAML}}}Issuer").addnext(sig)
    evil.append(signed)  # original (now unsigned) assertion kept for the digest
    with pytest.raises(SAMLError, match="does not point to the signed element"):
        sa.verify(roundtrip(evil), [rsa_pair[1]])


def test_duplicate_ids_refused(rsa_pair):
    """XSW: an evil element sharing the signed element's ID elsewhere in the document."""
    signed = sa.sign(assertion(), *rsa_pair)
    response = sa.build_response(signed, issuer="https://idp.example", destination="https://x",
                                 now=NOW)
    evil = assertion(name_id="admin", assertion_id=signed.get("ID"))
    response.find(f"{{{SAMLP}}}Status").addnext(evil)
    doc = roundtrip(response)
    inner = doc.findall(f"{{{SAML}}}Assertion")[-1]
    assert inner.find(f"{{{DS}}}Signature") is not None
    with pytest.raises(SAMLError, match="duplicate ID"):
        sa.verify(inner, [rsa_pair[1]])


def test_verify_returns_the_signed_element_not_a_wrapped_sibling(rsa_pair):
    """XSW: an evil unsigned assertion beside the signed one is neither returned nor signed."""
    signed = sa.sign(assertion(), *rsa_pair)
    response = sa.build_response(signed, issuer="https://idp.example", destination="https://x",
                                 now=NOW)
    response.find(f"{{{SAMLP}}}Status").addnext(assertion(name_id="admin"))
    doc = roundtrip(response)
    evil, good = doc.findall(f"{{{SAML}}}Assertion")
    assert sa.verify(good, [rsa_pair[1]]).find(f".//{{{SAML}}}NameID").text == "alice"
    with pytest.raises(SAMLError, match="not signed"):
        sa.verify(evil, [rsa_pair[1]])


@pytest.mark.parametrize(("when", "text"), [
    (0, "1970-01-01T00:00:00Z"),
    (951782400.9, "2000-02-29T00:00:00Z"),  # a fraction is cut, never rounded up
    (1709251199.5, "2024-02-29T23:59:59Z"),
    (4102444799, "2099-12-31T23:59:59Z"),
])
def test_instants_are_utc_to_the_second(when: float, text: str) -> None:
    assert sa.format_instant(when) == text
    assert sa.format_instant(when) == text  # the kept text of that second is the same
    assert sa.format_instant(when + 1) != text
