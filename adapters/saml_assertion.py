"""SAML 2.0 XML security in process with python-xmlsec: hardened parsing, enveloped signatures
and assertion/response building.

References: SAML 2.0 Core §1.3.3 (xs:dateTime in UTC), §1.3.4 (IDs), §2.2 (Issuer, NameID),
§2.3.3 (Assertion), §2.4 (Subject, SubjectConfirmation), §2.5 (Conditions, AudienceRestriction),
§2.7.2 (AuthnStatement), §2.7.3 (AttributeStatement), §3.2.2 (Response, Status),
§5.4 (XML Signature profile: enveloped, exclusive c14n, Reference URI="#ID").

Signature-wrapping defence (``verify``): one Signature that is a direct child of the element
asked about, exactly one Reference whose URI names that element's ``ID``, only the ID of that
element registered with xmlsec, document-wide unique IDs, an algorithm allow-list; the verified
element is returned and is the only thing a caller may consume. Keys come only from the caller's
trusted certificates; ``KeyInfo`` in the document is ignored.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
NAMEID_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
AC_PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

MAX_XML_BYTES = 1024 * 1024

_T = xmlsec.constants
_SIGN_ALGS = {"rsa-sha256": _T.TransformRsaSha256, "ecdsa-sha256": _T.TransformEcdsaSha256}
_STRONG_SIG_T = (_T.TransformRsaSha256, _T.TransformRsaSha384, _T.TransformRsaSha512,
                 _T.TransformEcdsaSha256, _T.TransformEcdsaSha384, _T.TransformEcdsaSha512)
_SHA1_SIG_T = (_T.TransformRsaSha1, _T.TransformEcdsaSha1)
_STRONG_DIGEST_T = (_T.TransformSha256, _T.TransformSha384, _T.TransformSha512)
_STRONG_SIG = {t.href for t in _STRONG_SIG_T}
_SHA1_SIG = {t.href for t in _SHA1_SIG_T}
_STRONG_DIGEST = {t.href for t in _STRONG_DIGEST_T}
_SHA1_DIGEST = {_T.TransformSha1.href}
_EXC_C14N = _T.TransformExclC14N.href
_ENVELOPED = _T.TransformEnveloped.href
_ID_ATTRS = ("ID", "Id", "id", "{http://www.w3.org/XML/1998/namespace}id")


class SAMLError(Exception):
    """A SAML message that is malformed, badly signed or not acceptable; the message says why."""


# --- parsing -------------------------------------------------------------------------------

def _precheck(data: bytes) -> None:
    """Cheap byte-level refusal before libxml2 sees the document."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise SAMLError("only UTF-8 XML is accepted")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SAMLError("DOCTYPE/ENTITY declarations are refused")


def parse_xml(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse untrusted XML: no DOCTYPE/entities, no network, no huge trees, comments dropped
    (so text cannot be split by a comment, cf. CVE-2017-11427; exc-c14n ignores them anyway)."""
    if not isinstance(data, bytes) or not data:
        raise SAMLError("empty XML document")
    if len(data) > max_bytes:
        raise SAMLError("XML document too large")
    _precheck(data)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             load_dtd=False, dtd_validation=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SAMLError("malformed XML") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise SAMLError("DOCTYPE declarations are refused")
    return root


def format_instant(when: float) -> str:
    """xs:dateTime in UTC to the second (Core §1.3.3). An assertion names three or four
    instants, the same seconds across the assertions of that second: the text of the last few
    seconds is kept (strftime cost ~3 us a call, ~2 % of a SAML assertion out)."""
    return _format_second(int(when))


@functools.lru_cache(maxsize=64)
def _format_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str | None, what: str) -> float:
    """xs:dateTime (Core §1.3.3) to epoch seconds; a value without a zone is taken as UTC."""
    if not value:
        raise SAMLError(f"{what} missing")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise SAMLError(f"{what} is not a valid dateTime") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def new_id() -> str:
    """A random xs:ID (Core §1.3.4) that starts with a letter."""
    return "id" + secrets.token_hex(20)


# --- signing -------------------------------------------------------------------------------

class SigningKey:
    """A private key and its certificate loaded once into xmlsec, reused for every signature."""

    def __init__(self, key_pem: bytes, cert_pem: bytes, *, alg: str = "rsa-sha256") -> None:
        if alg not in _SIGN_ALGS:
            raise SAMLError(f"unsupported signing algorithm {alg!r}")
        try:
            self.key = xmlsec.Key.from_memory(key_pem, _T.KeyDataFormatPem, None)
            self.key.load_cert_from_memory(cert_pem, _T.KeyDataFormatCertPem)
        except xmlsec.Error as exc:
            raise SAMLError("cannot load signing key or certificate") from exc
        self.alg = alg

    def sign(self, element: etree._Element) -> etree._Element:
        """Enveloped signature over ``element`` (Core §5.4), placed after its saml:Issuer."""
        ref_id = element.get("ID")
        if not ref_id:
            raise SAMLError("element to sign has no ID")
        for old in element.findall(f"{{{DS}}}Signature"):
            element.remove(old)
        sig = xmlsec.template.create(element, _T.TransformExclC14N, _SIGN_ALGS[self.alg], ns="ds")
        issuer = element.find(f"{{{SAML}}}Issuer")
        if issuer is not None:
            issuer.addnext(sig)
        else:
            element.insert(0, sig)
        ref = xmlsec.template.add_reference(sig, _T.TransformSha256, uri="#" + ref_id)
        xmlsec.template.add_transform(ref, _T.TransformEnveloped)
        xmlsec.template.add_transform(ref, _T.TransformExclC14N)
        key_info = xmlsec.template.ensure_key_info(sig)
        xmlsec.template.x509_data_add_certificate(xmlsec.template.add_x509_data(key_info))
        ctx = xmlsec.SignatureContext()
        ctx.register_id(element, "ID")
        ctx.key = self.key
        try:
            ctx.sign(sig)
        except xmlsec.Error as exc:
            raise SAMLError("signing failed") from exc
        return element


def sign(element: etree._Element, key_pem: bytes, cert_pem: bytes, *,
         alg: str = "rsa-sha256") -> etree._Element:
    return SigningKey(key_pem, cert_pem, alg=alg).sign(element)


# --- verification --------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _cert_key(cert_pem: bytes) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(cert_pem, _T.KeyDataFormatCertPem, None)
    except xmlsec.Error as exc:
        raise SAMLError("cannot load a trusted certificate") from exc


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise SAMLError(f"signature must have exactly one {what}")
    return found[0]


def _check_signed_info(sig: etree._Element, ref_id: str, allow_sha1: bool) -> None:
    signed_info = _one(sig, f"{{{DS}}}SignedInfo", "SignedInfo")
    c14n = _one(signed_info, f"{{{DS}}}CanonicalizationMethod", "CanonicalizationMethod")
    if c14n.get("Algorithm") != _EXC_C14N:
        raise SAMLError("signature canonicalization must be exclusive c14n")
    method = _one(signed_info, f"{{{DS}}}SignatureMethod", "SignatureMethod").get("Algorithm")
    if method not in _STRONG_SIG and not (allow_sha1 and method in _SHA1_SIG):
        raise SAMLError("signature algorithm not allowed")
    ref = _one(signed_info, f"{{{DS}}}Reference", "Reference")
    if ref.get("URI") != "#" + ref_id:
        raise SAMLError("signature reference does not point to the signed element")
    transforms = ref.find(f"{{{DS}}}Transforms")
    algs = [t.get("Algorithm") for t in (transforms if transforms is not None else ())]
    if _ENVELOPED not in algs or any(a not in (_ENVELOPED, _EXC_C14N) for a in algs):
        raise SAMLError("signature transforms must be enveloped-signature and exclusive c14n")
    digest = _one(ref, f"{{{DS}}}DigestMethod", "DigestMethod").get("Algorithm")
    if digest not in _STRONG_DIGEST and not (allow_sha1 and digest in _SHA1_DIGEST):
        raise SAMLError("digest algorithm not allowed")


def _check_unique_ids(element: etree._Element, ref_id: str) -> None:
    seen: set[str] = set()
    for node in element.getroottree().iter(etree.Element):
        for attr in _ID_ATTRS:
            value = node.get(attr)
            if value is None:
                continue
            if value in seen or (value == ref_id and node is not element):
                raise SAMLError("duplicate ID in document")
            seen.add(value)


def _restrict(ctx: xmlsec.SignatureContext, allow_sha1: bool) -> None:
    """Defence in depth: xmlsec itself refuses any transform outside the allow-list."""
    for t in (_T.TransformEnveloped, _T.TransformExclC14N, *_STRONG_DIGEST_T,
              *((_T.TransformSha1,) if allow_sha1 else ())):
        ctx.enable_reference_transform(t)
    for t in (_T.TransformExclC14N, *_STRONG_SIG_T, *(_SHA1_SIG_T if allow_sha1 else ())):
        ctx.enable_signature_transform(t)


def verify(element_or_doc: etree._Element | etree._ElementTree, certs: Sequence[bytes], *,
           allow_sha1: bool = False) -> etree._Element:
    """Verify the enveloped signature of ``element_or_doc`` (its direct ds:Signature child) with
    one of ``certs`` and return the element the signature covers. Consume only that element."""
    element = (element_or_doc.getroot() if isinstance(element_or_doc, etree._ElementTree)
               else element_or_doc)
    if not certs:
        raise SAMLError("no trusted certificates configured")
    sigs = element.findall(f"{{{DS}}}Signature")
    if not sigs:
        raise SAMLError(f"{etree.QName(element).localname} is not signed")
    if len(sigs) > 1:
        raise SAMLError("more than one signature on the element")
    sig = sigs[0]
    ref_id = element.get("ID")
    if not ref_id:
        raise SAMLError("signed element has no ID")
    _check_signed_info(sig, ref_id, allow_sha1)
    _check_unique_ids(element, ref_id)
    for cert in certs:
        key = _cert_key(bytes(cert))
        ctx = xmlsec.SignatureContext()
        ctx.register_id(element, "ID")
        ctx.key = key
        _restrict(ctx, allow_sha1)
        try:
            ctx.verify(sig)
        except xmlsec.Error:
            continue
        return element
    raise SAMLError("signature does not verify with any trusted certificate")


# --- building (IdP role) -------------------------------------------------------------------

def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None,
         **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: v for k, v in attrs.items() if v})
    if text is not None:
        node.text = text
    return node


def build_assertion(*, issuer: str, name_id: str, name_id_format: str, audience: str,
                    now: float, lifetime: int = 300, recipient: str | None = None,
                    in_response_to: str | None = None, session_index: str | None = None,
                    authn_instant: float | None = None,
                    authn_context_class_ref: str = AC_PASSWORD_PROTECTED,
                    attributes: Mapping[str, Sequence[str]] | None = None,
                    attribute_name_format: str = ATTRNAME_BASIC,
                    assertion_id: str | None = None) -> etree._Element:
    """An unsigned saml:Assertion (Core §2.3.3) for Web SSO (Profiles §4.1.4.2); sign with
    ``SigningKey.sign`` before or after wrapping it with ``build_response``."""
    instant, expiry = format_instant(now), format_instant(now + lifetime)
    root = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml": SAML})
    root.set("ID", assertion_id or new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", instant)
    _sub(root, SAML, "Issuer", issuer)
    subject = _sub(root, SAML, "Subject")
    _sub(subject, SAML, "NameID", name_id, Format=name_id_format)
    confirmation = _sub(subject, SAML, "SubjectConfirmation", Method=BEARER)
    _sub(confirmation, SAML, "SubjectConfirmationData", NotOnOrAfter=expiry,
         Recipient=recipient or "", InResponseTo=in_response_to or "")
    conditions = _sub(root, SAML, "Conditions", NotBefore=instant, NotOnOrAfter=expiry)
    _sub(_sub(conditions, SAML, "AudienceRestriction"), SAML, "Audience", audience)
    authn = _sub(root, SAML, "AuthnStatement",
                 AuthnInstant=format_instant(now if authn_instant is None else authn_instant),
                 SessionIndex=session_index or "")
    _sub(_sub(authn, SAML, "AuthnContext"), SAML, "AuthnContextClassRef",
         authn_context_class_ref)
    if attributes:
        statement = _sub(root, SAML, "AttributeStatement")
        for name, values in attributes.items():
            attr = _sub(statement, SAML, "Attribute", Name=name, NameFormat=attribute_name_format)
            for value in values:
                node = etree.SubElement(attr, f"{{{SAML}}}AttributeValue", nsmap={"xs": XS,
                                                                                   "xsi": XSI})
                node.set(f"{{{XSI}}}type", "xs:string")
                node.text = value
    return root


def build_response(assertion: etree._Element | None, *, issuer: str, destination: str,
                   now: float, in_response_to: str | None = None,
                   status: str = STATUS_SUCCESS, response_id: str | None = None,
                   ) -> etree._Element:
    """A samlp:Response (Core §3.2.2, §3.3.3) carrying ``assertion`` (moved into it)."""
    root = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", response_id or new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", format_instant(now))
    root.set("Destination", destination)
    if in_response_to:
        root.set("InResponseTo", in_response_to)
    _sub(root, SAML, "Issuer", issuer)
    _sub(_sub(root, SAMLP, "Status"), SAMLP, "StatusCode", Value=status)
    if assertion is not None:
        root.append(assertion)
    return root


def pem_from_b64(text: str, what: str) -> bytes:
    """A metadata ``X509Certificate`` (base64 DER) as PEM; ``what`` names the document."""
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as exc:
        raise SAMLError(f"{what} has an unreadable X509Certificate") from exc
    return cert.public_bytes(serialization.Encoding.PEM)
