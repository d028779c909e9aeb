"""Mutual TLS (RFC 8705) against a real ``tessera serve`` terminating TLS itself on loopback:
Hypercorn with ``--certfile``/``--keyfile`` from a test CA made at test time, ``--ca-certs``
(that CA, plus one self-signed client certificate as its own trust anchor) and
``--client-cert optional``; httpx clients present their certificates in the handshake. This
proves the certificate reaches the app through ``broker.hypercorn_tls`` (Hypercorn 0.18 does
not pass it on by itself)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mtls_pki import (
    DNS_NAME,
    SPIFFE_ID,
    SUBJECT_DN,
    Issued,
    TestPKI,
    client_context,
    issue,
    make_pki,
)
from tests.server_errors import watch_server_log
from tests.server_process import clean_env, free_port, stop, wait_healthy

pytestmark = pytest.mark.interop


@dataclass(frozen=True)
class TLSServer:
    base_url: str
    admin_token: str
    pki: TestPKI
    files: Path  # where the PEM files are
    ca_file: Path
    log_file: Path

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/t/demo"

    def http(self, issued: Issued | None = None) -> httpx.Client:
        """A client trusting the test CA, presenting ``issued`` if given."""
        cert = None
        if issued is not None:
            name = secrets.token_hex(4)
            cert = issued.write(self.files, name)
        return httpx.Client(verify=client_context(self.ca_file, cert), timeout=10.0)

    def create_client(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", f"mtls-{secrets.token_hex(3)}")
        body.setdefault("scopes", ["demo.read"])
        body.setdefault("audiences", [f"{self.issuer}/demo"])
        with self.http() as http:
            r = http.post(f"{self.base_url}/admin/v1/tenants/demo/clients", json=body,
                          headers={"Authorization": f"Bearer {self.admin_token}"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert isinstance(created, dict)
        return created

    def token(self, client_id: str, issued: Issued | None,
              headers: dict[str, str] | None = None) -> httpx.Response:
        with self.http(issued) as http:
            return http.post(f"{self.issuer}/token", headers=headers, data={
                "grant_type": "client_credentials", "client_id": client_id})

    def whoami(self, token: str, issued: Issued | None) -> httpx.Response:
        with self.http(issued) as http:
            return http.get(f"{self.issuer}/demo/whoami",
                            headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    workdir = tmp_path_factory.mktemp("tessera-mtls")
    pki = make_pki()
    ca_file = workdir / "ca.pem"
    ca_file.write_bytes(pki.ca.pem)
    bundle = workdir / "client-ca-bundle.pem"  # the CA and one self-signed client certificate
    bundle.write_bytes(pki.ca.pem + pki.self_signed.pem)
    server_cert, server_key = issue(pki.ca, dn="CN=127.0.0.1", ips=("127.0.0.1",),
                                    server=True).write(workdir, "server")
    port = free_port()
    admin_token = "mtls-admin-" + secrets.token_urlsafe(24)
    log_file = workdir / "server.log"
    env = clean_env(TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{workdir}/t.db",
                    TESSERA_ADMIN_TOKEN=admin_token, TESSERA_ALLOW_HTTP_LOOPBACK="1")
    cmd = [sys.executable, "-m", "broker.cli", "serve", "--host", "127.0.0.1", "--port",
           str(port), "--certfile", str(server_cert), "--keyfile", str(server_key),
           "--ca-certs", str(bundle), "--client-cert", "optional"]
    with log_file.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = TLSServer(f"https://127.0.0.1:{port}", admin_token, pki, workdir, ca_file,
                       log_file)
    watch_server_log(log_file)
    try:
        wait_healthy(proc, server.base_url, log_file, http=server.http)
        yield server
    finally:
        stop(proc, log_file)


def _claims(token: str) -> dict[str, Any]:
    import base64

    body = token.split(".")[1]
    value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert isinstance(value, dict)
    return value


def test_issuer_is_https(tls_server):
    with tls_server.http() as http:
        meta = http.get(f"{tls_server.issuer}/.well-known/openid-configuration").json()
    assert meta["issuer"] == tls_server.issuer
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert "tls_client_auth" in meta["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize(("registration", "which"), [
    ({"tls_client_auth_san_uri": SPIFFE_ID}, "spiffe"),
    ({"tls_client_auth_san_dns": DNS_NAME}, "dns"),
    ({"tls_client_auth_subject_dn": SUBJECT_DN}, "dn"),
])
def test_tls_client_auth(tls_server, registration, which):
    issued = getattr(tls_server.pki, which)
    client = tls_server.create_client(token_endpoint_auth_method="tls_client_auth",
                                      **registration)
    r = tls_server.token(client["client_id"], issued)
    assert r.status_code == 200, r.text + tls_server.log_file.read_text()[-2000:]
    assert _claims(r.json()["access_token"])["sub"] == client["client_id"]
    # wrong certificate (same CA, other names) and no certificate
    for other in (tls_server.pki.other, None):
        r = tls_server.token(client["client_id"], other)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_self_signed_tls_client_auth(tls_server):
    pki = tls_server.pki
    client = tls_server.create_client(token_endpoint_auth_method="self_signed_tls_client_auth",
                                      jwks=pki.self_signed.jwks())
    r = tls_server.token(client["client_id"], pki.self_signed)
    assert r.status_code == 200, r.text
    r = tls_server.token(client["client_id"], pki.dn)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_self_signed_certificate_in_the_bundle_is_no_ca_word(tls_server):
    """The self-signed certificate passes the handshake (it is in --ca-certs) but does not
    pass tls_client_auth even with the registered subject DN: it is self-issued."""
    client = tls_server.create_client(token_endpoint_auth_method="tls_client_auth",
                                      tls_client_auth_subject_dn="CN=self-signed agent")
    r = tls_server.token(client["client_id"], tls_server.pki.self_signed)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_certificate_from_an_untrusted_ca_fails_the_handshake(tls_server):
    client = tls_server.create_client(token_endpoint_auth_method="tls_client_auth",
                                      tls_client_auth_san_uri=SPIFFE_ID)
    with pytest.raises(httpx.TransportError):
        tls_server.token(client["client_id"], tls_server.pki.foreign)


def test_client_cert_header_from_a_client_is_ignored(tls_server):
    """127.0.0.1 is not a trusted proxy: its Client-Cert header counts for nothing, whether
    it presents no certificate or another one in TLS."""
    pki = tls_server.pki
    client = tls_server.create_client(token_endpoint_auth_method="tls_client_auth",
                                      tls_client_auth_san_uri=SPIFFE_ID)
    for presented in (None, pki.other):
        r = tls_server.token(client["client_id"], presented,
                             headers={"Client-Cert": pki.spiffe.header})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_bound_token_at_the_demo_resource_and_introspection(tls_server):
    pki = tls_server.pki
    client = tls_server.create_client(token_endpoint_auth_method="tls_client_auth",
                                      tls_client_auth_san_uri=SPIFFE_ID,
                                      tls_client_certificate_bound_access_tokens=True)
    r = tls_server.token(client["client_id"], pki.spiffe)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert _claims(token)["cnf"] == {"x5t#S256": pki.spiffe.x5t}

    r = tls_server.whoami(token, pki.spiffe)
    assert r.status_code == 200, r.text
    assert r.json()["cnf"]["x5t#S256"] == pki.spiffe.x5t
    for other in (pki.dns, None):
        r = tls_server.whoami(token, other)
        assert r.status_code == 401, r.text
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # forging the header from a non-proxy does not help either
    with tls_server.http() as http:
        r = http.get(f"{tls_server.issuer}/demo/whoami",
                     headers={"Authorization": f"Bearer {token}",
                              "Client-Cert": pki.spiffe.header})
    assert r.status_code == 401

    rs = tls_server.create_client()
    with tls_server.http() as http:
        r = http.post(f"{tls_server.issuer}/introspect", data={"token": token},
                      auth=(rs["client_id"], rs["client_secret"]))
    assert r.status_code == 200, r.text
    assert r.json()["active"] and r.json()["cnf"] == {"x5t#S256": pki.spiffe.x5t}
