"""Login fixtures: a broker replica that may talk to IdPs on http://127.0.0.1, one real
upstream OpenID Provider (panva's oidc-provider) and one real SAML IdP (pysaml2) for the test
session, and a tenant federating both."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from broker import login_admin
from broker import management as ops
from broker.app import create_app
from broker.runtime import Broker
from tests.conftest import BASE_URL
from tests.peers.oidc_idp import OidcIdp, start_oidc_idp
from tests.peers.saml_idp import SamlIdp, start_saml_idp

TENANT = "login-corp"
OIDC_ONLY_TENANT = "login-oidc"  # federates only the OIDC IdP (tests that need no SAML IdP)
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
SAML_USERS = {
    "carol": {"mail": ["carol@saml.example"], "displayName": ["Carol Danvers"],
              "groups": ["pilots"]},
}


def oidc_redirect(tenant: str = TENANT) -> str:
    return f"{BASE_URL}/t/{tenant}/login/{OIDC}/callback"


@pytest.fixture(scope="session")
def oidc_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcIdp]:
    idp = start_oidc_idp({
        "clients": [{"client_id": "tessera", "client_secret": RP_SECRET,
                     "redirect_uris": [oidc_redirect(), oidc_redirect("login-other"),
                                       oidc_redirect(OIDC_ONLY_TENANT)],
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
    saml: SamlIdp | None  # None: the tenant federates only the OIDC IdP

    @property
    def saml_idp(self) -> SamlIdp:
        assert self.saml is not None, "this tenant federates no SAML IdP"
        return self.saml

    def browser(self) -> httpx.AsyncClient:
        """A fresh browser (its own cookies) at the broker."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
                                 base_url=BASE_URL)

    def idp_browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=20.0)


async def _replica(broker: Broker, tenant: str, oidc_idp: OidcIdp
                   ) -> tuple[Broker, object]:
    """A replica of the session broker with loopback IdPs allowed, and ``tenant`` federating
    ``oidc_idp``."""
    replica = Broker.build(dataclasses.replace(broker.settings, allow_http_loopback=True),
                           clock=broker.clock)
    app = create_app(replica, background=False, migrate=False)
    await ops.create_tenant(replica, tenant)
    await login_admin.create_upstream(replica, tenant, {
        "name": OIDC, "kind": "oidc", "display_name": "Corp (OIDC)",
        "domains": ["corp.example"],
        "mapping": {"claims": {"department": "department"}},
        "oidc": {"issuer": oidc_idp.issuer, "client_id": "tessera", "client_secret": RP_SECRET,
                 "client_auth": "client_secret_basic",
                 "scopes": ["openid", "email", "profile", "groups"]}})
    return replica, app


@pytest.fixture(scope="session")
async def login(broker: Broker, oidc_idp: OidcIdp, saml_idp: SamlIdp) -> AsyncIterator[Login]:
    """The session broker's replica with loopback IdPs allowed, and the tenant ``login-corp``
    federating the OIDC and the SAML IdP."""
    replica, app = await _replica(broker, TENANT, oidc_idp)
    created = await login_admin.create_upstream(replica, TENANT, {
        "name": SAML, "kind": "saml", "display_name": "Corp (SAML)",
        "domains": ["saml.example"],
        "saml": {"metadata_xml": saml_idp.metadata_xml().decode()}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        sp = await http.get(created["sp_metadata_url"].removeprefix(BASE_URL))
        assert sp.status_code == 200, sp.text
        saml_idp.add_sp_metadata(sp.content)
    yield Login(replica, app, TENANT, oidc_idp, saml_idp)
    await replica.close()


@pytest.fixture(scope="session")
async def oidc_login(broker: Broker, oidc_idp: OidcIdp) -> AsyncIterator[Login]:
    """Like ``login`` with the tenant ``login-oidc``, which federates only the OIDC IdP: for
    tests of the OpenID Provider side that need no SAML IdP (and so no ``xmlsec1``)."""
    replica, app = await _replica(broker, OIDC_ONLY_TENANT, oidc_idp)
    yield Login(replica, app, OIDC_ONLY_TENANT, oidc_idp, None)
    await replica.close()


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
