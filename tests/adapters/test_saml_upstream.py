"""adapters.saml_upstream: tessera as SAML SP (metadata both ways, AuthnRequest over
HTTP-Redirect, Response consumption) against the "Consuming" checklist in shared/specs/saml.md."""

from __future__ import annotations

import base64
import copy
import datetime
import time
import zlib
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import md as saml2_md
from saml2 import samlp as saml2_samlp

from adapters import saml_assertion as sa
from adapters import saml_upstream as up
from adapters.saml_assertion import DS, SAML, SAMLP, SAMLError

IDP = "https://idp.example.com/saml"
SP = "https://tessera.test/t/acme/saml/okta"
ACS = "https://tessera.test/t/acme/saml/okta/acs"
REQ = "idrequest0001"
NOW = float(int(time.time()))
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"

Mutator = Callable[[etree._Element], None] | None


def make_pair() -> tuple[rsa.RSAPrivateKey, bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp test")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key, key_pem, cert.public_bytes(serialization.Encoding.PEM)


IDP_KEY, IDP_KEY_PEM, IDP_CERT = make_pair()
_, OTHER_KEY_PEM, OTHER_CERT = make_pair()


def b64_cert(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def idp_metadata_xml(*, redirect: bool = True, signing: bool = True) -> bytes:
    sso = (f'<md:SingleSignOnService Binding="{up.BINDING_REDIRECT}" '
           f'Location="https://idp.example.com/sso?app=acme"/>' if redirect else "")
    keys = (f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{b64_cert(IDP_CERT)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            f"</md:KeyDescriptor>" if signing else "")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {keys}
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
      {b64_cert(OTHER_CERT)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
      {b64_cert(IDP_CERT)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="{up.BINDING_POST}" Location="https://idp.example.com/post"/>
    {sso}
  </md:IDPSSODescriptor>
</md:EntityDescriptor>""".encode()


@pytest.fixture(scope="module")
def config() -> up.SAMLUpstreamConfig:
    return up.SAMLUpstreamConfig(sp_entity_id=SP, acs_url=ACS,
                                 idp=up.parse_idp_metadata(idp_metadata_xml()))


def make_response(*, sign_assertion: bool = True, sign_response: bool = False,
                  key_pem: bytes = IDP_KEY_PEM, cert_pem: bytes = IDP_CERT,
                  assertion_mutator: Mutator = None, response_mutator: Mutator = None,
                  after_sign: Mutator = None, response_kwargs: dict | None = None,
                  **assertion_kwargs: object) -> str:
    kwargs: dict = dict(issuer=IDP, name_id="alice@example.com", name_id_format=EMAIL,
                        audience=SP, now=NOW, recipient=ACS, in_response_to=REQ,
                        session_index="sess-1",
                        attributes={"urn:oid:0.9.2342.19200300.100.1.3": ["alice@example.com"],
                                    "groups": ["admins", "staff"]})
    kwargs.update(assertion_kwargs)
    assertion = sa.build_assertion(**kwargs)
    if assertion_mutator:
        assertion_mutator(assertion)
    if sign_assertion:
        sa.sign(assertion, key_pem, cert_pem)
    rkw: dict = dict(issuer=IDP, destination=ACS, now=NOW, in_response_to=REQ)
    rkw.update(response_kwargs or {})
    response = sa.build_response(assertion, **rkw)
    if response_mutator:
        response_mutator(response)
    if sign_response:
        sa.sign(response, key_pem, cert_pem)
    if after_sign:
        after_sign(response)
    return base64.b64encode(etree.tostring(response)).decode()


def consume(config: up.SAMLUpstreamConfig, b64: str, *, now: float = NOW,
            expected: str | None = REQ) -> up.SAMLIdentity:
    return up.consume_response(config, b64, expected_in_response_to=expected, now=now)


# --- metadata --------------------------------------------------------------------------------

def test_parse_idp_metadata(config):
    idp = config.idp
    assert idp.entity_id == IDP
    assert idp.sso_redirect_url == "https://idp.example.com/sso?app=acme"
    assert idp.sso_post_url == "https://idp.example.com/post"
    assert idp.certs == (IDP_CERT, IDP_CERT)  # use="signing" and unspecified; not encryption


def test_parse_idp_metadata_inside_entities_descriptor():
    inner = idp_metadata_xml().split(b"?>", 1)[1]
    wrapped = b'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
    wrapped += inner + b"</md:EntitiesDescriptor>"
    assert up.parse_idp_metadata(wrapped).entity_id == IDP


def test_parse_idp_metadata_refusals():
    with pytest.raises(SAMLError, match="HTTP-Redirect"):
        up.parse_idp_metadata(idp_metadata_xml(redirect=False))
    with pytest.raises(SAMLError, match="IDPSSODescriptor"):
        up.parse_idp_metadata(idp_metadata_xml().replace(b"IDPSSODescriptor", b"SPSSODescriptor"))
    with pytest.raises(SAMLError, match="entityID"):
        up.parse_idp_metadata(idp_metadata_xml().replace(f'entityID="{IDP}"'.encode(), b""))
    with pytest.raises(SAMLError, match="DOCTYPE"):
        up.parse_idp_metadata(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                              + idp_metadata_xml().split(b"?>", 1)[1])


def test_parse_idp_metadata_requires_a_signing_certificate():
    xml = idp_metadata_xml(signing=False)
    start = xml.index(b"<md:KeyDescriptor><ds")
    xml = xml[:start] + xml[xml.index(b"</md:KeyDescriptor>", start) + 19:]
    with pytest.raises(SAMLError, match="no signing certificate"):
        up.parse_idp_metadata(xml)


def test_sp_metadata_parses_with_pysaml2(config):
    ed = saml2_md.entity_descriptor_from_string(up.sp_metadata(config).decode())
    assert ed.entity_id == SP
    sp = ed.spsso_descriptor[0]
    assert sp.want_assertions_signed == "true" and sp.authn_requests_signed == "false"
    acs = sp.assertion_consumer_service[0]
    assert (acs.binding, acs.location) == (up.BINDING_POST, ACS)
    assert not sp.key_descriptor


def test_sp_metadata_with_signing_cert(config):
    xml = up.sp_metadata(config, signing_cert_pem=IDP_CERT)
    sp = saml2_md.entity_descriptor_from_string(xml.decode()).spsso_descriptor[0]
    assert sp.authn_requests_signed == "true"
    kd = sp.key_descriptor[0]
    assert kd.use == "signing"
    assert kd.key_info.x509_data[0].x509_certificate.text == b64_cert(IDP_CERT)


# --- AuthnRequest ----------------------------------------------------------------------------

def _inflate(url: str) -> tuple[dict[str, list[str]], bytes]:
    query = parse_qs(urlsplit(url).query)
    return query, zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)


def test_authn_request_redirect_binding(config):
    request_id, url = up.authn_request(config, now=NOW, relay_state="st-123")
    assert url.startswith("https://idp.example.com/sso?app=acme&SAMLRequest=")
    query, xml = _inflate(url)
    assert query["app"] == ["acme"] and query["RelayState"] == ["st-123"]
    assert "Signature" not in query
    req = saml2_samlp.authn_request_from_string(xml.decode())
    assert req.id == request_id and request_id[0].isalpha()
    assert req.assertion_consumer_service_url == ACS
    assert req.destination == "https://idp.example.com/sso?app=acme"
    assert req.protocol_binding == up.BINDING_POST
    assert req.issuer.text == SP
    assert req.name_id_policy.allow_create == "true"
    assert sa.parse_instant(req.issue_instant, "t") == NOW


def test_authn_request_ids_are_fresh_and_format_requested():
    cfg = up.SAMLUpstreamConfig(SP, ACS, up.parse_idp_metadata(idp_metadata_xml()),
                                name_id_format=EMAIL)
    first, url = up.authn_request(cfg, now=NOW, relay_state="")
    second, _ = up.authn_request(cfg, now=NOW, relay_state="")
    assert first != second
    query, xml = _inflate(url)
    assert "RelayState" not in query
    assert saml2_samlp.authn_request_from_string(xml.decode()).name_id_policy.format == EMAIL


def test_authn_request_signed_query(config):
    def signer(data: bytes) -> bytes:
        return IDP_KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())

    _, url = up.authn_request(config, now=NOW, relay_state="st", signer=signer)
    query_string = urlsplit(url).query
    signed, _, sig = query_string.partition("&Signature=")
    signed = signed.removeprefix("app=acme&")
    assert signed.startswith("SAMLRequest=")
    assert list(parse_qs(signed)) == ["SAMLRequest", "RelayState", "SigAlg"]
    assert parse_qs(signed)["SigAlg"] == [up.SIG_RSA_SHA256]
    signature = base64.b64decode(parse_qs("s=" + sig)["s"][0])
    IDP_KEY.public_key().verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_authn_request_relay_state_limit(config):
    with pytest.raises(SAMLError, match="RelayState"):
        up.authn_request(config, now=NOW, relay_state="x" * 81)


# --- consume_response: accepted --------------------------------------------------------------

def _check_identity(identity: up.SAMLIdentity) -> None:
    assert identity.issuer == IDP
    assert identity.name_id == "alice@example.com" and identity.name_id_format == EMAIL
    assert identity.attributes["groups"] == ["admins", "staff"]
    assert identity.attributes["urn:oid:0.9.2342.19200300.100.1.3"] == ["alice@example.com"]
    assert identity.assertion_id[0].isalpha()
    assert identity.not_on_or_after == NOW + 300
    assert identity.authn_instant == NOW and identity.session_index == "sess-1"
    assert identity.authn_context_class_ref == sa.AC_PASSWORD_PROTECTED


def test_consume_assertion_signed(config):
    _check_identity(consume(config, make_response()))


def test_consume_response_signed(config):
    _check_identity(consume(config, make_response(sign_assertion=False, sign_response=True)))


def test_consume_both_signed(config):
    _check_identity(consume(config, make_response(sign_response=True)))


def test_consume_friendly_names_and_earliest_expiry(config):
    def mutate(a: etree._Element) -> None:
        a.find(f".//{{{SAML}}}Attribute").set("FriendlyName", "mail")
        scd = a.find(f".//{{{SAML}}}SubjectConfirmationData")
        scd.set("NotOnOrAfter", sa.format_instant(NOW + 120))

    identity = consume(config, make_response(assertion_mutator=mutate))
    assert identity.attributes["mail"] == ["alice@example.com"]
    assert identity.attributes["urn:oid:0.9.2342.19200300.100.1.3"] == ["alice@example.com"]
    assert identity.not_on_or_after == NOW + 120


def test_consume_within_skew_accepted(config):
    assert consume(config, make_response(), now=NOW + 330).name_id == "alice@example.com"
    assert consume(config, make_response(now=NOW + 50)).name_id == "alice@example.com"


def test_consume_line_wrapped_base64(config):
    b64 = make_response()
    wrapped = "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    assert consume(config, wrapped).name_id == "alice@example.com"


# --- consume_response: refused ---------------------------------------------------------------

def test_unsigned_assertion_refused(config):
    with pytest.raises(SAMLError, match="neither the Response nor the Assertion is signed"):
        consume(config, make_response(sign_assertion=False))


def test_signed_by_another_key_refused(config):
    with pytest.raises(SAMLError, match="does not verify"):
        consume(config, make_response(key_pem=OTHER_KEY_PEM, cert_pem=OTHER_CERT))


def test_tampered_after_signing_refused(config):
    def tamper(r: etree._Element) -> None:
        r.find(f".//{{{SAML}}}NameID").text = "admin@example.com"

    with pytest.raises(SAMLError, match="does not verify"):
        consume(config, make_response(after_sign=tamper))


def _evil() -> etree._Element:
    return sa.build_assertion(issuer=IDP, name_id="admin@example.com", name_id_format=EMAIL,
                              audience=SP, now=NOW, recipient=ACS, in_response_to=REQ)


@pytest.mark.parametrize("where", ["before", "after"])
def test_xsw_second_unsigned_assertion_refused(config, where):
    def add(r: etree._Element) -> None:
        signed = r.find(f"{{{SAML}}}Assertion")
        (signed.addprevious if where == "before" else signed.addnext)(_evil())

    with pytest.raises(SAMLError, match="exactly one Assertion"):
        consume(config, make_response(after_sign=add))


def test_xsw_signed_assertion_moved_into_extensions_refused(config):
    def wrap(r: etree._Element) -> None:
        signed = r.find(f"{{{SAML}}}Assertion")
        ext = etree.Element(f"{{{SAMLP}}}Extensions")
        r.find(f"{{{SAML}}}Issuer").addnext(ext)
        ext.append(signed)
        r.append(_evil())

    with pytest.raises(SAMLError, match="exactly one Assertion"):
        consume(config, make_response(after_sign=wrap))


def test_xsw_signed_response_wrapped_by_evil_response_refused(config):
    signed = etree.fromstring(base64.b64decode(make_response(sign_assertion=False,
                                                             sign_response=True)))
    evil = sa.build_response(_evil(), issuer=IDP, destination=ACS, now=NOW, in_response_to=REQ)
    evil.find(f"{{{SAML}}}Issuer").addnext(ext := etree.Element(f"{{{SAMLP}}}Extensions"))
    ext.append(signed)
    with pytest.raises(SAMLError, match="exactly one Assertion"):
        consume(config, base64.b64encode(etree.tostring(evil)).decode())


def test_xsw_signature_object_holding_original_refused(config):
    """Evil assertion at the top carrying the original signed assertion inside ds:Object."""
    def wrap(r: etree._Element) -> None:
        signed = r.find(f"{{{SAML}}}Assertion")
        evil = copy.deepcopy(signed)
        evil.find(f".//{{{SAML}}}NameID").text = "admin@example.com"
        obj = etree.SubElement(evil.find(f"{{{DS}}}Signature"), f"{{{DS}}}Object")
        signed.addprevious(evil)
        obj.append(signed)

    with pytest.raises(SAMLError, match="exactly one Assertion"):
        consume(config, make_response(after_sign=wrap))


def test_duplicate_ids_refused(config):
    def dup(r: etree._Element) -> None:
        assertion_id = r.find(f"{{{SAML}}}Assertion").get("ID")
        ext = etree.Element(f"{{{SAMLP}}}Extensions", ID=assertion_id)
        r.find(f"{{{SAML}}}Issuer").addnext(ext)

    with pytest.raises(SAMLError, match="duplicate ID"):
        consume(config, make_response(after_sign=dup))


def test_wrong_audience_refused(config):
    with pytest.raises(SAMLError, match="audience"):
        consume(config, make_response(audience="https://other-sp.example"))


def test_expired_refused(config):
    with pytest.raises(SAMLError, match="Assertion expired"):
        consume(config, make_response(), now=NOW + 300 + 61)


def test_subject_confirmation_expired_refused(config):
    def mutate(a: etree._Element) -> None:
        scd = a.find(f".//{{{SAML}}}SubjectConfirmationData")
        scd.set("NotOnOrAfter", sa.format_instant(NOW - 120))

    with pytest.raises(SAMLError, match="SubjectConfirmationData expired"):
        consume(config, make_response(assertion_mutator=mutate))


def test_subject_confirmation_without_not_on_or_after_refused(config):
    def drop(a: etree._Element) -> None:
        del a.find(f".//{{{SAML}}}SubjectConfirmationData").attrib["NotOnOrAfter"]

    with pytest.raises(SAMLError, match="SubjectConfirmationData has no NotOnOrAfter"):
        consume(config, make_response(assertion_mutator=drop))


def test_not_before_in_future_refused(config):
    with pytest.raises(SAMLError, match="not yet valid"):
        consume(config, make_response(now=NOW + 120))


def test_missing_audience_restriction_refused(config):
    def drop(a: etree._Element) -> None:
        conditions = a.find(f"{{{SAML}}}Conditions")
        conditions.remove(conditions.find(f"{{{SAML}}}AudienceRestriction"))

    with pytest.raises(SAMLError, match="no AudienceRestriction"):
        consume(config, make_response(assertion_mutator=drop))


def test_unknown_condition_refused(config):
    def add(a: etree._Element) -> None:
        cond = etree.SubElement(a.find(f"{{{SAML}}}Conditions"), f"{{{SAML}}}Condition")
        cond.set("{http://www.w3.org/2001/XMLSchema-instance}type", "x:Custom")

    with pytest.raises(SAMLError, match="unsupported condition"):
        consume(config, make_response(assertion_mutator=add))


def test_ended_session_refused(config):
    def end(a: etree._Element) -> None:
        statement = a.find(f"{{{SAML}}}AuthnStatement")
        statement.set("SessionNotOnOrAfter", sa.format_instant(NOW - 120))

    with pytest.raises(SAMLError, match="session has ended"):
        consume(config, make_response(assertion_mutator=end))


def test_recipient_wrong_refused(config):
    with pytest.raises(SAMLError, match="Recipient"):
        consume(config, make_response(recipient="https://evil.example/acs"))


def test_destination_wrong_refused(config):
    with pytest.raises(SAMLError, match="Destination"):
        consume(config, make_response(response_kwargs={"destination": "https://evil/acs"}))


def test_signed_response_without_destination_refused(config):
    def drop(r: etree._Element) -> None:
        del r.attrib["Destination"]

    with pytest.raises(SAMLError, match="has no Destination"):
        consume(config, make_response(sign_assertion=False, sign_response=True,
                                      response_mutator=drop))


def test_in_response_to_mismatch_refused(config):
    with pytest.raises(SAMLError, match="Response InResponseTo"):
        consume(config, make_response(), expected="idother")


def test_subject_confirmation_in_response_to_mismatch_refused(config):
    with pytest.raises(SAMLError, match="SubjectConfirmationData InResponseTo"):
        consume(config, make_response(in_response_to="idother"))


def test_subject_confirmation_in_response_to_required_when_only_assertion_signed(config):
    with pytest.raises(SAMLError, match="no InResponseTo"):
        consume(config, make_response(in_response_to=None))
    identity = consume(config, make_response(in_response_to=None, sign_response=True))
    assert identity.name_id == "alice@example.com"


def test_unsolicited_response_refused(config):
    with pytest.raises(SAMLError, match="unsolicited"):
        consume(config, make_response(), expected=None)


def test_assertion_issuer_mismatch_refused(config):
    with pytest.raises(SAMLError, match="Issuer is not the configured IdP"):
        consume(config, make_response(issuer="https://evil-idp.example"))


def test_response_issuer_mismatch_refused(config):
    with pytest.raises(SAMLError, match="Issuer is not the configured IdP"):
        consume(config, make_response(response_kwargs={"issuer": "https://evil-idp.example"}))


def test_status_not_success_refused(config):
    denied = "urn:oasis:names:tc:SAML:2.0:status:Responder"
    b64 = base64.b64encode(etree.tostring(sa.build_response(
        None, issuer=IDP, destination=ACS, now=NOW, in_response_to=REQ, status=denied))).decode()
    with pytest.raises(SAMLError, match="status:Responder"):
        consume(config, b64)


def test_xxe_doctype_refused(config):
    xml = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;'
           b"</samlp:Response>")
    with pytest.raises(SAMLError, match="DOCTYPE"):
        consume(config, base64.b64encode(xml).decode())


def test_billion_laughs_refused(config):
    xml = (b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
           b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
           b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&c;'
           b"</samlp:Response>")
    with pytest.raises(SAMLError, match="DOCTYPE"):
        consume(config, base64.b64encode(xml).decode())


def test_sha1_refused_by_default_accepted_with_opt_in(config):
    def sign_sha1(r: etree._Element) -> None:
        a = r.find(f"{{{SAML}}}Assertion")
        sig = xmlsec.template.create(a, xmlsec.constants.TransformExclC14N,
                                     xmlsec.constants.TransformRsaSha1, ns="ds")
        a.find(f"{{{SAML}}}Issuer").addnext(sig)
        ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha1,
                                            uri="#" + a.get("ID"))
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        ctx = xmlsec.SignatureContext()
        ctx.register_id(a, "ID")
        ctx.key = xmlsec.Key.from_memory(IDP_KEY_PEM, xmlsec.constants.KeyDataFormatPem, None)
        ctx.sign(sig)

    b64 = make_response(sign_assertion=False, after_sign=sign_sha1)
    with pytest.raises(SAMLError, match="signature algorithm not allowed"):
        consume(config, b64)
    sha1_config = up.SAMLUpstreamConfig(SP, ACS, config.idp, allow_sha1=True)
    assert consume(sha1_config, b64).name_id == "alice@example.com"


def test_encrypted_assertion_refused(config):
    def encrypt(r: etree._Element) -> None:
        a = r.find(f"{{{SAML}}}Assertion")
        enc = etree.Element(f"{{{SAML}}}EncryptedAssertion")
        etree.SubElement(enc, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
        a.addprevious(enc)
        r.remove(a)

    with pytest.raises(SAMLError, match="EncryptedAssertion is not supported"):
        consume(config, make_response(after_sign=encrypt))


def test_missing_name_id_refused(config):
    def drop(a: etree._Element) -> None:
        name_id = a.find(f".//{{{SAML}}}NameID")
        name_id.getparent().remove(name_id)

    with pytest.raises(SAMLError, match="no NameID"):
        consume(config, make_response(assertion_mutator=drop))


def test_two_bearer_confirmations_refused(config):
    def dup(a: etree._Element) -> None:
        sc = a.find(f".//{{{SAML}}}SubjectConfirmation")
        sc.addnext(copy.deepcopy(sc))

    with pytest.raises(SAMLError, match="exactly one bearer"):
        consume(config, make_response(assertion_mutator=dup))


def test_not_a_response_and_bad_encoding_refused(config):
    with pytest.raises(SAMLError, match=r"not a SAML 2\.0 Response"):
        consume(config, base64.b64encode(b"<x/>").decode())
    with pytest.raises(SAMLError, match="base64"):
        consume(config, "!!!not base64!!!")
    with pytest.raises(SAMLError, match="too large"):
        consume(config, "A" * (up.MAX_RESPONSE_B64 + 4))
