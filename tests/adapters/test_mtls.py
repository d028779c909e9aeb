"""adapters.mtls: certificate parsing, x5t#S256, DN/SAN matching, SPIFFE IDs, RFC 9440."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time

import pytest

from adapters import mtls
from tests.mtls_pki import DNS_NAME, SPIFFE_ID, SUBJECT_DN, issue, make_pki, new_ca

PKI = make_pki()


def test_load_pem_and_der_agree():
    from_pem = mtls.load_certificate(PKI.dn.pem)
    from_der = mtls.load_certificate(mtls.der(PKI.dn.cert))
    assert from_pem == from_der == PKI.dn.cert
    assert mtls.load_certificate(PKI.dn.pem.decode()) == PKI.dn.cert
    assert mtls.load_certificate(mtls.pem(PKI.dn.cert)) == PKI.dn.cert


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_load_refuses_non_certificates(data):
    with pytest.raises(mtls.CertificateError):
        mtls.load_certificate(data)


def test_x5t_s256_is_base64url_sha256_of_der():
    digest = hashlib.sha256(mtls.der(PKI.spiffe.cert)).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert mtls.x5t_s256(PKI.spiffe.cert) == expected
    assert "=" not in expected and len(expected) == 43
    assert mtls.x5t_s256(PKI.spiffe.cert) != mtls.x5t_s256(PKI.dns.cert)


def test_subject_dn_and_sans():
    assert mtls.subject_dn(PKI.dn.cert) == SUBJECT_DN
    assert mtls.san_uris(PKI.spiffe.cert) == [SPIFFE_ID]
    assert mtls.san_dns(PKI.dns.cert) == [DNS_NAME]
    assert mtls.san_uris(PKI.dn.cert) == [] and mtls.san_dns(PKI.dn.cert) == []


@pytest.mark.parametrize("registered", [
    SUBJECT_DN, "CN=Billing-Agent, O=Example  Corp, C=de", "cn=billing-agent,o=Example Corp,c=DE",
])
def test_dn_matches_case_and_space_insensitively(registered):
    assert mtls.dn_matches(registered, PKI.dn.cert)


@pytest.mark.parametrize("registered", [
    "CN=billing-agent,O=Example Corp", "C=DE,O=Example Corp,CN=billing-agent",
    "CN=billing-agent,O=Other,C=DE", "not a dn", "",
])
def test_dn_mismatch(registered):
    assert not mtls.dn_matches(registered, PKI.dn.cert)


def test_dns_matches_exactly():
    assert mtls.dns_matches(DNS_NAME, PKI.dns.cert)
    assert mtls.dns_matches(DNS_NAME.upper() + ".", PKI.dns.cert)
    assert not mtls.dns_matches("example.org", PKI.dns.cert)
    assert not mtls.dns_matches("*.example.org", PKI.dns.cert)
    wildcard = issue(PKI.ca, dns=("*.example.org",))
    assert not mtls.dns_matches(DNS_NAME, wildcard.cert)


# -- SPIFFE ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    SPIFFE_ID, "spiffe://example.org/a", "spiffe://td_1.example-x/ns/prod/sa/agent.v2",
])
def test_valid_spiffe_ids(value):
    assert mtls.check_spiffe_id(value) == value


@pytest.mark.parametrize("value", [
    "spiffe://example.org", "spiffe://example.org/", "spiffe://Example.org/a",
    "spiffe://example.org:8443/a", "spiffe://user@example.org/a", "spiffe://example.org/a/",
    "spiffe://example.org//a", "spiffe://example.org/./a", "spiffe://example.org/a/..",
    "spiffe://example.org/a?x=1", "spiffe://example.org/a#f", "SPIFFE://example.org/a",
    "https://example.org/a", "spiffe:///a", "spiffe://example.org/a%20b",
    "spiffe://example.org/" + "a" * 2048,
])
def test_invalid_spiffe_ids(value):
    with pytest.raises(mtls.CertificateError):
        mtls.check_spiffe_id(value)


def test_spiffe_id_of_svid():
    assert mtls.spiffe_id(PKI.spiffe.cert) == SPIFFE_ID
    assert mtls.trust_domain(SPIFFE_ID) == "example.org"


@pytest.mark.parametrize("cert", [
    PKI.dn.cert,  # no URI SAN
    issue(PKI.ca, uris=("https://example.org/agent",)).cert,  # not spiffe
    issue(PKI.ca, uris=(SPIFFE_ID, "spiffe://example.org/other")).cert,  # two URI SANs
    issue(PKI.ca, uris=(SPIFFE_ID, "https://example.org/x")).cert,  # one more URI SAN
    issue(PKI.ca, uris=("spiffe://example.org",)).cert,  # a trust domain, no workload
    issue(PKI.ca, uris=(SPIFFE_ID,), is_ca=True).cert,  # a CA is no leaf SVID
])
def test_not_an_svid(cert):
    assert mtls.spiffe_id(cert) is None


# -- RFC 9440 Client-Cert --------------------------------------------------------------------

def test_client_cert_header_round_trip():
    assert mtls.parse_client_cert_header(PKI.spiffe.header) == PKI.spiffe.cert
    assert mtls.parse_client_cert_header(f"  {PKI.spiffe.header} ") == PKI.spiffe.cert


@pytest.mark.parametrize("value", [
    "", "::", "abc", ":not base64!:",
    ":" + base64.b64encode(b"hello").decode() + ":",
    ":" + base64.b64encode(PKI.spiffe.pem).decode() + ":",  # PEM inside: not RFC 9440
    base64.b64encode(mtls.der(PKI.spiffe.cert)).decode(),  # no colons
    ":" + base64.urlsafe_b64encode(b"\xfb\xff" * 300).decode() + ":",
    ":" + "A" * 20_000 + ":",
])
def test_client_cert_header_refused(value):
    with pytest.raises(mtls.CertificateError):
        mtls.parse_client_cert_header(value)


# -- validity, self-issued, x5c ----------------------------------------------------------------

def test_validity_period():
    now = time.time()
    mtls.check_validity(PKI.dn.cert, now)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    expired = issue(PKI.ca, not_before=past, not_after=past + dt.timedelta(hours=1))
    with pytest.raises(mtls.CertificateError, match="expired"):
        mtls.check_validity(expired.cert, now)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    early = issue(PKI.ca, not_before=future, not_after=future + dt.timedelta(hours=1))
    with pytest.raises(mtls.CertificateError, match="not yet valid"):
        mtls.check_validity(early.cert, now)


def test_self_issued():
    assert mtls.is_self_issued(PKI.self_signed.cert)
    assert mtls.is_self_issued(PKI.ca.cert)
    assert not mtls.is_self_issued(PKI.dn.cert)


def test_matches_x5c():
    jwks = PKI.self_signed.jwks()
    assert mtls.x5c_certificates(jwks) == [PKI.self_signed.cert]
    assert mtls.matches_x5c(PKI.self_signed.cert, jwks)
    # same subject, another key: another certificate
    assert not mtls.matches_x5c(PKI.self_signed_other.cert, jwks)
    assert not mtls.matches_x5c(PKI.self_signed.cert, None)
    assert not mtls.matches_x5c(PKI.self_signed.cert, {"keys": [{"kty": "EC", "x5c": ["!!"]}]})
    assert not mtls.matches_x5c(PKI.self_signed.cert, {"keys": "nope"})


def test_parse_dn():
    assert mtls.parse_dn(SUBJECT_DN).rfc4514_string() == SUBJECT_DN
    with_email = issue(PKI.ca, dn="1.2.840.113549.1.9.1=ops@example.org,CN=mailer")
    assert mtls.dn_matches("emailAddress=ops@example.org,CN=mailer", with_email.cert)
    assert mtls.dn_matches(mtls.subject_dn(with_email.cert), with_email.cert)
    escaped = issue(PKI.ca, dn="CN=agent,O=Example\\, Inc.")
    assert mtls.dn_matches("CN=agent, O=Example\\, Inc.", escaped.cert)
    assert not mtls.dn_matches("CN=agent, O=Example", escaped.cert)
    for bad in ("", "no equals sign", "=x"):
        with pytest.raises(mtls.CertificateError):
            mtls.parse_dn(bad)


def test_new_ca_is_a_ca():
    ca = new_ca()
    assert mtls.is_self_issued(ca.cert)
