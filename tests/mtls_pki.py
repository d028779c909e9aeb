"""A test PKI made at test time (cryptography): a CA, client certificates (SPIFFE URI SAN,
DNS SAN, subject DN only), self-signed ones, a server certificate for 127.0.0.1, and the
helpers to present them (RFC 9440 header value, PEM files, an ``ssl.SSLContext`` for httpx).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters import mtls

SPIFFE_ID = "spiffe://example.org/agents/planner"
DNS_NAME = "agent.example.org"
SUBJECT_DN = "CN=billing-agent,O=Example Corp,C=DE"


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def header(self) -> str:
        """RFC 9440 ``Client-Cert`` value."""
        return ":" + base64.b64encode(mtls.der(self.cert)).decode() + ":"

    @property
    def x5t(self) -> str:
        return mtls.x5t_s256(self.cert)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
        cert_file.write_bytes(self.pem)
        key_file.write_bytes(self.key_pem)
        return cert_file, key_file

    def jwks(self) -> dict[str, Any]:
        """A JWKS naming this certificate in ``x5c`` (self_signed_tls_client_auth)."""
        from joserfc.jwk import ECKey

        jwk = ECKey.import_key(self.key.public_key()).as_dict(private=False)
        return {"keys": [{**jwk, "x5c": [mtls.x5c_entry(self.cert)]}]}


def _name(dn: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(dn)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(cn: str = "tessera test CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued | None, *, dn: str = "CN=test client", uris: tuple[str, ...] = (),
    dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), server: bool = False,
    not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
    is_ca: bool = False,
) -> Issued:
    """A leaf certificate signed by ``ca``, or self-signed when ``ca`` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(dn)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    sans += [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder().subject_name(subject)
        .issuer_name(ca.cert.subject if ca else subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _now() - dt.timedelta(minutes=5))
        .not_valid_after(not_after or _now() + dt.timedelta(hours=12))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False)
    return Issued(builder.sign(ca.key if ca else key, hashes.SHA256()), key)


@dataclass(frozen=True)
class TestPKI:
    __test__ = False

    ca: Issued
    spiffe: Issued  # URI SAN spiffe://example.org/agents/planner
    dns: Issued  # DNS SAN agent.example.org
    dn: Issued  # subject CN=billing-agent,O=Example Corp,C=DE, no SAN
    other: Issued  # same CA, names nobody registers
    self_signed: Issued
    self_signed_other: Issued
    foreign: Issued  # from a CA the server does not trust


def make_pki() -> TestPKI:
    ca = new_ca()
    return TestPKI(
        ca=ca,
        spiffe=issue(ca, dn="CN=planner", uris=(SPIFFE_ID,)),
        dns=issue(ca, dn="CN=dns agent", dns=(DNS_NAME,)),
        dn=issue(ca, dn=SUBJECT_DN),
        other=issue(ca, dn="CN=stranger,O=Elsewhere", dns=("stranger.example.net",),
                    uris=("spiffe://example.org/agents/stranger",)),
        self_signed=issue(None, dn="CN=self-signed agent"),
        self_signed_other=issue(None, dn="CN=self-signed agent"),
        foreign=issue(new_ca("untrusted CA"), dn=SUBJECT_DN, uris=(SPIFFE_ID,)),
    )


def client_context(ca_file: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """What httpx gets as ``verify=``: trust ``ca_file``, present ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context
