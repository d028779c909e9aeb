"""X.509 client certificates for mutual TLS (RFC 8705), pure: parsing (PEM, DER, and the RFC
9440 ``Client-Cert`` header), the ``x5t#S256`` thumbprint, subject DN and SAN matching, SPIFFE
IDs (X.509-SVID), and matching against a JWKS ``x5c``. No I/O; the caller supplies the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

MAX_HEADER_CHARS = 16_384  # an RFC 9440 Client-Cert value (base64 DER of one certificate)
MAX_SPIFFE_ID_BYTES = 2048
MAX_TRUST_DOMAIN_CHARS = 255
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_SPACES = re.compile(r"\s+")


class CertificateError(ValueError):
    """A certificate (or a header carrying one) that cannot be used."""


def load_certificate(data: bytes | str) -> x509.Certificate:
    """One certificate, PEM (the first block) or DER."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise CertificateError(f"not an X.509 certificate: {exc}") from exc


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def x5t_s256(cert: x509.Certificate) -> str:
    """RFC 8705 §3.1: base64url (no padding) of the SHA-256 of the DER certificate."""
    digest = hashlib.sha256(der(cert)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_client_cert_header(value: str) -> x509.Certificate:
    """RFC 9440 §2.2 ``Client-Cert``: a structured-field byte sequence (RFC 8941 §3.3.5),
    ``:`` base64 of the DER certificate ``:``."""
    value = value.strip(" \t")
    if len(value) > MAX_HEADER_CHARS:
        raise CertificateError("Client-Cert header too large")
    if len(value) < 3 or value[0] != ":" or value[-1] != ":":
        raise CertificateError("Client-Cert must be a byte sequence :base64:")
    try:
        raw = base64.b64decode(value[1:-1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CertificateError("Client-Cert is not base64") from exc
    if raw[:1] != b"\x30":  # a DER SEQUENCE, never PEM text
        raise CertificateError("Client-Cert does not hold a DER certificate")
    return load_certificate(raw)


def subject_dn(cert: x509.Certificate) -> str:
    """The subject in RFC 4514 string form (most significant RDN last)."""
    return cert.subject.rfc4514_string()


def _normal_name(name: x509.Name) -> list[list[tuple[str, str]]]:
    """A name for comparison: per RDN, its (OID, value) pairs with the value case-folded and
    inner whitespace collapsed (LDAP caseIgnoreMatch, RFC 4517 §4.2.11 / §4.2.3)."""
    out = []
    for rdn in name.rdns:
        out.append(sorted(
            (attr.oid.dotted_string, _SPACES.sub(" ", str(attr.value).strip()).casefold())
            for attr in rdn))
    return out


_MORE_NAMES = {  # beyond RFC 4514's own (CN, L, ST, O, OU, C, STREET, DC, UID)
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS, "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "SN": NameOID.SURNAME, "GIVENNAME": NameOID.GIVEN_NAME, "TITLE": NameOID.TITLE,
    "ORGANIZATIONIDENTIFIER": NameOID.ORGANIZATION_IDENTIFIER,
}
_ATTRIBUTE_TYPE = re.compile(r"(^|(?<!\\)[,+])\s*([A-Za-z][A-Za-z0-9-]*)\s*=")


def parse_dn(value: str) -> x509.Name:
    """A subject DN as registered (RFC 4514 string; attribute type names in any case and
    spaces after separators tolerated); ``CertificateError`` if malformed."""
    relaxed = _ATTRIBUTE_TYPE.sub(lambda m: f"{m.group(1)}{m.group(2).upper()}=", value)
    try:
        name = x509.Name.from_rfc4514_string(relaxed, _MORE_NAMES)
    except ValueError as exc:
        raise CertificateError(f"not an RFC 4514 distinguished name: {exc}") from exc
    if not name.rdns:
        raise CertificateError("empty distinguished name")
    return name


def dn_matches(registered: str, cert: x509.Certificate) -> bool:
    try:
        expected = parse_dn(registered)
    except CertificateError:
        return False
    return _normal_name(expected) == _normal_name(cert.subject)


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def san_uris(cert: x509.Certificate) -> list[str]:
    sans = _sans(cert)
    return list(sans.get_values_for_type(x509.UniformResourceIdentifier)) if sans else []


def san_dns(cert: x509.Certificate) -> list[str]:
    sans = _sans(cert)
    return list(sans.get_values_for_type(x509.DNSName)) if sans else []


def dns_matches(registered: str, cert: x509.Certificate) -> bool:
    """Exact match (case-insensitive, no wildcards: a client names itself, RFC 8705 §2.1.2)."""
    wanted = registered.rstrip(".").lower()
    return any(name.rstrip(".").lower() == wanted for name in san_dns(cert))


def check_spiffe_id(value: str) -> str:
    """A workload SPIFFE ID (SPIFFE-ID spec §2): ``spiffe://trust-domain/path``, lower-case
    trust domain of ``[a-z0-9._-]``, path segments of ``[A-Za-z0-9._-]`` (none empty, ``.``
    or ``..``), no port, user info, query, fragment or trailing slash. Returns it unchanged."""
    if len(value.encode()) > MAX_SPIFFE_ID_BYTES:
        raise CertificateError("SPIFFE ID longer than 2048 bytes")
    if not value.startswith("spiffe://"):
        raise CertificateError("a SPIFFE ID starts with spiffe://")
    domain, slash, path = value[len("spiffe://"):].partition("/")
    if not domain or len(domain) > MAX_TRUST_DOMAIN_CHARS or not _TRUST_DOMAIN.match(domain):
        raise CertificateError("SPIFFE trust domain: lower-case letters, digits, '.', '-', '_'")
    if not slash or not path:
        raise CertificateError("a workload SPIFFE ID has a path")
    for segment in path.split("/"):
        if not _PATH_SEGMENT.match(segment) or segment in (".", ".."):
            raise CertificateError("SPIFFE ID path segments: [A-Za-z0-9._-], not empty, . or ..")
    return value


def trust_domain(spiffe: str) -> str:
    return spiffe[len("spiffe://"):].partition("/")[0]


def spiffe_id(cert: x509.Certificate) -> str | None:
    """The SPIFFE ID of an X.509-SVID leaf (X.509-SVID spec §2, §4.1-4.3): exactly one URI
    SAN, a valid SPIFFE ID; not a CA; key usage, if present, has digitalSignature and neither
    keyCertSign nor cRLSign. None if the certificate is not such an SVID."""
    uris = san_uris(cert)
    if len(uris) != 1 or not uris[0].startswith("spiffe://"):
        return None
    try:
        check_spiffe_id(uris[0])
    except CertificateError:
        return None
    if _is_ca(cert):
        return None
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return uris[0]
    if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        return None
    return uris[0]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def is_self_issued(cert: x509.Certificate) -> bool:
    """Issuer and subject are the same name (a self-signed certificate, or a CA's own)."""
    return cert.issuer == cert.subject


def check_validity(cert: x509.Certificate, now: float, leeway: float = 0) -> None:
    """``CertificateError`` unless ``now`` (epoch seconds) is within the validity period."""
    if now + leeway < cert.not_valid_before_utc.timestamp():
        raise CertificateError("certificate not yet valid")
    if now - leeway > cert.not_valid_after_utc.timestamp():
        raise CertificateError("certificate expired")


def x5c_certificates(jwks: Mapping[str, Any] | None) -> list[x509.Certificate]:
    """The leaf certificate (first ``x5c`` entry, RFC 7517 §4.7: standard base64 DER) of each
    key of a JWKS that has one; unusable entries are skipped."""
    out = []
    for key in (jwks or {}).get("keys") or []:
        chain = key.get("x5c") if isinstance(key, dict) else None
        if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
            continue
        try:
            out.append(load_certificate(base64.b64decode(chain[0], validate=True)))
        except (binascii.Error, ValueError):
            continue
    return out


def matches_x5c(cert: x509.Certificate, jwks: Mapping[str, Any] | None) -> bool:
    """RFC 8705 §2.2.2: the presented certificate is one registered in the client's JWKS."""
    thumbprint = x5t_s256(cert)
    return any(x5t_s256(registered) == thumbprint for registered in x5c_certificates(jwks))


def x5c_entry(cert: x509.Certificate) -> str:
    """The certificate as one ``x5c`` array entry (standard base64 of the DER)."""
    return base64.b64encode(der(cert)).decode("ascii")

