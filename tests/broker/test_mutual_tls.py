"""Mutual TLS (RFC 8705) in process: client authentication (tls_client_auth by SPIFFE ID, DNS
SAN or subject DN; self_signed_tls_client_auth), certificate-bound access tokens at the demo
resource and in introspection; the certificate arrives in a trusted proxy's RFC 9440
``Client-Cert`` header (ASGI ``client`` set to the proxy's address) or in the ASGI TLS
extension; from anyone else the header is ignored and stripped."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from adapters import mtls
from broker import hypercorn_tls
from broker.app import create_app
from broker.client_cert import SCOPE_KEY, ClientCertMiddleware, trusted_networks
from broker.config import Settings
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.broker.helpers import jwt_parts, last_event
from tests.conftest import ADMIN_TOKEN, BASE_URL, OffsetClock, TestClient, new_client, unique
from tests.mtls_pki import DNS_NAME, SPIFFE_ID, SUBJECT_DN, Issued, issue, make_pki

PKI = make_pki()
PROXY = ("10.9.8.7", 44321)
STRANGER = ("192.0.2.10", 5555)
CC = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
async def proxied(broker: Broker) -> AsyncIterator[Broker]:
    """A replica of the test broker that trusts proxies in 10.0.0.0/8 (and one address)."""
    settings = broker.settings.replace(trusted_proxies=("10.0.0.0/8", "2001:db8::1"))
    other = Broker.build(settings, clock=OffsetClock())
    yield other
    await other.close()


@pytest.fixture(scope="module")
async def via_proxy(proxied: Broker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(proxied, background=False, migrate=False)
    transport = httpx.ASGITransport(app=app, client=PROXY)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture(scope="module")
async def direct(proxied: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """The same app reached from an address that is not a trusted proxy."""
    app = create_app(proxied, background=False, migrate=False)
    transport = httpx.ASGITransport(app=app, client=STRANGER)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def cert(issued: Issued | None) -> dict[str, str]:
    return {"Client-Cert": issued.header} if issued is not None else {}


async def mtls_client(broker: Broker, tenant: str, **kwargs: Any) -> TestClient:
    kwargs.setdefault("auth_method", "tls_client_auth")
    return await new_client(broker, tenant, **kwargs)


async def token(http: httpx.AsyncClient, client: TestClient, issued: Issued | None,
                **data: str) -> httpx.Response:
    return await http.post(client.token_url, data={**CC, "client_id": client.client_id, **data},
                           headers=cert(issued))


def whoami(client: TestClient) -> str:
    return f"{client.issuer}/demo/whoami"


# -- tls_client_auth ------------------------------------------------------------------------

REGISTRATIONS = [
    ({"tls_client_auth_san_uri": SPIFFE_ID}, PKI.spiffe),
    ({"tls_client_auth_san_dns": DNS_NAME}, PKI.dns),
    ({"tls_client_auth_subject_dn": SUBJECT_DN}, PKI.dn),
]


@pytest.mark.parametrize(("registration", "issued"), REGISTRATIONS,
                         ids=["spiffe-id", "dns-san", "subject-dn"])
async def test_tls_client_auth(via_proxy, broker, tenant, registration, issued):
    client = await mtls_client(broker, tenant, **registration)
    assert client.secret is None
    r = await token(via_proxy, client, issued)
    assert r.status_code == 200, r.text
    _, claims = jwt_parts(r.json()["access_token"])
    assert claims["sub"] == client.client_id and "cnf" not in claims
    assert r.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(("registration", "issued"), REGISTRATIONS,
                         ids=["spiffe-id", "dns-san", "subject-dn"])
@pytest.mark.parametrize("wrong", ["other", "self-signed-same-dn", "none"])
async def test_tls_client_auth_wrong_certificate(via_proxy, broker, tenant, registration,
                                                 issued, wrong):
    client = await mtls_client(broker, tenant, **registration)
    presented = {
        "other": PKI.other,
        # the registered names, but self-issued: only a CA's word counts for tls_client_auth
        "self-signed-same-dn": issue(None, dn=SUBJECT_DN, uris=(SPIFFE_ID,), dns=(DNS_NAME,)),
        "none": None,
    }[wrong]
    r = await token(via_proxy, client, presented)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    event = await last_event(broker, tenant)
    assert event.action == "token.refused" and event.detail["error"] == "invalid_client"


async def test_spiffe_id_needs_a_proper_svid(via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID)
    two_uris = issue(PKI.ca, uris=(SPIFFE_ID, "spiffe://example.org/agents/other"))
    r = await token(via_proxy, client, two_uris)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    ca_flagged = issue(PKI.ca, uris=(SPIFFE_ID,), is_ca=True)
    r = await token(via_proxy, client, ca_flagged)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_non_spiffe_uri_san(via_proxy, broker, tenant):
    uri = "https://agents.example.org/planner"
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=uri)
    r = await token(via_proxy, client, issue(PKI.ca, uris=("urn:x:y", uri)))
    assert r.status_code == 200, r.text


async def test_expired_certificate_refused(via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_subject_dn=SUBJECT_DN)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    expired = issue(PKI.ca, dn=SUBJECT_DN, not_before=past, not_after=past + dt.timedelta(1))
    r = await token(via_proxy, client, expired)
    assert r.status_code == 401 and "expired" in r.json()["error_description"]


async def test_mtls_client_cannot_use_a_secret_or_other_method(via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID)
    r = await via_proxy.post(client.token_url, data={**CC, "client_id": client.client_id,
                                                     "client_secret": "x"},
                             headers=cert(PKI.spiffe))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_a_certificate_does_not_authenticate_other_clients(via_proxy, broker, tenant):
    """A public client and a secret client are not authenticated by a certificate alone."""
    secret_client = await new_client(broker, tenant)
    r = await token(via_proxy, secret_client, PKI.spiffe)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


# -- self_signed_tls_client_auth ------------------------------------------------------------

async def test_self_signed_tls_client_auth(via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, auth_method="self_signed_tls_client_auth",
                               jwks=PKI.self_signed.jwks())
    r = await token(via_proxy, client, PKI.self_signed)
    assert r.status_code == 200, r.text
    for wrong in (PKI.self_signed_other, PKI.dn, None):
        r = await token(via_proxy, client, wrong)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", wrong


# -- the Client-Cert header from anyone but a trusted proxy --------------------------------

async def test_client_cert_header_from_untrusted_address_is_ignored(direct, via_proxy, broker,
                                                                    tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID)
    r = await token(direct, client, PKI.spiffe)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert "certificate" in r.json()["error_description"]
    r = await token(via_proxy, client, PKI.spiffe)
    assert r.status_code == 200, r.text


async def test_bound_token_with_header_from_untrusted_address(direct, via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID,
                               tls_client_certificate_bound_access_tokens=True)
    access = (await token(via_proxy, client, PKI.spiffe)).json()["access_token"]
    r = await direct.get(whoami(client), headers={"Authorization": f"Bearer {access}",
                                                  **cert(PKI.spiffe)})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


async def _seen(middleware: ClientCertMiddleware, peer: tuple[str, int] | None,
                headers: list[tuple[bytes, bytes]], extensions: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    middleware.app = app
    scope = {"type": "http", "client": peer, "headers": headers,
             "extensions": extensions or {}}
    await middleware(scope, None, None)  # type: ignore[arg-type]
    return seen


async def test_middleware_strips_the_headers_from_everyone():
    mw = ClientCertMiddleware(None, ["10.0.0.0/8"])  # type: ignore[arg-type]
    headers = [(b"host", b"x"), (b"client-cert", PKI.dn.header.encode()),
               (b"client-cert-chain", PKI.ca.header.encode())]
    for peer in (STRANGER, PROXY, None):
        seen = await _seen(mw, peer, list(headers))
        assert seen["headers"] == [(b"host", b"x")]
        presented = seen[SCOPE_KEY]
        if peer == PROXY:
            assert presented.certificate() == PKI.dn.cert
        else:
            assert presented is None
    # two Client-Cert headers from the proxy: none believed
    seen = await _seen(mw, PROXY, [(b"client-cert", PKI.dn.header.encode())] * 2)
    assert seen[SCOPE_KEY] is None
    # garbage from the proxy: no certificate
    seen = await _seen(mw, PROXY, [(b"client-cert", b":AAAA:")])
    assert seen[SCOPE_KEY].certificate() is None


async def test_middleware_tls_extension_and_proxy_precedence():
    mw = ClientCertMiddleware(None, ["10.0.0.0/8"])  # type: ignore[arg-type]
    tls = {"tls": {"client_cert_chain": [mtls.pem(PKI.dns.cert)]}}
    seen = await _seen(mw, STRANGER, [], tls)
    assert seen[SCOPE_KEY].certificate() == PKI.dns.cert
    # a stranger's header does not override its TLS certificate
    seen = await _seen(mw, STRANGER, [(b"client-cert", PKI.dn.header.encode())], tls)
    assert seen[SCOPE_KEY].certificate() == PKI.dns.cert
    # a trusted proxy's header does (the TLS certificate is the proxy's own)
    seen = await _seen(mw, PROXY, [(b"client-cert", PKI.dn.header.encode())], tls)
    assert seen[SCOPE_KEY].certificate() == PKI.dn.cert


def test_trusted_networks():
    nets = trusted_networks(["10.0.0.1", " 192.168.0.0/16 ", "", "::1"])
    assert [str(n) for n in nets] == ["10.0.0.1/32", "192.168.0.0/16", "::1/128"]
    with pytest.raises(ValueError, match="not-an-ip"):
        trusted_networks(["not-an-ip"])


def test_settings_trusted_proxies_from_env():
    settings = Settings.load({"TESSERA_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12"})
    assert settings.trusted_proxies == ("10.0.0.1", "172.16.0.0/12")
    assert Settings.load({}).trusted_proxies == ()


# -- the ASGI TLS extension (what tessera's Hypercorn hook fills) ---------------------------

async def test_tls_extension_path(proxied, broker, tenant):
    app = create_app(proxied, background=False, migrate=False)

    async def with_tls(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["extensions"] = {"tls": {"client_cert_chain": [mtls.pem(PKI.dns.cert)]}}
        await app(scope, receive, send)

    client = await mtls_client(broker, tenant, tls_client_auth_san_dns=DNS_NAME,
                               tls_client_certificate_bound_access_tokens=True)
    transport = httpx.ASGITransport(app=with_tls, client=STRANGER)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        r = await token(http, client, None)
        assert r.status_code == 200, r.text
        access = r.json()["access_token"]
        assert jwt_parts(access)[1]["cnf"] == {"x5t#S256": PKI.dns.x5t}
        r = await http.get(whoami(client), headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 200, r.text


class _FakeSSL:
    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self.der

    def version(self) -> str:
        return "TLSv1.3"


async def test_hypercorn_hook_wraps_only_tls_connections_with_a_certificate():
    calls: list[dict[str, Any]] = []

    async def app(scope: Any, *_: Any) -> None:
        calls.append(scope)

    def writer(ssl_object: Any) -> Any:
        return SimpleNamespace(get_extra_info=lambda name: ssl_object if name == "ssl_object"
                               else None)

    assert hypercorn_tls.wrap_for_connection(app, writer(None)) is app
    assert hypercorn_tls.wrap_for_connection(app, writer(_FakeSSL(None))) is app
    wrapped = hypercorn_tls.wrap_for_connection(app, writer(_FakeSSL(mtls.der(PKI.dn.cert))))
    await wrapped({"type": "http", "extensions": {}}, None, None, None, None)
    await wrapped({"type": "lifespan"}, None, None, None, None)
    tls = calls[0]["extensions"]["tls"]
    assert mtls.load_certificate(tls["client_cert_chain"][0]) == PKI.dn.cert
    assert tls["tls_version"] == 0x0304
    assert "extensions" not in calls[1]


def test_hypercorn_hook_installs_on_the_pinned_version():
    import hypercorn.asyncio.run as run_module

    original = run_module.TCPServer
    try:
        assert hypercorn_tls.install() is True
        assert run_module.TCPServer is not original
        assert issubclass(run_module.TCPServer, original)
        assert hypercorn_tls.install() is True  # idempotent
    finally:
        run_module.TCPServer = original


# -- certificate-bound access tokens -------------------------------------------------------

async def test_bound_token_at_the_demo_resource(via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID,
                               tls_client_certificate_bound_access_tokens=True)
    r = await token(via_proxy, client, PKI.spiffe)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    access = r.json()["access_token"]
    assert jwt_parts(access)[1]["cnf"] == {"x5t#S256": PKI.spiffe.x5t}
    bearer = {"Authorization": f"Bearer {access}"}
    r = await via_proxy.get(whoami(client), headers={**bearer, **cert(PKI.spiffe)})
    assert r.status_code == 200, r.text
    assert r.json()["cnf"] == {"x5t#S256": PKI.spiffe.x5t}
    for other in (PKI.other, PKI.dns, None):
        r = await via_proxy.get(whoami(client), headers={**bearer, **cert(other)})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    event = await last_event(broker, tenant)
    assert event.action == "token.issued" and event.detail["x5t#S256"] == PKI.spiffe.x5t


async def test_introspection_reports_cnf(via_proxy, broker, tenant):
    bound = await mtls_client(broker, tenant, auth_method="self_signed_tls_client_auth",
                              jwks=PKI.self_signed.jwks(),
                              tls_client_certificate_bound_access_tokens=True)
    access = (await token(via_proxy, bound, PKI.self_signed)).json()["access_token"]
    # the resource server introspects with its own credentials, and no certificate
    rs = await new_client(broker, tenant)
    r = await via_proxy.post(f"{rs.issuer}/introspect", data={"token": access}, auth=rs.basic)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] and body["cnf"] == {"x5t#S256": PKI.self_signed.x5t}
    assert body["token_type"] == "Bearer"
    # and an mTLS client can introspect, authenticated by its certificate
    r = await via_proxy.post(f"{rs.issuer}/introspect",
                             data={"token": access, "client_id": bound.client_id},
                             headers=cert(PKI.self_signed))
    assert r.status_code == 200 and r.json()["cnf"]["x5t#S256"] == PKI.self_signed.x5t


async def test_secret_client_with_bound_tokens(via_proxy, broker, tenant):
    """Binding does not depend on the authentication method (RFC 8705 §3)."""
    client = await new_client(broker, tenant, tls_client_certificate_bound_access_tokens=True)
    r = await via_proxy.post(client.token_url, data=CC, auth=client.basic,
                             headers=cert(PKI.dns))
    assert r.status_code == 200, r.text
    assert jwt_parts(r.json()["access_token"])[1]["cnf"] == {"x5t#S256": PKI.dns.x5t}
    r = await via_proxy.post(client.token_url, data=CC, auth=client.basic)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_unbound_client_presenting_a_certificate_gets_unbound_tokens(via_proxy, broker,
                                                                          tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_subject_dn=SUBJECT_DN)
    access = (await token(via_proxy, client, PKI.dn)).json()["access_token"]
    assert "cnf" not in jwt_parts(access)[1]
    r = await via_proxy.get(whoami(client), headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 200, r.text


async def test_token_exchange_keeps_the_binding(via_proxy, broker, tenant):
    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID,
                               tls_client_certificate_bound_access_tokens=True)
    subject = (await token(via_proxy, client, PKI.spiffe)).json()["access_token"]
    r = await via_proxy.post(client.token_url, headers=cert(PKI.spiffe), data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_id": client.client_id, "subject_token": subject,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
    assert r.status_code == 200, r.text
    assert jwt_parts(r.json()["access_token"])[1]["cnf"] == {"x5t#S256": PKI.spiffe.x5t}


async def test_dpop_and_certificate_binding_together(via_proxy, broker, tenant):
    from tests.dpop_client import make_proof, new_key

    client = await mtls_client(broker, tenant, tls_client_auth_san_uri=SPIFFE_ID,
                               tls_client_certificate_bound_access_tokens=True)
    key = new_key()
    r = await via_proxy.post(client.token_url, data={**CC, "client_id": client.client_id},
                             headers={**cert(PKI.spiffe),
                                      "DPoP": make_proof(key, htm="POST", htu=client.token_url)})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    access = r.json()["access_token"]
    assert set(jwt_parts(access)[1]["cnf"]) == {"jkt", "x5t#S256"}
    dpop = {"Authorization": f"DPoP {access}",
            "DPoP": make_proof(key, htm="GET", htu=whoami(client), access_token=access)}
    r = await via_proxy.get(whoami(client), headers={**dpop, **cert(PKI.spiffe)})
    assert r.status_code == 200, r.text
    dpop["DPoP"] = make_proof(key, htm="GET", htu=whoami(client), access_token=access)
    r = await via_proxy.get(whoami(client), headers=dpop)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


# -- metadata and registration ----------------------------------------------------------------

async def test_metadata(http, tenant):
    r = await http.get(f"{BASE_URL}/t/{tenant}/.well-known/openid-configuration")
    meta = r.json()
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    for field in ("token_endpoint_auth_methods_supported",
                  "introspection_endpoint_auth_methods_supported",
                  "revocation_endpoint_auth_methods_supported"):
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(meta[field])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"auth_method": "tls_client_auth"}, "exactly one"),
    ({"auth_method": "tls_client_auth", "tls_client_auth_san_uri": SPIFFE_ID,
      "tls_client_auth_san_dns": DNS_NAME}, "exactly one"),
    ({"auth_method": "tls_client_auth", "tls_client_auth_san_uri": "spiffe://Example.org/a"},
     "trust domain"),
    ({"auth_method": "tls_client_auth", "tls_client_auth_san_uri": "spiffe://example.org"},
     "path"),
    ({"auth_method": "tls_client_auth", "tls_client_auth_san_uri": "no-scheme"}, "absolute"),
    ({"auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "not a dn"},
     "distinguished name"),
    ({"auth_method": "client_secret_basic", "tls_client_auth_san_dns": DNS_NAME},
     "only with tls_client_auth"),
    ({"auth_method": "self_signed_tls_client_auth"}, "JWKS"),
    ({"auth_method": "self_signed_tls_client_auth",
      "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}},
     "jwks.keys\\[0\\]: not a usable public key"),
    ({"auth_method": "self_signed_tls_client_auth",
      "jwks": {"keys": [{k: v for k, v in PKI.self_signed.jwks()["keys"][0].items()
                         if k != "x5c"}]}}, "x5c"),
])
async def test_registration_is_checked(broker, tenant, kwargs, message):
    from adapters.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=message):
        await ops.create_client(broker, tenant, name="bad", **kwargs)


async def test_admin_api_registers_mtls_clients(http, tenant):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    r = await http.post(f"/admin/v1/tenants/{tenant}/clients", headers=admin, json={
        "name": "planner", "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_san_uri": SPIFFE_ID,
        "tls_client_certificate_bound_access_tokens": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_endpoint_auth_method"] == "tls_client_auth"
    assert body["tls_client_auth_san_uri"] == SPIFFE_ID
    assert body["tls_client_certificate_bound_access_tokens"] is True
    assert body["client_secret"] is None  # tls_client_auth has no secret
    r = await http.post(f"/admin/v1/tenants/{tenant}/clients", headers=admin, json={
        "name": "x", "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_san_dns": 7})
    assert r.status_code == 400


def test_cli_creates_mtls_clients(cli, tmp_path):
    def run(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

    tenant = unique("t")
    run("tenant", "create", tenant)
    spiffe = run("client", "create", "--tenant", tenant, "--name", "planner",
                 "--auth-method", "tls_client_auth", "--tls-san-uri", SPIFFE_ID, "--tls-bound")
    assert spiffe["tls_client_auth_san_uri"] == SPIFFE_ID
    assert spiffe["tls_client_certificate_bound_access_tokens"] is True
    assert spiffe["client_secret"] is None
    dn = run("client", "create", "--tenant", tenant, "--name", "billing",
             "--auth-method", "tls_client_auth", "--tls-subject-dn", SUBJECT_DN)
    assert dn["tls_client_auth_subject_dn"] == SUBJECT_DN
    dns = run("client", "create", "--tenant", tenant, "--name", "dns",
              "--auth-method", "tls_client_auth", "--tls-san-dns", DNS_NAME)
    assert dns["tls_client_auth_san_dns"] == DNS_NAME
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(PKI.self_signed.jwks()))
    self_signed = run("client", "create", "--tenant", tenant, "--name", "self",
                      "--auth-method", "self_signed_tls_client_auth", "--jwks-file", str(jwks))
    assert self_signed["token_endpoint_auth_method"] == "self_signed_tls_client_auth"


def test_serve_refuses_client_cert_options_without_tls(tmp_path):
    for args in (["--ca-certs", "ca.pem"], ["--client-cert", "optional"]):
        proc = subprocess.run([sys.executable, "-m", "broker.cli", "serve", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "need" in proc.stderr
