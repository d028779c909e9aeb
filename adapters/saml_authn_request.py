"""What a legacy app (a SAML SP) sends tessera's IdP: its AuthnRequest over HTTP-Redirect or
HTTP-POST, and its SP metadata.

References: Core §3.4.1 (AuthnRequest: Issuer, AssertionConsumerServiceURL/Index,
ProtocolBinding, NameIDPolicy, ForceAuthn, IsPassive); Bindings §3.4.4.1 (DEFLATE encoding;
the signature of a Redirect message covers ``SAMLRequest=..&RelayState=..&SigAlg=..`` exactly as
the octets were sent), §3.4.3 / §3.5.3 (RelayState), §3.5.4 (POST: base64, an enveloped
signature inside the message); Metadata §2.4.4 (SPSSODescriptor, AuthnRequestsSigned,
AssertionConsumerService), §2.4.1.1 (KeyDescriptor).

Parsing is ``saml_assertion.parse_xml`` (no DOCTYPE, no entities, no network, bounded size);
the inflated Redirect message is bounded before it is parsed (no deflate bomb). SHA-1 request
signatures are refused.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from adapters.saml_assertion import (
    DS,
    SAML,
    SAMLP,
    SAMLError,
    parse_instant,
    parse_xml,
    pem_from_b64,
    verify,
)
from adapters.saml_issue import BINDING_POST, MD, NAMEID_FORMATS, PROTOCOL

MAX_MESSAGE_B64 = 64 * 1024
MAX_INFLATED = 256 * 1024
MAX_RELAY_STATE = 1024  # Bindings §3.4.3 says 80 bytes; deployed SPs send longer ones
_REDIRECT_HASHES: dict[str, hashes.HashAlgorithm] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": hashes.SHA512(),
}


@dataclass(frozen=True)
class AuthnRequest:
    id: str
    issuer: str
    destination: str | None
    acs_url: str | None
    acs_index: int | None
    protocol_binding: str | None
    name_id_format: str | None
    force_authn: bool
    is_passive: bool
    root: etree._Element  # for the embedded signature of a POST-bound request

    @property
    def signed(self) -> bool:
        return self.root.find(f"{{{DS}}}Signature") is not None


@dataclass(frozen=True)
class SPMetadata:
    entity_id: str
    acs_urls: tuple[str, ...]  # HTTP-POST endpoints, the default first
    authn_requests_signed: bool
    certs: tuple[str, ...]  # PEM
    name_id_format: str | None  # a key of NAMEID_FORMATS


def _b64(value: str, what: str) -> bytes:
    compact = "".join(value.split())
    if not compact or len(compact) > MAX_MESSAGE_B64:
        raise SAMLError(f"{what} empty or too large")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SAMLError(f"{what} is not valid base64") from exc


def decode_redirect(value: str) -> bytes:
    """SAMLRequest of the HTTP-Redirect binding: base64 of raw DEFLATE."""
    inflater = zlib.decompressobj(-15)
    try:
        xml = inflater.decompress(_b64(value, "SAMLRequest"), MAX_INFLATED)
    except zlib.error as exc:
        raise SAMLError("SAMLRequest is not DEFLATE-encoded") from exc
    if inflater.unconsumed_tail:
        raise SAMLError("SAMLRequest too large")
    return xml


def decode_post(value: str) -> bytes:
    """SAMLRequest of the HTTP-POST binding: base64 of the XML."""
    return _b64(value, "SAMLRequest")


def _bool(value: str | None, what: str) -> bool:
    if value in (None, "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise SAMLError(f"{what} is not a boolean")


def parse_authn_request(xml: bytes) -> AuthnRequest:
    root = parse_xml(xml, max_bytes=MAX_INFLATED)
    if root.tag != f"{{{SAMLP}}}AuthnRequest" or root.get("Version") != "2.0":
        raise SAMLError("not a SAML 2.0 AuthnRequest")
    request_id = root.get("ID") or ""
    if not request_id or len(request_id) > 256:
        raise SAMLError("AuthnRequest has no usable ID")
    parse_instant(root.get("IssueInstant"), "IssueInstant")
    issuers = root.findall(f"{{{SAML}}}Issuer")
    if len(issuers) != 1 or len(issuers[0]) or not (issuers[0].text or "").strip():
        raise SAMLError("AuthnRequest must name its Issuer")
    index = root.get("AssertionConsumerServiceIndex")
    if index is not None and (not index.isdigit() or int(index) > 1000):
        raise SAMLError("AssertionConsumerServiceIndex is not a small number")
    policy = root.find(f"{{{SAMLP}}}NameIDPolicy")
    return AuthnRequest(
        id=request_id, issuer=(issuers[0].text or "").strip(),
        destination=root.get("Destination"), acs_url=root.get("AssertionConsumerServiceURL"),
        acs_index=int(index) if index is not None else None,
        protocol_binding=root.get("ProtocolBinding"),
        name_id_format=policy.get("Format") if policy is not None else None,
        force_authn=_bool(root.get("ForceAuthn"), "ForceAuthn"),
        is_passive=_bool(root.get("IsPassive"), "IsPassive"), root=root)


def _public_keys(certs: Sequence[str | bytes]) -> list[object]:
    keys = []
    for pem in certs:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
        except ValueError as exc:
            raise SAMLError("unreadable SP certificate") from exc
        keys.append(cert.public_key())
    return keys


def _verify_raw(key: object, signature: bytes, data: bytes, alg: str) -> bool:
    digest = _REDIRECT_HASHES[alg]
    try:
        if "rsa" in alg and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest)
            return True
        if "ecdsa" in alg and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) == 2 * size:  # XML Signature 1.1 §6.4.3: r || s
                signature = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                                 int.from_bytes(signature[size:], "big"))
            key.verify(signature, data, ec.ECDSA(digest))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def verify_redirect_signature(raw_query: str, certs: Sequence[str | bytes]) -> None:
    """Check SigAlg/Signature of an HTTP-Redirect message against the SP's certificates, over
    the parameters as they were sent (still URL-encoded), in the order Bindings §3.4.4.1 fixes."""
    raw: dict[str, str] = {}
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        if name in ("SAMLRequest", "RelayState", "SigAlg", "Signature"):
            if name in raw:
                raise SAMLError(f"{name} repeated")
            raw[name] = value
    if "SigAlg" not in raw or "Signature" not in raw:
        raise SAMLError("this app must sign its AuthnRequests (SigAlg and Signature missing)")
    alg = unquote_plus(raw["SigAlg"])
    if alg not in _REDIRECT_HASHES:
        raise SAMLError("request signature algorithm not allowed")
    signed = "&".join(f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg")
                      if k in raw).encode()
    signature = _b64(unquote_plus(raw["Signature"]), "Signature")
    if not certs:
        raise SAMLError("no certificate registered for this app")
    if not any(_verify_raw(key, signature, signed, alg) for key in _public_keys(certs)):
        raise SAMLError("AuthnRequest signature does not verify")


def verify_post_signature(request: AuthnRequest, certs: Sequence[str | bytes]) -> None:
    """The enveloped signature of a POST-bound AuthnRequest (Core §5.4)."""
    if not request.signed:
        raise SAMLError("this app must sign its AuthnRequests (no Signature)")
    verify(request.root, [c.encode() if isinstance(c, str) else c for c in certs])


# --- SP metadata (Metadata §2.4.4) ------------------------------------------------------------

def _pem(b64_text: str) -> str:
    return pem_from_b64(b64_text, "SP metadata").decode()


def parse_sp_metadata(xml: bytes) -> SPMetadata:
    root = parse_xml(xml)
    if root.tag == f"{{{MD}}}EntitiesDescriptor":
        entities = [e for e in root.iter(f"{{{MD}}}EntityDescriptor")
                    if e.find(f"{{{MD}}}SPSSODescriptor") is not None]
        if len(entities) != 1:
            raise SAMLError("metadata must describe exactly one SP entity")
        root = entities[0]
    if root.tag != f"{{{MD}}}EntityDescriptor":
        raise SAMLError("metadata root is not an EntityDescriptor")
    entity_id = (root.get("entityID") or "").strip()
    sps = [d for d in root.findall(f"{{{MD}}}SPSSODescriptor")
           if PROTOCOL in (d.get("protocolSupportEnumeration") or "").split()]
    if not entity_id or not sps:
        raise SAMLError("metadata has no entityID or no SAML 2.0 SPSSODescriptor")
    sp = sps[0]
    services = []
    for acs in sp.findall(f"{{{MD}}}AssertionConsumerService"):
        location = (acs.get("Location") or "").strip()
        if acs.get("Binding") == BINDING_POST and location:
            index = acs.get("index") or "0"
            default = acs.get("isDefault") == "true"
            services.append((not default, int(index) if index.isdigit() else 0, location))
    if not services:
        raise SAMLError("metadata has no HTTP-POST AssertionConsumerService")
    certs = tuple(_pem(node.text or "") for kd in sp.findall(f"{{{MD}}}KeyDescriptor")
                  if kd.get("use") in (None, "signing")
                  for node in kd.iter(f"{{{DS}}}X509Certificate"))
    formats = {uri: name for name, uri in NAMEID_FORMATS.items()}
    named = [formats[f.text.strip()] for f in sp.findall(f"{{{MD}}}NameIDFormat")
             if f.text and f.text.strip() in formats]
    return SPMetadata(entity_id, tuple(dict.fromkeys(loc for *_, loc in sorted(services))),
                      sp.get("AuthnRequestsSigned") == "true", certs,
                      named[0] if named else None)

