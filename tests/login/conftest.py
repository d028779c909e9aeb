"""Login fixtures: a broker replica that may talk to IdPs on http://127.0.0.1, one real
upstream OpenID Provider (panva's oidc-provider) and one real SAML IdP (pysaml2) for the test
session, each started only when a test asks for it, and two tenants:

* ``login`` — ``login-corp``: the OIDC IdP (users sign in there) and a SAML upstream known only
  by its metadata (no server behind it: it gives the chooser and home-realm discovery a second,
  SAML choice; no test signs in through it). The authorize, PAR, code, refresh, consent, CIBA,
  logout and ID token tests use it and start no SAML IdP.
* ``login_saml`` — ``login-saml``, on the same replica: the OIDC IdP and the running pysaml2
  IdP, for the tests that sign in with SAML."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.app import create_app
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.conftest import BASE_URL
from tests.peers.oidc_idp import OidcIdp, start_oidc_idp
from tests.peers.saml_idp import SamlIdp, start_saml_idp

TENANT = "login-corp"
SAML_TENANT = "login-saml"
OIDC = "corp-oidc"
SAML = "corp-saml"
RP_SECRET = "rp-secret-" + secrets.token_hex(16)
USERS = {
    "alice": {"email": "alice@corp.example", "email_verified": True, "name": "Alice Liddell",
              "groups": ["eng", "admins"], "department": "R&D"},
    "bob": {"email": "bob@corp.example", "name": "Bob Builder", "groups": ["ops"]},
}
# oidc-provider releases only the claims a scope lists: department rides on profile
IDP_CLAIMS = {"openid": ["sub", "acr", "amr", "auth_time"], "email": ["email", "email_verified"],
              "profile": ["name", "preferred_username", "groups", "department"],
              "groups": ["groups"]}
# login-corp's SAML upstream: metadata only, nothing listens there
PLACEHOLDER_SAML_IDP = "https://saml.corp.example/idp"
PLACEHOLDER_SAML_SSO = "https://saml.corp.example/sso"
SAML_USERS = {
    "carol": {"mail": ["carol@saml.example"], "displayName": ["Carol Danvers"],
              "groups": ["pilots"]},
}


def oidc_redirect(tenant: str = TENANT) -> str:
    return f"{BASE_URL}/t/{tenant}/login/{OIDC}/callback"


@cache
def placeholder_saml_metadata() -> str:
    """IdP metadata for :data:`PLACEHOLDER_SAML_IDP` (HTTP-Redirect SSO, a fresh certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "placeholder SAML IdP")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2)).sign(key, hashes.SHA256()))
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return (f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{PLACEHOLDER_SAML_IDP}">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:'
            'protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{der}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            '</md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:'
            f'bindings:HTTP-Redirect" Location="{PLACEHOLDER_SAML_SSO}"/></md:IDPSSODescriptor>'
            "</md:EntityDescriptor>")


@pytest.fixture(scope="session")
def oidc_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcIdp]:
    idp = start_oidc_idp({
        "clients": [{"client_id": "tessera", "client_secret": RP_SECRET,
                     "redirect_uris": [oidc_redirect(), oidc_redirect("login-other"),
                                       oidc_redirect(SAML_TENANT)],
                     "token_endpoint_auth_method": "client_secret_basic"}],
        "users": USERS,
        "claims": IDP_CLAIMS,
    }, tmp_path_factory.mktemp("oidc-idp"))
    yield idp
    idp.stop()


@pytest.fixture(scope="session")
def saml_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlIdp]:
    idp = start_saml_idp(tmp_path_factory.mktemp("saml-idp"), users=SAML_USERS)
    yield idp
    idp.stop()


@dataclass(frozen=True)
class Login:
    broker: Broker
    app: object
    tenant: str
    oidc_idp: OidcIdp
    saml: SamlIdp | None = None  # the running SAML IdP the tenant federates, if any

    @property
    def saml_idp(self) -> SamlIdp:
        if self.saml is None:
            raise LookupError(f"tenant {self.tenant} federates no running SAML IdP: "
                              "use the login_saml fixture (or federate_saml)")
        return self.saml

    def browser(self) -> httpx.AsyncClient:
        """A fresh browser (its own cookies) at the broker."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
                                 base_url=BASE_URL)

    def idp_browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=20.0)


async def federate_oidc(login: Login, rp_secret: str) -> None:
    """Upstream ``corp-oidc`` at ``login.tenant``: ``login.oidc_idp``, as its client
    ``tessera`` with ``rp_secret``, for users at corp.example."""
    await ops.create_upstream(login.broker, login.tenant, {
        "name": OIDC, "kind": "oidc", "display_name": "Corp (OIDC)",
        "domains": ["corp.example"], "mapping": {"claims": {"department": "department"}},
        "oidc": {"issuer": login.oidc_idp.issuer, "client_id": "tessera",
                 "client_secret": rp_secret, "client_auth": "client_secret_basic",
                 "scopes": ["openid", "email", "profile", "groups"]}})


async def federate_saml(login: Login, idp: SamlIdp) -> Login:
    """Upstream ``corp-saml`` at ``login.tenant`` for users at saml.example: ``idp``, which
    is given the tenant's SP metadata. Returns ``login`` with ``idp`` as its SAML IdP."""
    created = await ops.create_upstream(login.broker, login.tenant, {
        "name": SAML, "kind": "saml", "display_name": "Corp (SAML)",
        "domains": ["saml.example"], "saml": {"metadata_xml": idp.metadata_xml().decode()}})
    async with login.browser() as http:
        sp = await http.get(created["sp_metadata_url"].removeprefix(BASE_URL))
        assert sp.status_code == 200, sp.text
    idp.add_sp_metadata(sp.content)
    return dataclasses.replace(login, saml=idp)


@pytest.fixture(scope="session")
async def loopback_replica(broker: Broker) -> AsyncIterator[tuple[Broker, object]]:
    """A replica of the session broker that may reach IdPs on loopback, and its app."""
    replica = Broker.build(broker.settings.replace(allow_http_loopback=True),
                           clock=broker.clock)
    yield replica, create_app(replica, background=False, migrate=False)
    await replica.close()


@pytest.fixture(scope="session")
async def login(loopback_replica: tuple[Broker, object], oidc_idp: OidcIdp) -> Login:
    """The tenant ``login-corp`` federating the OIDC IdP and the placeholder SAML upstream
    (metadata only), on the loopback replica."""
    corp = Login(*loopback_replica, TENANT, oidc_idp)
    await ops.create_tenant(corp.broker, TENANT)
    await federate_oidc(corp, RP_SECRET)
    await ops.create_upstream(corp.broker, TENANT, {
        "name": SAML, "kind": "saml", "display_name": "Corp (SAML)",
        "domains": ["saml.example"], "saml": {"metadata_xml": placeholder_saml_metadata()}})
    return corp


@pytest.fixture(scope="session")
async def login_saml(loopback_replica: tuple[Broker, object], oidc_idp: OidcIdp,
                     saml_idp: SamlIdp) -> Login:
    """The tenant ``login-saml`` federating the OIDC IdP and the running SAML IdP (pysaml2),
    with login-corp's upstream names and domains, on the same replica. Modules about SAML
    logins make it their ``login``."""
    corp = Login(*loopback_replica, SAML_TENANT, oidc_idp)
    await ops.create_tenant(corp.broker, SAML_TENANT)
    await federate_oidc(corp, RP_SECRET)
    return await federate_saml(corp, saml_idp)


def workdir(tmp: Path) -> Path:
    return tmp


Browsers = Callable[[], httpx.AsyncClient]


@pytest.fixture
async def browsers(login: Login) -> AsyncIterator[Browsers]:
    """``browsers()``: a fresh browser (cookie jar) at the broker, closed after the test."""
    made: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        made.append(login.browser())
        return made[-1]

    yield make
    for browser in made:
        await browser.aclose()
