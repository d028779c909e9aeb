"""tessera as a SAML 2.0 service provider to an enterprise IdP (one SP per tenant and upstream).

References: SAML 2.0 Metadata §2.4.3 (IDPSSODescriptor), §2.4.4 (SPSSODescriptor); Core §3.4.1
(AuthnRequest), §3.2.2 (Response, Status), §2.3.3-§2.7 (Assertion content), §2.5.1.4
(AudienceRestriction); Bindings §3.4 (HTTP-Redirect, DEFLATE encoding §3.4.4.1, RelayState
§3.4.3), §3.5 (HTTP-POST); Profiles §4.1.4.2-§4.1.4.3 (Web Browser SSO response rules).

Only SP-initiated SSO is supported; EncryptedAssertion/EncryptedID are refused. A bare signed
Assertion (RFC 7522 SAML bearer grant, RFC 8693 ``saml2`` subject token) goes through
``consume_assertion`` with the same content checks. Signatures are checked by
``adapters.saml_assertion.verify`` and only the element it returns is consumed.
Assertion-ID replay (one use until ``SAMLIdentity.not_on_or_after``) is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapters.saml_assertion import (
    BEARER,
    DS,
    NAMEID_ENTITY,
    SAML,
    SAMLP,
    STATUS_SUCCESS,
    SAMLError,
    format_instant,
    new_id,
    parse_instant,
    parse_xml,
    pem_from_b64,
    verify,
)

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
MAX_RESPONSE_B64 = 256 * 1024
MAX_RELAY_STATE = 80  # Bindings §3.4.3
_URLSAFE = str.maketrans("-_", "+/")


@dataclass(frozen=True)
class IdPMetadata:
    entity_id: str
    sso_redirect_url: str
    sso_post_url: str | None
    certs: tuple[bytes, ...]


@dataclass(frozen=True)
class SAMLUpstreamConfig:
    sp_entity_id: str
    acs_url: str
    idp: IdPMetadata
    allow_sha1: bool = False
    name_id_format: str | None = None
    skew: int = 60


@dataclass(frozen=True)
class SAMLIdentity:
    issuer: str
    name_id: str
    name_id_format: str | None
    attributes: dict[str, list[str]]
    assertion_id: str
    not_on_or_after: float
    authn_instant: float | None
    authn_context_class_ref: str | None
    session_index: str | None


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _text(node: etree._Element, what: str) -> str:
    if len(node):
        raise SAMLError(f"{what} must be plain text")
    return (node.text or "").strip()


def _idp_pem(text: str) -> bytes:
    return pem_from_b64(text, "IdP metadata")


# --- metadata --------------------------------------------------------------------------------

def parse_idp_metadata(xml: bytes) -> IdPMetadata:
    """The entity ID, Redirect/POST SSO endpoints and signing certificates of an IdP."""
    root = parse_xml(xml)
    if root.tag == _q(MD, "EntitiesDescriptor"):
        entities = [e for e in root.iter(_q(MD, "EntityDescriptor"))
                    if e.find(_q(MD, "IDPSSODescriptor")) is not None]
        if len(entities) != 1:
            raise SAMLError("metadata must describe exactly one IdP entity")
        root = entities[0]
    if root.tag != _q(MD, "EntityDescriptor"):
        raise SAMLError("metadata root is not an EntityDescriptor")
    entity_id = (root.get("entityID") or "").strip()
    if not entity_id:
        raise SAMLError("metadata has no entityID")
    idps = [d for d in root.findall(_q(MD, "IDPSSODescriptor"))
            if PROTOCOL in (d.get("protocolSupportEnumeration") or "").split()]
    if not idps:
        raise SAMLError("metadata has no SAML 2.0 IDPSSODescriptor")
    endpoints: dict[str, str] = {}
    for sso in idps[0].findall(_q(MD, "SingleSignOnService")):
        binding, location = sso.get("Binding"), (sso.get("Location") or "").strip()
        if binding and location and urlsplit(location).scheme in ("https", "http"):
            endpoints.setdefault(binding, location)
    if BINDING_REDIRECT not in endpoints:
        raise SAMLError("metadata has no HTTP-Redirect SingleSignOnService")
    certs = tuple(
        _idp_pem(_text(node, "X509Certificate"))
        for kd in idps[0].findall(_q(MD, "KeyDescriptor")) if kd.get("use") in (None, "signing")
        for node in kd.iter(_q(DS, "X509Certificate"))
    )
    if not certs:
        raise SAMLError("metadata has no signing certificate")
    return IdPMetadata(entity_id, endpoints[BINDING_REDIRECT], endpoints.get(BINDING_POST), certs)


def sp_metadata(config: SAMLUpstreamConfig, *, signing_cert_pem: bytes | None = None) -> bytes:
    """Our SP EntityDescriptor (Metadata §2.4.4): POST ACS, signed assertions wanted."""
    root = etree.Element(_q(MD, "EntityDescriptor"), nsmap={"md": MD, "ds": DS})
    root.set("entityID", config.sp_entity_id)
    sp = etree.SubElement(root, _q(MD, "SPSSODescriptor"), {
        "protocolSupportEnumeration": PROTOCOL,
        "AuthnRequestsSigned": "true" if signing_cert_pem else "false",
        "WantAssertionsSigned": "true",
    })
    if signing_cert_pem:
        try:
            der = x509.load_pem_x509_certificate(signing_cert_pem).public_bytes(
                serialization.Encoding.DER)
        except ValueError as exc:
            raise SAMLError("unreadable SP signing certificate") from exc
        kd = etree.SubElement(sp, _q(MD, "KeyDescriptor"), use="signing")
        data = etree.SubElement(etree.SubElement(kd, _q(DS, "KeyInfo")), _q(DS, "X509Data"))
        etree.SubElement(data, _q(DS, "X509Certificate")).text = base64.b64encode(der).decode()
    if config.name_id_format:
        etree.SubElement(sp, _q(MD, "NameIDFormat")).text = config.name_id_format
    etree.SubElement(sp, _q(MD, "AssertionConsumerService"), Binding=BINDING_POST,
                     Location=config.acs_url, index="0", isDefault="true")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- AuthnRequest over HTTP-Redirect ---------------------------------------------------------

def authn_request(config: SAMLUpstreamConfig, *, now: float, relay_state: str,
                  signer: Callable[[bytes], bytes] | None = None,
                  sig_alg: str = SIG_RSA_SHA256) -> tuple[str, str]:
    """Build an AuthnRequest (Core §3.4.1) and its HTTP-Redirect URL (Bindings §3.4.4.1).
    ``signer``, when given, signs the query string octets with ``sig_alg``."""
    if len(relay_state.encode()) > MAX_RELAY_STATE:
        raise SAMLError("RelayState longer than 80 bytes")
    request_id = new_id()
    root = etree.Element(_q(SAMLP, "AuthnRequest"), nsmap={"samlp": SAMLP, "saml": SAML})
    for name, value in (("ID", request_id), ("Version", "2.0"),
                        ("IssueInstant", format_instant(now)),
                        ("Destination", config.idp.sso_redirect_url),
                        ("AssertionConsumerServiceURL", config.acs_url),
                        ("ProtocolBinding", BINDING_POST)):
        root.set(name, value)
    etree.SubElement(root, _q(SAML, "Issuer")).text = config.sp_entity_id
    policy = etree.SubElement(root, _q(SAMLP, "NameIDPolicy"), AllowCreate="true")
    if config.name_id_format:
        policy.set("Format", config.name_id_format)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(etree.tostring(root)) + compressor.flush()
    params = [("SAMLRequest", base64.b64encode(deflated).decode())]
    if relay_state:
        params.append(("RelayState", relay_state))
    query = urlencode(params)
    if signer is not None:
        query += "&" + urlencode([("SigAlg", sig_alg)])
        query += "&" + urlencode([("Signature", base64.b64encode(signer(query.encode())))])
    parts = urlsplit(config.idp.sso_redirect_url)
    full = f"{parts.query}&{query}" if parts.query else query
    return request_id, urlunsplit((parts.scheme, parts.netloc, parts.path, full, ""))


# --- Response processing (Profiles §4.1.4.3) -------------------------------------------------

def _decode(saml_response_b64: str) -> bytes:
    compact = "".join(saml_response_b64.split())
    if not compact or len(compact) > MAX_RESPONSE_B64:
        raise SAMLError("SAMLResponse empty or too large")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SAMLError("SAMLResponse is not valid base64") from exc


def _check_issuer(parent: etree._Element, expected: str, *, required: bool) -> None:
    issuer = parent.find(_q(SAML, "Issuer"))
    if issuer is None:
        if required:
            raise SAMLError("Assertion has no Issuer")
        return
    if issuer.get("Format") not in (None, NAMEID_ENTITY) or _text(issuer, "Issuer") != expected:
        raise SAMLError("Issuer is not the configured IdP")


def _check_status(root: etree._Element) -> None:
    code = root.find(f"{_q(SAMLP, 'Status')}/{_q(SAMLP, 'StatusCode')}")
    value = None if code is None else code.get("Value")
    if value != STATUS_SUCCESS:
        sub = None if code is None else code.find(_q(SAMLP, "StatusCode"))
        detail = "" if sub is None else f" ({(sub.get('Value') or '')[:200]})"
        raise SAMLError(f"IdP returned status {(value or 'missing')[:200]}{detail}")


def _check_window(node: etree._Element, now: float, skew: int, what: str) -> float | None:
    """NotBefore/NotOnOrAfter with ``skew``; returns NotOnOrAfter as epoch seconds (or None)."""
    before, after = node.get("NotBefore"), node.get("NotOnOrAfter")
    if before is not None and now + skew < parse_instant(before, f"{what} NotBefore"):
        raise SAMLError(f"{what} not yet valid (NotBefore in the future)")
    if after is None:
        return None
    expiry = parse_instant(after, f"{what} NotOnOrAfter")
    if now - skew >= expiry:
        raise SAMLError(f"{what} expired (NotOnOrAfter passed)")
    return expiry


def _check_conditions(assertion: etree._Element, audiences: Sequence[str], now: float,
                      skew: int) -> float | None:
    found = assertion.findall(_q(SAML, "Conditions"))
    if len(found) != 1:
        raise SAMLError("Assertion must have exactly one Conditions element")
    conditions = found[0]
    expiry = _check_window(conditions, now, skew, "Assertion")
    known = {_q(SAML, "AudienceRestriction"), _q(SAML, "OneTimeUse"), _q(SAML, "ProxyRestriction")}
    if any(child.tag not in known for child in conditions.iterchildren(etree.Element)):
        raise SAMLError("Assertion has an unsupported condition")
    restrictions = conditions.findall(_q(SAML, "AudienceRestriction"))
    if not restrictions:
        raise SAMLError("Assertion has no AudienceRestriction")
    for restriction in restrictions:  # Core §2.5.1.4: every restriction must be met
        listed = [_text(a, "Audience") for a in restriction.findall(_q(SAML, "Audience"))]
        if not any(a in audiences for a in listed):
            raise SAMLError("Assertion audience does not include this SP")
    return expiry


def _check_subject(assertion: etree._Element, recipients: Sequence[str], now: float, skew: int,
                   in_response_to: str | None, response_signed: bool,
                   ) -> tuple[str, str | None, float]:
    """NameID and the one bearer SubjectConfirmation; ``in_response_to`` None: a bare
    assertion (RFC 7522), no request to answer, so InResponseTo is not checked."""
    subject = assertion.find(_q(SAML, "Subject"))
    if subject is None:
        raise SAMLError("Assertion has no Subject")
    if subject.find(_q(SAML, "EncryptedID")) is not None:
        raise SAMLError("EncryptedID is not supported")
    name_id = subject.find(_q(SAML, "NameID"))
    if name_id is None or not _text(name_id, "NameID"):
        raise SAMLError("Assertion has no NameID")
    bearers = [sc for sc in subject.findall(_q(SAML, "SubjectConfirmation"))
               if sc.get("Method") == BEARER]
    if len(bearers) != 1:
        raise SAMLError("Assertion must have exactly one bearer SubjectConfirmation")
    data = bearers[0].find(_q(SAML, "SubjectConfirmationData"))
    if data is None:
        raise SAMLError("bearer SubjectConfirmation has no SubjectConfirmationData")
    if data.get("Recipient") not in recipients:
        raise SAMLError("SubjectConfirmationData Recipient is not our "
                        + ("ACS URL" if in_response_to is not None else "token endpoint"))
    expiry = _check_window(data, now, skew, "SubjectConfirmationData")
    if expiry is None:
        raise SAMLError("SubjectConfirmationData has no NotOnOrAfter")
    if in_response_to is None:
        return _text(name_id, "NameID"), name_id.get("Format"), expiry
    confirmed = data.get("InResponseTo")
    if confirmed is None and not response_signed:
        raise SAMLError("SubjectConfirmationData has no InResponseTo")
    if confirmed is not None and confirmed != in_response_to:
        raise SAMLError("SubjectConfirmationData InResponseTo does not match the request")
    return _text(name_id, "NameID"), name_id.get("Format"), expiry


def _attributes(assertion: etree._Element) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for attr in assertion.iterfind(f"{_q(SAML, 'AttributeStatement')}/{_q(SAML, 'Attribute')}"):
        values = [("".join(v.itertext())).strip()
                  for v in attr.findall(_q(SAML, "AttributeValue"))
                  if v.get(_q("http://www.w3.org/2001/XMLSchema-instance", "nil")) != "true"]
        for key in dict.fromkeys(k for k in (attr.get("Name"), attr.get("FriendlyName")) if k):
            result.setdefault(key, []).extend(values)
    return result


def _authn(assertion: etree._Element, now: float,
           skew: int) -> tuple[float | None, str | None, str | None]:
    statement = assertion.find(_q(SAML, "AuthnStatement"))
    if statement is None:
        return None, None, None
    ends = statement.get("SessionNotOnOrAfter")
    if ends is not None and now - skew >= parse_instant(ends, "SessionNotOnOrAfter"):
        raise SAMLError("AuthnStatement session has ended")
    instant = statement.get("AuthnInstant")
    ref = statement.find(f"{_q(SAML, 'AuthnContext')}/{_q(SAML, 'AuthnContextClassRef')}")
    return (parse_instant(instant, "AuthnInstant") if instant else None,
            None if ref is None else _text(ref, "AuthnContextClassRef") or None,
            statement.get("SessionIndex"))


def consume_response(config: SAMLUpstreamConfig, saml_response_b64: str, *,
                     expected_in_response_to: str | None, now: float) -> SAMLIdentity:
    """Validate an HTTP-POST SAMLResponse (Profiles §4.1.4.3) and return who signed in."""
    root = parse_xml(_decode(saml_response_b64))
    if root.tag != _q(SAMLP, "Response") or root.get("Version") != "2.0":
        raise SAMLError("not a SAML 2.0 Response")
    idp = config.idp
    _check_issuer(root, idp.entity_id, required=False)
    _check_status(root)
    destination = root.get("Destination")
    if destination is not None and destination != config.acs_url:
        raise SAMLError("Response Destination is not our ACS URL")
    if expected_in_response_to is None:
        raise SAMLError("unsolicited (IdP-initiated) responses are not supported")
    if root.get("InResponseTo") != expected_in_response_to:
        raise SAMLError("Response InResponseTo does not match the request")
    if next(root.iter(_q(SAML, "EncryptedAssertion")), None) is not None:
        raise SAMLError("EncryptedAssertion is not supported")
    assertions = list(root.iter(_q(SAML, "Assertion")))
    if len(assertions) != 1 or assertions[0].getparent() is not root:
        raise SAMLError("Response must contain exactly one Assertion")
    assertion = assertions[0]
    response_signed = root.find(_q(DS, "Signature")) is not None
    if not response_signed and assertion.find(_q(DS, "Signature")) is None:
        raise SAMLError("neither the Response nor the Assertion is signed")
    if response_signed:
        if destination is None:
            raise SAMLError("signed Response has no Destination")
        verified = verify(root, idp.certs, allow_sha1=config.allow_sha1)
        assertion = verified.findall(_q(SAML, "Assertion"))[0]  # the one, counted above
    if assertion.find(_q(DS, "Signature")) is not None:
        assertion = verify(assertion, idp.certs, allow_sha1=config.allow_sha1)
    return _identity(assertion, idp.entity_id, (config.sp_entity_id,), (config.acs_url,), now,
                     config.skew, expected_in_response_to, response_signed)


def _identity(assertion: etree._Element, entity_id: str, audiences: Sequence[str],
              recipients: Sequence[str], now: float, skew: int, in_response_to: str | None,
              response_signed: bool) -> SAMLIdentity:
    """The checks of a verified Assertion's content shared by a Response and a bare one."""
    if assertion.get("Version") != "2.0" or not assertion.get("ID"):
        raise SAMLError("Assertion lacks Version 2.0 or an ID")
    _check_issuer(assertion, entity_id, required=True)
    conditions_expiry = _check_conditions(assertion, audiences, now, skew)
    name_id, name_id_format, confirmation_expiry = _check_subject(
        assertion, recipients, now, skew, in_response_to, response_signed)
    authn_instant, class_ref, session_index = _authn(assertion, now, skew)
    expiries = [e for e in (conditions_expiry, confirmation_expiry) if e is not None]
    return SAMLIdentity(
        issuer=entity_id, name_id=name_id, name_id_format=name_id_format,
        attributes=_attributes(assertion), assertion_id=str(assertion.get("ID")),
        not_on_or_after=min(expiries), authn_instant=authn_instant,
        authn_context_class_ref=class_ref, session_index=session_index)


# --- a bare Assertion: RFC 7522 bearer grant, RFC 8693 subject_token ------------------------

def decode_assertion(value: str) -> bytes:
    """RFC 7522 §2.1: the ``assertion`` is base64url without padding; padded base64url and
    standard base64 are tolerated too."""
    compact = "".join(value.split()).rstrip("=")
    if not compact or len(compact) > MAX_RESPONSE_B64:
        raise SAMLError("assertion empty or too large")
    if len(compact) % 4 == 1:
        raise SAMLError("assertion is not valid base64url")
    padded = compact.translate(_URLSAFE) + "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SAMLError("assertion is not valid base64url") from exc


def _bare_assertion(xml: bytes) -> etree._Element:
    root = parse_xml(xml)
    if root.tag != _q(SAML, "Assertion"):
        raise SAMLError("not a SAML 2.0 Assertion")
    return root


def assertion_issuer(xml: bytes) -> str:
    """The Issuer an (unverified) bare Assertion claims: which trusted IdP's keys to try."""
    issuer = _bare_assertion(xml).find(_q(SAML, "Issuer"))
    if issuer is None or not _text(issuer, "Issuer"):
        raise SAMLError("Assertion has no Issuer")
    return _text(issuer, "Issuer")


def consume_assertion(idp: IdPMetadata, xml: bytes, *, audience_options: Sequence[str],
                      recipient_options: Sequence[str], now: float, allow_sha1: bool = False,
                      skew: int = 60) -> SAMLIdentity:
    """Validate a bare saml:Assertion (RFC 7522 §3): signed by a certificate of ``idp``'s
    metadata (only the verified element is read), Issuer the IdP, Conditions window,
    AudienceRestriction naming one of ``audience_options``, one bearer SubjectConfirmation
    whose Recipient is one of ``recipient_options`` and whose NotOnOrAfter lies ahead, NameID.
    Replay (one use of the ID until ``not_on_or_after``) is the caller's job."""
    root = _bare_assertion(xml)
    if root.find(_q(DS, "Signature")) is None:
        raise SAMLError("Assertion is not signed")
    assertion = verify(root, idp.certs, allow_sha1=allow_sha1)
    return _identity(assertion, idp.entity_id, audience_options, recipient_options, now, skew,
                     None, True)
