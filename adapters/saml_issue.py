"""Issuing SAML 2.0 as an IdP with a signer that is not ours: the enveloped XML Signature is
built here, the signature octets come from an injected ``sign(bytes) -> bytes`` (the tenant's
key service, which never hands out a private key).

Signature (SAML Core §5.4, XML Signature 1.1 §3.1.1 "Reference generation", §3.1.2
"Signature generation"): exclusive c14n (no comments) of the element without its Signature is
what the enveloped-signature transform gives a verifier, so its SHA-256 is the DigestValue;
SignedInfo (exclusive c14n, RSA-SHA256 or ECDSA-SHA256, one Reference to ``#ID`` with the
enveloped and exc-c14n transforms) is placed after the element's ``saml:Issuer``, canonicalized
where it stands, and signed; SignatureValue is base64 of the signer's octets: PKCS#1 v1.5 for
RSA (RFC 6931 §2.3.2), r||s for ECDSA (XML Signature 1.1 §6.4.3, as JWS ES256 has it); KeyInfo
carries the key's certificate, outside SignedInfo (a verifier trusts the metadata's keys).

Also here: NameID values per format (Core §8.3.7 persistent: pairwise, opaque, stable per
(SP, user); §8.3.2 emailAddress; §8.3.8 transient), error Responses (Core §3.2.2.2 status
codes) and IdP metadata (Metadata §2.4.3 IDPSSODescriptor, §2.4.1.1 KeyDescriptor).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapters.saml_assertion import (
    AC_PASSWORD_PROTECTED,
    DS,
    SAML,
    SAMLP,
    STATUS_SUCCESS,
    SAMLError,
    build_assertion,
    build_response,
)

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SIGNATURE_METHODS = {"RS256": RSA_SHA256, "ES256": ECDSA_SHA256}
NAMEID_FORMATS = {
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "emailAddress": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
STATUS_INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"


@dataclass(frozen=True)
class IdPKey:
    """What signs for the IdP: the JOSE name of the algorithm (ES256 or RS256), the key's
    certificate (PEM) and a function that signs octets with the private key, wherever it is."""

    alg: str
    certificate: str
    sign: Callable[[bytes], bytes]


def c14n(element: etree._Element) -> bytes:
    """Exclusive XML canonicalization without comments of ``element``'s subtree."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


@functools.lru_cache(maxsize=256)
def certificate_b64(pem: str | bytes) -> str:
    """The base64 DER of a PEM certificate, as ds:X509Certificate holds it."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise SAMLError("unreadable signing certificate") from exc
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _ds(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{DS}}}{tag}", attrs)


def sign_enveloped(element: etree._Element, key: IdPKey) -> etree._Element:
    """Sign ``element`` (an Assertion, a Response) in place with an enveloped signature."""
    method = SIGNATURE_METHODS.get(key.alg)
    if method is None:
        raise SAMLError(f"a {key.alg} key cannot sign SAML (ES256 or RS256 only)")
    ref_id = element.get("ID")
    if not ref_id:
        raise SAMLError("element to sign has no ID")
    for old in element.findall(f"{{{DS}}}Signature"):
        element.remove(old)
    digest = base64.b64encode(hashlib.sha256(c14n(element)).digest()).decode()
    signature = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", Algorithm=EXC_C14N)
    _ds(signed_info, "SignatureMethod", Algorithm=method)
    reference = _ds(signed_info, "Reference", URI="#" + ref_id)
    transforms = _ds(reference, "Transforms")
    _ds(transforms, "Transform", Algorithm=ENVELOPED)
    _ds(transforms, "Transform", Algorithm=EXC_C14N)
    _ds(reference, "DigestMethod", Algorithm=SHA256)
    _ds(reference, "DigestValue").text = digest
    value = _ds(signature, "SignatureValue")
    _ds(_ds(_ds(signature, "KeyInfo"), "X509Data"), "X509Certificate").text = (
        certificate_b64(key.certificate))
    issuer = element.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    value.text = base64.b64encode(key.sign(c14n(signed_info))).decode()
    return element


# --- NameID (Core §8.3) ----------------------------------------------------------------------

def persistent_name_id(secret: bytes, sp_entity_id: str, user_id: str) -> str:
    """Pairwise and opaque: HMAC-SHA256 under a deployment secret of (SP, user); the same
    user gets the same value at one SP and unrelated values at two."""
    mac = hmac.new(secret, f"{sp_entity_id}\x00{user_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def transient_name_id() -> str:
    return "_" + secrets.token_hex(20)


@dataclass(frozen=True)
class Subject:
    name_id: str
    name_id_format: str  # a URI of NAMEID_FORMATS
    attributes: Mapping[str, Sequence[str]]
    authn_instant: float | None = None
    authn_context_class_ref: str = AC_PASSWORD_PROTECTED
    session_index: str | None = None


def issue_assertion(key: IdPKey, subject: Subject, *, issuer: str, audience: str, now: float,
                    lifetime: int, recipient: str, in_response_to: str | None = None,
                    ) -> etree._Element:
    """A signed Assertion (Core §2.3.3) with a bearer SubjectConfirmation for ``recipient``
    (Profiles §4.1.4.2), Conditions for ``audience``, AuthnStatement and AttributeStatement."""
    assertion = build_assertion(
        issuer=issuer, name_id=subject.name_id, name_id_format=subject.name_id_format,
        audience=audience, now=now, lifetime=lifetime, recipient=recipient,
        in_response_to=in_response_to, session_index=subject.session_index,
        authn_instant=subject.authn_instant,
        authn_context_class_ref=subject.authn_context_class_ref,
        attributes={k: list(v) for k, v in subject.attributes.items() if v})
    name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    if name_id is not None and subject.name_id_format == NAMEID_FORMATS["persistent"]:
        name_id.set("NameQualifier", issuer)
        name_id.set("SPNameQualifier", audience)
    return sign_enveloped(assertion, key)


def issue_response(key: IdPKey, assertion: etree._Element | None, *, issuer: str,
                   destination: str, now: float, in_response_to: str | None,
                   status: str = STATUS_SUCCESS, sub_status: str | None = None,
                   message: str | None = None) -> bytes:
    """A signed Response (Core §3.2.2) for the HTTP-POST binding (Bindings §3.5): around a
    signed Assertion, or an error status (top-level ``status``, second-level ``sub_status``)."""
    response = build_response(assertion, issuer=issuer, destination=destination, now=now,
                              in_response_to=in_response_to, status=status)
    status_el = response.find(f"{{{SAMLP}}}Status")
    assert status_el is not None
    if sub_status:
        code = status_el.find(f"{{{SAMLP}}}StatusCode")
        assert code is not None
        etree.SubElement(code, f"{{{SAMLP}}}StatusCode", Value=sub_status)
    if message:
        etree.SubElement(status_el, f"{{{SAMLP}}}StatusMessage").text = message[:300]
    sign_enveloped(response, key)
    return etree.tostring(response, xml_declaration=True, encoding="UTF-8")


def assertion_bytes(assertion: etree._Element) -> bytes:
    return etree.tostring(assertion, encoding="UTF-8", xml_declaration=False)


# --- metadata --------------------------------------------------------------------------------

def idp_metadata(*, entity_id: str, sso_url: str, certificates: Sequence[str],
                 want_authn_requests_signed: bool = False,
                 name_id_formats: Sequence[str] = tuple(NAMEID_FORMATS.values())) -> bytes:
    """The IdP's EntityDescriptor: one signing KeyDescriptor per certificate (during a key
    rotation the active and the next key), NameIDFormats, SSO over HTTP-Redirect and POST."""
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
    root.set("entityID", entity_id)
    idp = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor", {
        "protocolSupportEnumeration": PROTOCOL,
        "WantAuthnRequestsSigned": "true" if want_authn_requests_signed else "false"})
    for pem in certificates:
        descriptor = etree.SubElement(idp, f"{{{MD}}}KeyDescriptor", use="signing")
        data = _ds(_ds(descriptor, "KeyInfo"), "X509Data")
        _ds(data, "X509Certificate").text = certificate_b64(pem)
    for fmt in name_id_formats:
        etree.SubElement(idp, f"{{{MD}}}NameIDFormat").text = fmt
    for binding in (BINDING_REDIRECT, BINDING_POST):
        etree.SubElement(idp, f"{{{MD}}}SingleSignOnService", Binding=binding, Location=sso_url)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
