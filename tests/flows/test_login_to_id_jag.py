"""From a browser login to an agent's access token at another trust domain: a user signs in at
the enterprise tenant through a real IdP (oidc-provider, or pysaml2 for SAML); the ID token
tessera issues there is exchanged (RFC 8693) for an ID-JAG to a resource tenant of the same
broker, which redeems it (RFC 7523 jwt-bearer). Who the user is and how they authenticated
(sub, acr, amr, auth_time) carries through."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from adapters import subjects
from adapters.dpop import jwk_thumbprint
from broker import id_jag
from broker.app import create_app
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.broker.helpers import jwt_parts
from tests.conftest import TestClient, new_client, new_tenant, unique
from tests.dpop_client import new_key, public_jwk
from tests.login.conftest import (
    IDP_CLAIMS,
    SAML,
    SAML_USERS,
    USERS,
    Login,
    federate_saml,
    oidc_redirect,
)
from tests.login.flow import APP_REDIRECT, dpop, federate, login_tokens, request_for
from tests.peers.oidc_idp import OidcIdp, start_oidc_idp
from tests.peers.saml_idp import SamlIdp, start_saml_idp

pytestmark = pytest.mark.interop

API = "https://api.pricing.example"
SILVER = "urn:mace:incommon:iap:silver"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
RP_SECRET = "rp-secret-" + secrets.token_hex(16)
CORP = unique("corp")  # the enterprise tenant; its IdPs are this module's own


@pytest.fixture(scope="module")
def corp_oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcIdp]:
    idp = start_oidc_idp({
        "clients": [{"client_id": "tessera", "client_secret": RP_SECRET,
                     "redirect_uris": [oidc_redirect(CORP)],
                     "token_endpoint_auth_method": "client_secret_basic"}],
        "users": USERS, "claims": IDP_CLAIMS,
    }, tmp_path_factory.mktemp("corp-oidc"))
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def corp_saml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlIdp]:
    idp = start_saml_idp(tmp_path_factory.mktemp("corp-saml"), users=SAML_USERS)
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
async def corp(broker: Broker, corp_oidc: OidcIdp) -> AsyncIterator[Login]:
    """A replica allowed to reach loopback IdPs, and the tenant federating the OIDC IdP."""
    replica = Broker.build(broker.settings.replace(allow_http_loopback=True),
                           clock=broker.clock)
    login = Login(replica, create_app(replica, background=False, migrate=False), CORP,
                  corp_oidc)
    await federate(login, RP_SECRET)
    yield login
    await replica.close()


@pytest.fixture(scope="module")
async def corp_with_saml(corp: Login, corp_saml: SamlIdp) -> Login:
    """The enterprise tenant federating the SAML IdP too (only the SAML test starts it; the
    other tests name their upstream, so the added one changes nothing for them)."""
    return await federate_saml(corp, corp_saml)


@dataclass
class Domains:
    agent: TestClient  # the agent at the enterprise tenant: it signs users in
    remote: TestClient  # the same agent's client at the resource tenant


@pytest.fixture(scope="module")
async def domains(corp: Login) -> Domains:
    """The set-up of tests/flows/test_id_jag.py, with the enterprise tenant as the IdP."""
    b = corp.broker
    pricing = await new_tenant(b)
    agent = await new_client(b, CORP, scopes=[], audiences=[], redirect_uris=[APP_REDIRECT])
    remote = await new_client(b, pricing, scopes=["read", "write"], audiences=[API])
    await ops.add_trust_link(b, CORP, peer_tenant=pricing, send=True)
    await ops.add_trust_link(b, pricing, peer_tenant=CORP, scope_ceiling=["read", "write"],
                             accept=True)
    await ops.put_managed_connection(
        b, CORP, client_id=agent.client_id, audience=b.issuer(pricing),
        rules={"read": "grant", "write": "grant", "admin": "deny"},
        remote_client_id=remote.client_id, resources=[API], max_lifetime=120)
    return Domains(agent, remote)


async def exchange(http: httpx.AsyncClient, d: Domains, id_token: str,
                   headers: dict[str, str] | None = None, **extra: str) -> dict[str, Any]:
    r = await http.post(d.agent.token_url, auth=d.agent.basic, headers=headers or {}, data={
        "grant_type": id_jag.TOKEN_EXCHANGE, "requested_token_type": id_jag.ID_JAG,
        "audience": d.remote.issuer, "subject_token": id_token,
        "subject_token_type": id_jag.ID_TOKEN, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["issued_token_type"] == id_jag.ID_JAG and body["token_type"] == "N_A"
    assert "refresh_token" not in body
    return body


async def redeem(http: httpx.AsyncClient, d: Domains, assertion: str,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = await http.post(d.remote.token_url, auth=d.remote.basic, headers=headers or {},
                        data={"grant_type": id_jag.JWT_BEARER, "assertion": assertion})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def carried(id_token: dict[str, Any], jag: dict[str, Any]) -> None:
    for claim in ("sub", "acr", "amr", "auth_time"):
        assert jag[claim] == id_token[claim], claim
    # minimised (id-jag draft, MCP enterprise-managed authorization): no e-mail, no tenant
    assert "email" not in jag and "tenant" not in jag


async def test_oidc_login_to_id_jag(corp: Login, domains: Domains) -> None:
    d, key = domains, new_key()
    async with corp.browser() as browser:
        tokens = await login_tokens(corp, d.agent, request_for(d.agent), browser)
        _, idt = jwt_parts(tokens["id_token"])
        assert idt["iss"] == d.agent.issuer and idt["aud"] == d.agent.client_id
        assert idt["acr"] == SILVER and "mfa" in idt["amr"]
        issued = await exchange(browser, d, tokens["id_token"],
                                dpop(corp, key, d.agent.token_url), scope="read", resource=API)
        header, jag = jwt_parts(issued["access_token"])
        assert header["typ"] == id_jag.ID_JAG_TYP
        assert jag["iss"] == d.agent.issuer and jag["aud"] == d.remote.issuer
        assert jag["client_id"] == d.remote.client_id and "tenant" not in jag
        assert jag["scope"] == "read" and jag["resource"] == API
        assert jag["cnf"] == {"jkt": jwk_thumbprint(public_jwk(key))}
        carried(idt, jag)
        body = await redeem(browser, d, issued["access_token"],
                            dpop(corp, key, d.remote.token_url))
    assert body["token_type"] == "DPoP" and body["scope"] == "read"
    _, at = jwt_parts(body["access_token"])
    assert at["iss"] == d.remote.issuer and at["aud"] == API
    # the user stays the IdP tenant's: pairwise sub at the resource tenant, sub_id says whose
    assert at["sub"] == subjects.foreign_sub(d.remote.tenant, d.agent.issuer, idt["sub"])
    assert at["client_id"] == d.remote.client_id
    assert at["sub_id"] == {"format": "iss_sub", "iss": d.agent.issuer, "sub": idt["sub"]}
    assert at["cnf"] == jag["cnf"]


async def test_saml_login_to_id_jag(corp_with_saml: Login, domains: Domains) -> None:
    d, corp = domains, corp_with_saml
    req = request_for(d.agent, idp=SAML, scope="openid email profile")
    async with corp.browser() as browser:
        tokens = await login_tokens(corp, d.agent, req, browser, user="carol")
        _, idt = jwt_parts(tokens["id_token"])
        assert idt["email"] == "carol@saml.example" and idt["name"] == "Carol Danvers"
        assert idt["acr"] == PASSWORD_PROTECTED and idt["amr"] == ["pwd"]
        assert isinstance(idt["auth_time"], int)
        issued = await exchange(browser, d, tokens["id_token"], scope="read write")
        _, jag = jwt_parts(issued["access_token"])
        assert "cnf" not in jag and jag["scope"] == "read write"
        carried(idt, jag)
        body = await redeem(browser, d, issued["access_token"])
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    _, at = jwt_parts(body["access_token"])
    assert at["sub"] == subjects.foreign_sub(d.remote.tenant, d.agent.issuer, idt["sub"])
    assert at["aud"] == API
    assert at["sub_id"] == {"format": "iss_sub", "iss": d.agent.issuer, "sub": idt["sub"]}


async def test_tokens_of_the_login_are_not_subject_tokens(corp: Login, domains: Domains) -> None:
    """Only the ID token is the identity assertion: its access token is refused, and an ID
    token issued to another client of the tenant is not this agent's to exchange."""
    d = domains
    other = await new_client(corp.broker, CORP, redirect_uris=[APP_REDIRECT])
    async with corp.browser() as browser:
        tokens = await login_tokens(corp, other, request_for(other), browser)
        form = {"grant_type": id_jag.TOKEN_EXCHANGE, "requested_token_type": id_jag.ID_JAG,
                "audience": d.remote.issuer, "subject_token_type": id_jag.ID_TOKEN}
        for subject in (tokens["id_token"], tokens["access_token"]):
            r = await browser.post(d.agent.token_url, auth=d.agent.basic,
                                   data={**form, "subject_token": subject})
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
